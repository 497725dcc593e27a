//! Training a pair of endpoints and connecting them: the unit of work of `connect` and
//! `sweep`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use levelset_models::backend::{BACKEND_NAME, Compute, Train, device};
use levelset_models::checkpoint::{self, CheckpointMeta};
use levelset_models::flat::flatten;
use levelset_models::train::{TrainError, Trained, train_to_levels};
use levelset_models::{Energy, Landscape};
use levelset_strings::{Method, ModelPath, PathReport, connect_with};

use crate::config::ExperimentConfig;
pub use crate::config::MethodName;
use crate::output::progress::steps_bar;

/// Seeds of the two endpoints of pair `pair` (distinct across pairs and from each other).
/// Warns, once per level, when an error-rate energy is measured on too few items to resolve
/// `level`: it moves in steps of one item, and a step above a tenth of the level means fewer
/// than ten items separate a model at the level from a perfect one (e.g. a CIFAR-10 test set
/// of a few records). The run goes on: the user may mean it.
pub fn warn_if_unresolved<L: Landscape<Train>>(landscape: &L, levels: &[f64]) {
    let kind = landscape.energy_kind();
    if !matches!(kind, Energy::TrainError | Energy::TestError) {
        return;
    }
    let items = landscape.eval_examples();
    let step = 1.0 / items.max(1) as f64;
    for &level in levels {
        if step > level / 10.0 {
            tracing::warn!(
                "the {kind} is measured on {items} items, so it moves in steps of {step:.4}: \
                 more than a tenth of the level {level} (fewer than 10 items resolve it); use a \
                 larger held-out set (test_limit) or a higher level"
            );
        }
    }
}

pub fn pair_seeds(base: u64, pair: usize) -> (u64, u64) {
    let first = base.wrapping_mul(1_000_003).wrapping_add(2 * pair as u64);
    // Wrapping like `first`: a config's `sweep.seed` can make `first` u64::MAX.
    (first, first.wrapping_add(1))
}

/// One endpoint trained from `seed` to `level`.
pub fn train_endpoint<L: Landscape<Train>>(
    landscape: &L,
    config: &ExperimentConfig,
    level: f64,
    seed: u64,
) -> Result<Trained<L::Model>> {
    train_seed(landscape, config, &[level], seed)
        .pop()
        .expect("one result per level")
        .with_context(|| format!("training the endpoint with seed {seed} to {level}"))
}

/// The model of `seed` at each of `levels`, trained along one trajectory with a progress bar.
fn train_seed<L: Landscape<Train>>(
    landscape: &L,
    config: &ExperimentConfig,
    levels: &[f64],
    seed: u64,
) -> Vec<std::result::Result<Trained<L::Model>, TrainError>> {
    let bar = steps_bar(&format!("endpoint seed {seed}"));
    let trained = train_to_levels(
        landscape,
        landscape.init(seed),
        levels,
        &config.train,
        seed,
        &bar,
    );
    bar.finish_and_clear();
    trained
}

/// An endpoint as a sweep keeps it: flat parameters and how it was reached.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub flat: Tensor<Compute, 1>,
    pub energy: f64,
    /// Optimizer steps from initialization, as if trained for this level alone.
    pub steps: usize,
}

/// The endpoints of a sweep: each seed trains once, down to the lowest level, keeping a
/// snapshot at every level on the way. A snapshot is bit-identical to training that seed
/// for its level alone (see `train_to_levels`), so a sweep over k levels pays for the
/// deepest level instead of the sum of all of them.
pub struct Endpoints {
    levels: Vec<f64>,
    trained: HashMap<u64, Vec<std::result::Result<Endpoint, TrainError>>>,
}

impl Endpoints {
    pub fn new(levels: &[f64]) -> Self {
        Endpoints {
            levels: levels.to_vec(),
            trained: HashMap::new(),
        }
    }

    /// The endpoint of `seed` at `level` (one of the sweep's levels), training on first use.
    pub fn get<L: Landscape<Train>>(
        &mut self,
        landscape: &L,
        config: &ExperimentConfig,
        level: f64,
        seed: u64,
    ) -> Result<Endpoint> {
        let index = self
            .levels
            .iter()
            .position(|&l| l == level)
            .with_context(|| format!("{level} is not a level of this sweep"))?;
        let levels = &self.levels;
        let snapshots = self.trained.entry(seed).or_insert_with(|| {
            train_seed(landscape, config, levels, seed)
                .into_iter()
                .map(|r| {
                    r.map(|t| Endpoint {
                        flat: flat_of(&t.model),
                        energy: t.energy,
                        steps: t.steps,
                    })
                })
                .collect()
        });
        snapshots[index]
            .clone()
            .with_context(|| format!("training the endpoint with seed {seed} to {level}"))
    }
}

/// A checkpoint of `landscape`'s network: its flat parameters and what it recorded.
pub fn load_checkpoint<L: Landscape<Train>>(
    landscape: &L,
    dir: &Path,
) -> Result<(Tensor<Compute, 1>, CheckpointMeta)> {
    let (model, meta) =
        checkpoint::load(landscape.init(0), &landscape.architecture(), dir, &device())?;
    Ok((flat_of(&model), meta))
}

/// The checkpoint in `dir` loaded into the network of `landscape`, whose config is named
/// `config` in the error.
pub fn load_model<L: Landscape<Train>>(
    landscape: &L,
    dir: &Path,
    config: &str,
) -> Result<(L::Model, CheckpointMeta)> {
    checkpoint::load(landscape.init(0), &landscape.architecture(), dir, &device())
        .with_context(|| format!("loading {} for config '{config}'", dir.display()))
}

/// How a model levelset made came to be, as its checkpoint records it.
pub struct Provenance {
    pub seed: u64,
    pub energy: f64,
    pub level: Option<f64>,
    /// Optimizer steps from initialization (0 for points a path method placed).
    pub steps: usize,
}

/// Saves `model`, a network of `landscape` made under `config`, as a checkpoint in `dir`.
pub fn save_model<L: Landscape<Train>, B: Backend, M: Module<B>>(
    landscape: &L,
    config: &ExperimentConfig,
    model: M,
    made: Provenance,
    dir: &Path,
) -> Result<CheckpointMeta> {
    let meta = CheckpointMeta {
        levelset_version: env!("CARGO_PKG_VERSION").to_string(),
        architecture: landscape.architecture(),
        config: serde_json::to_value(config)?,
        seed: made.seed,
        energy_kind: landscape.energy_kind(),
        energy: made.energy,
        level: made.level,
        steps: made.steps,
        backend: BACKEND_NAME.to_string(),
        num_params: levelset_models::flat::num_params(&model),
        imported_from: None,
    };
    checkpoint::save(model, &meta, dir)?;
    Ok(meta)
}

/// Flat parameters of a trained model, on the evaluation backend.
pub fn flat_of<M: AutodiffModule<Train>>(model: &M) -> Tensor<Compute, 1> {
    flatten(&model.valid())
}

/// Connects two flat endpoints with `method`, showing its progress.
pub fn connect_pair<L: Landscape<Train>>(
    landscape: &L,
    method: &Method,
    a: Tensor<Compute, 1>,
    b: Tensor<Compute, 1>,
    level: f64,
    seed: u64,
) -> Result<(ModelPath<Compute>, PathReport)> {
    let bar = steps_bar(method.progress_unit());
    let result = connect_with(landscape, a, b, level, method, seed, &bar);
    bar.finish_and_clear();
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base_seed_gives_every_pair_its_seeds_without_overflow() {
        // The base seed whose first seed of pair 0 is u64::MAX: -1 / 1_000_003 mod 2^64,
        // the inverse found by Newton's iteration (each step doubles the correct bits).
        let mut inverse: u64 = 1_000_003;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(1_000_003u64.wrapping_mul(inverse)));
        }
        assert_eq!(inverse.wrapping_mul(1_000_003), 1);
        let base = inverse.wrapping_neg();
        assert_eq!(pair_seeds(base, 0), (u64::MAX, 0));
        assert_eq!(pair_seeds(0, 3), (6, 7));
    }
}
