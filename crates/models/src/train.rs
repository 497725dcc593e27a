//! Training a model until its energy falls to a level.

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::landscape::{Energy, Landscape};
use crate::optim::OptimizerConfig;

const LOG_EVERY: Duration = Duration::from_secs(10);

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
    mut model: L::Model,
    target: f64,
    settings: &TrainSettings,
    seed: u64,
    progress: &ProgressBar,
) -> Result<Trained<L::Model>, TrainError> {
    let kind = landscape.energy_kind();
    progress.set_length(settings.max_steps as u64);
    progress.set_position(0);
    // The bar is invisible when stderr is not a terminal (logs, CI); a throttled log line
    // keeps long runs observable there too.
    let mut last_log = Instant::now();
    let mut check = |model: &L::Model, steps: usize, best: &mut f64| {
        let energy = landscape.energy(&model.valid());
        if !energy.is_finite() {
            return Err(TrainError::NotFinite {
                energy: kind,
                steps,
                value: energy,
            });
        }
        *best = best.min(energy);
        progress.set_message(format!("{kind} {energy:.5} -> {target}"));
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            tracing::info!(steps, energy, target, "training");
        } else {
            tracing::debug!(steps, energy, target, "energy check");
        }
        Ok(energy)
    };

    let mut best = f64::INFINITY;
    let energy = check(&model, 0, &mut best)?;
    if energy <= target {
        return Ok(Trained {
            model,
            steps: 0,
            energy,
        });
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
                let energy = check(&model, steps, &mut best)?;
                if energy <= target {
                    tracing::debug!(steps, energy, "level reached");
                    return Ok(Trained {
                        model,
                        steps,
                        energy,
                    });
                }
                if steps >= settings.max_steps {
                    return Err(TrainError::NotReached {
                        energy: kind,
                        target,
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
}
