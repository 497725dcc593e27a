//! Training a model until its energy falls to a level.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::heartbeat::Heartbeat;
use crate::landscape::{Energy, Landscape};
use crate::optim::OptimizerConfig;
use crate::prefetch::Epoch;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub optimizer: OptimizerConfig,
    /// The energy is evaluated every this many optimizer steps.
    pub check_every: usize,
    /// Step budget; reaching it without the level is an error.
    pub max_steps: usize,
    /// What decides that the level is reached (absent: the energy, every `check_every` steps).
    #[serde(default, skip_serializing_if = "StopRule::is_energy")]
    pub stop: StopRule,
}

/// When training stops at a level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum StopRule {
    /// The energy, evaluated every `check_every` steps, is at most the level.
    #[default]
    Energy,
    /// The authors' polynomial endpoints: the mean of the last `check_every` training losses
    /// (each taken before its step's update) is at most the level; or the energy, evaluated
    /// every `energy_every` steps, is. The energy recorded for the stopped model is its
    /// energy all the same, so it may lie a little above the level.
    TrainLossMean { energy_every: usize },
}

impl StopRule {
    pub fn is_energy(&self) -> bool {
        matches!(self, StopRule::Energy)
    }
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
        if let StopRule::TrainLossMean { energy_every: 0 } = self.stop {
            return Err("stop.energy_every must be at least 1".into());
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

type Results<M> = Vec<Option<Result<Trained<M>, TrainError>>>;

/// Fills every open target that `value` reaches with `model`, recorded with its `energy`,
/// and reports whether any target stays open.
fn record<M: Clone>(
    results: &mut Results<M>,
    targets: &[f64],
    model: &M,
    steps: usize,
    value: f64,
    energy: f64,
) -> bool {
    for (result, &target) in results.iter_mut().zip(targets) {
        if result.is_none() && value <= target {
            tracing::debug!(steps, value, energy, target, "level reached");
            *result = Some(Ok(Trained {
                model: model.clone(),
                steps,
                energy,
            }));
        }
    }
    results.iter().any(Option::is_none)
}

/// Whether `value` reaches a target that is still open.
fn reaches_open<M>(results: &Results<M>, targets: &[f64], value: f64) -> bool {
    results
        .iter()
        .zip(targets)
        .any(|(result, &target)| result.is_none() && value <= target)
}

/// Training losses summed between two checks of [`StopRule::TrainLossMean`].
#[derive(Default)]
struct TrainLossWindow {
    sum: f64,
    count: usize,
}

impl TrainLossWindow {
    fn push(&mut self, loss: f64) {
        self.sum += loss;
        self.count += 1;
    }

    /// The mean since the last take (none when no loss came in), and a fresh window.
    fn take(&mut self) -> Option<f64> {
        let mean = (self.count > 0).then(|| self.sum / self.count as f64);
        *self = Self::default();
        mean
    }
}

/// Trains `model` until `landscape.energy(model) <= target` (or, under
/// [`StopRule::TrainLossMean`], its recent training losses are), checking every
/// `settings.check_every` steps (and the energy once before the first step). `seed` fixes the data
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
    model: L::Model,
    targets: &[f64],
    settings: &TrainSettings,
    seed: u64,
    progress: &ProgressBar,
) -> Vec<Result<Trained<L::Model>, TrainError>> {
    train_to_levels_observed(
        landscape,
        model,
        targets,
        settings,
        seed,
        progress,
        |_, _| {},
    )
}

/// [`train_to_levels`] that hands every energy check, as (steps, energy), to `on_check`: the
/// training curve, for measuring how low a task's training gets.
pub fn train_to_levels_observed<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    mut model: L::Model,
    targets: &[f64],
    settings: &TrainSettings,
    seed: u64,
    progress: &ProgressBar,
    mut on_check: impl FnMut(usize, f64),
) -> Vec<Result<Trained<L::Model>, TrainError>> {
    let kind = landscape.energy_kind();
    let lowest = targets.iter().copied().fold(f64::INFINITY, f64::min);
    progress.set_length(settings.max_steps as u64);
    progress.set_position(0);
    let mut results: Results<L::Model> = targets.iter().map(|_| None).collect();
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
        on_check(steps, energy);
        progress.set_message(format!("{kind} {energy:.5} -> {lowest}"));
        if heartbeat.due() {
            tracing::info!(steps, energy, target = lowest, "training");
        } else {
            tracing::debug!(steps, energy, target = lowest, "energy check");
        }
        Ok((energy, best))
    };
    let energy_every = match settings.stop {
        StopRule::Energy => settings.check_every,
        StopRule::TrainLossMean { energy_every } => energy_every,
    };
    // The training losses since the last check, summed on the host (read only under the
    // train-loss rule, which the small polynomial nets use).
    let mut window = TrainLossWindow::default();

    let stop = (|| {
        let (energy, _) = check(&model, 0)?;
        if !record(&mut results, targets, &model, 0, energy, energy) {
            return Ok(());
        }
        let loader = landscape.loader(seed);
        let mut optimizer = settings.optimizer.init::<B, L::Model>();
        let mut steps = 0;
        for epoch in 0.. {
            let mut carry = landscape.carry(seed, epoch);
            let mut batches = 0;
            for batch in Epoch::of(&loader, landscape.device()) {
                batches += 1;
                let loss = landscape.loss(&model, batch, &mut carry);
                if !settings.stop.is_energy() {
                    window.push(loss.clone().into_scalar().elem::<f64>());
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                // Per step: a schedule changes the rate within an epoch (per-epoch decay gives
                // the same rate for every step of the epoch).
                let lr = settings
                    .optimizer
                    .learning_rate_at(steps, settings.max_steps, epoch);
                model = optimizer.step(lr, model, grads);
                steps += 1;
                progress.set_position(steps as u64);
                let last = steps == settings.max_steps;
                let mean = match settings.stop {
                    StopRule::TrainLossMean { .. } if steps % settings.check_every == 0 || last => {
                        window.take()
                    }
                    _ => None,
                };
                // A mean that reaches an open target (or is not finite) needs the model's
                // energy to record it (or to report the divergence).
                let open_reached = |m: f64| !m.is_finite() || reaches_open(&results, targets, m);
                if steps % energy_every == 0 || last || mean.is_some_and(open_reached) {
                    let (energy, best) = check(&model, steps)?;
                    let value = mean.map_or(energy, |m| m.min(energy));
                    if !record(&mut results, targets, &model, steps, value, energy) {
                        return Ok(());
                    }
                    if last {
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
