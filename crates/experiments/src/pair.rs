//! Training a pair of endpoints and connecting them: the unit of work of `connect` and
//! `sweep`.

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train};
use levelset_models::flat::flatten;
use levelset_models::train::{Trained, train_to_level};
use levelset_strings::{Path, PathReport, connect};

use crate::config::ExperimentConfig;
use crate::progress::steps_bar;

/// Seeds of the two endpoints of pair `pair` (distinct across pairs and from each other).
pub fn pair_seeds(base: u64, pair: usize) -> (u64, u64) {
    let first = base.wrapping_mul(1_000_003).wrapping_add(2 * pair as u64);
    (first, first + 1)
}

/// One endpoint trained from `seed` to `level`.
pub fn train_endpoint<L: Landscape<Train>>(
    landscape: &L,
    config: &ExperimentConfig,
    level: f64,
    seed: u64,
) -> Result<Trained<L::Model>> {
    let bar = steps_bar(&format!("endpoint seed {seed}"));
    let trained = train_to_level(
        landscape,
        landscape.init(seed),
        level,
        &config.train,
        seed,
        &bar,
    );
    bar.finish_and_clear();
    trained.with_context(|| format!("training the endpoint with seed {seed} to {level}"))
}

/// Flat parameters of a trained model, on the evaluation backend.
pub fn flat_of<M: AutodiffModule<Train>>(model: &M) -> Tensor<Compute, 1> {
    flatten(&model.valid())
}

/// Connects two flat endpoints with the config's DSS settings.
pub fn connect_flat<L: Landscape<Train>>(
    landscape: &L,
    config: &ExperimentConfig,
    a: Tensor<Compute, 1>,
    b: Tensor<Compute, 1>,
    level: f64,
    seed: u64,
) -> Result<(Path<Compute>, PathReport)> {
    let bar = steps_bar("bead");
    let result = connect(
        landscape,
        a,
        b,
        level,
        config.dss()?,
        &config.train,
        seed,
        &bar,
    );
    bar.finish_and_clear();
    Ok(result?)
}
