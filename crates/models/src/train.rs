//! Training a model until its energy falls to a level.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::heartbeat::Heartbeat;
use crate::landscape::{Energy, Landscape};
use crate::optim::OptimizerConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub optimizer: OptimizerConfig,
    /// The energy is evaluated every this many optimizer steps.
    pub check_every: usize,
    /// Step budget; reaching it without the level is an error.
    pub max_steps: usize,
}

impl TrainSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.optimizer.validate()?;
        if self.check_every == 0 {
            return Err("check_every must be at least 1".into());
        }
        if self.max_steps == 0 {
            return Err("max_steps must be at least 1".into());
        }
        Ok(())
    }
}

/// A model that reached its level.
#[derive(Debug)]
pub struct Trained<M> {
    pub model: M,
    pub steps: usize,
    pub energy: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error(
        "{energy} did not reach {target} within {max_steps} steps: best {best}, last {last} \
         (raise max_steps or the level)"
    )]
    NotReached {
        energy: Energy,
        target: f64,
        max_steps: usize,
        best: f64,
        last: f64,
    },
    #[error("{energy} became {value} after {steps} steps (diverged; lower the learning rate)")]
    NotFinite {
        energy: Energy,
        steps: usize,
        value: f64,
    },
    #[error("the training data loader produced no batch")]
    NoData,
}

/// Trains `model` until `landscape.energy(model) <= target`, checking every
/// `settings.check_every` steps (and once before the first step). `seed` fixes the data
/// order, augmentation and dropout, so the same inputs give the same model.
pub fn train_to_level<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    model: L::Model,
    target: f64,
    settings: &TrainSettings,
    seed: u64,
    progress: &ProgressBar,
) -> Result<Trained<L::Model>, TrainError> {
    train_to_levels(landscape, model, &[target], settings, seed, progress)
        .pop()
        .expect("one result per target")
}

/// [`train_to_level`] for several targets along one trajectory: result `i` is the model at
/// the first check where the energy was at most `targets[i]`. The trajectory does not depend
/// on the targets, so each result is exactly what `train_to_level` gives for that target
/// alone, while the steps are paid once, up to the lowest target. Training stops when every
/// target is reached or has failed; a target not reached carries the error that stopped it.
pub fn train_to_levels<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    mut model: L::Model,
    targets: &[f64],
    settings: &TrainSettings,
    seed: u64,
    progress: &ProgressBar,
) -> Vec<Result<Trained<L::Model>, TrainError>> {
    let kind = landscape.energy_kind();
    let lowest = targets.iter().copied().fold(f64::INFINITY, f64::min);
    progress.set_length(settings.max_steps as u64);
    progress.set_position(0);
    let mut results: Vec<Option<Result<Trained<L::Model>, TrainError>>> =
        targets.iter().map(|_| None).collect();
    // Fills every open target with the model (reached) and reports whether any stays open.
    let mut record = |model: &L::Model, steps: usize, energy: f64| {
        for (result, &target) in results.iter_mut().zip(targets) {
            if result.is_none() && energy <= target {
                tracing::debug!(steps, energy, target, "level reached");
                *result = Some(Ok(Trained {
                    model: model.clone(),
                    steps,
                    energy,
                }));
            }
        }
        results.iter().any(Option::is_none)
    };
    let mut heartbeat = Heartbeat::default();
    let mut best = f64::INFINITY;
    let mut check = |model: &L::Model, steps: usize| {
        let energy = landscape.energy(&model.valid());
        if !energy.is_finite() {
            return Err(TrainError::NotFinite {
                energy: kind,
                steps,
                value: energy,
            });
        }
        best = best.min(energy);
        progress.set_message(format!("{kind} {energy:.5} -> {lowest}"));
        if heartbeat.due() {
            tracing::info!(steps, energy, target = lowest, "training");
        } else {
            tracing::debug!(steps, energy, target = lowest, "energy check");
        }
        Ok((energy, best))
    };

    let stop = (|| {
        let (energy, _) = check(&model, 0)?;
        if !record(&model, 0, energy) {
            return Ok(());
        }
        let loader = landscape.loader(seed);
        let mut optimizer = settings.optimizer.init::<B, L::Model>();
        let mut steps = 0;
        for epoch in 0.. {
            let lr = settings.optimizer.learning_rate(epoch);
            let mut carry = landscape.carry(seed, epoch);
            let mut batches = 0;
            for batch in loader.iter() {
                batches += 1;
                let loss = landscape.loss(&model, batch, &mut carry);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(lr, model, grads);
                steps += 1;
                progress.set_position(steps as u64);
                if steps % settings.check_every == 0 || steps == settings.max_steps {
                    let (energy, best) = check(&model, steps)?;
                    if !record(&model, steps, energy) {
                        return Ok(());
                    }
                    if steps >= settings.max_steps {
                        return Err(TrainError::NotReached {
                            energy: kind,
                            target: f64::NAN,
                            max_steps: settings.max_steps,
                            best,
                            last: energy,
                        });
                    }
                }
            }
            if batches == 0 {
                return Err(TrainError::NoData);
            }
        }
        unreachable!("the epoch loop only ends by returning")
    })();
    results
        .into_iter()
        .zip(targets)
        .map(|(result, &target)| {
            result.unwrap_or_else(|| {
                let mut error = stop
                    .clone()
                    .expect_err("training stopped with targets open");
                if let TrainError::NotReached { target: t, .. } = &mut error {
                    *t = target;
                }
                Err(error)
            })
        })
        .collect()
}
