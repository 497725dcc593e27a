//! Learning-rate schedules over a fixed number of steps.

use levelset_models::optim::OptimizerConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    Constant,
    /// The base rate for the first `hold` fraction of the steps, then linearly down to
    /// `final_factor` times the base at the `until` fraction, then constant.
    LinearDecay {
        hold: f64,
        until: f64,
        final_factor: f64,
    },
}

impl LrSchedule {
    /// Garipov et al.'s curve schedule: constant for half the run, down to 1% by 90%.
    pub fn garipov() -> Self {
        LrSchedule::LinearDecay {
            hold: 0.5,
            until: 0.9,
            final_factor: 0.01,
        }
    }

    /// `prefix` names the setting in messages (`curve.schedule`).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if let LrSchedule::LinearDecay {
            hold,
            until,
            final_factor,
        } = *self
        {
            if !(0.0..=1.0).contains(&hold) {
                return Err(format!("{prefix}.hold must be in [0, 1], got {hold}"));
            }
            if !(until > hold && until <= 1.0) {
                return Err(format!(
                    "{prefix}.until must be in ({hold}, 1] (after hold), got {until}"
                ));
            }
            if !(final_factor > 0.0 && final_factor.is_finite()) {
                return Err(format!(
                    "{prefix}.final_factor must be a positive number, got {final_factor}"
                ));
            }
        }
        Ok(())
    }

    /// The multiplier of the base rate after the `progress` fraction (0..1) of the steps.
    pub fn factor(&self, progress: f64) -> f64 {
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::LinearDecay {
                hold,
                until,
                final_factor,
            } => {
                if progress <= hold {
                    1.0
                } else if progress >= until {
                    final_factor
                } else {
                    1.0 + (final_factor - 1.0) * (progress - hold) / (until - hold)
                }
            }
        }
    }
}

/// Checks an optimizer config for a path method (`prefix` names its section). Per-epoch decay
/// and training's per-step schedule are refused: path methods count steps, not epochs, have
/// no `train.max_steps`, and set their rates themselves (`curve.schedule`, `neb.cycles`).
pub(crate) fn validate_optimizer(optimizer: &OptimizerConfig, prefix: &str) -> Result<(), String> {
    optimizer
        .validate()
        .map_err(|e| format!("{prefix}.optimizer.{e}"))?;
    match optimizer {
        OptimizerConfig::Sgd { decay: Some(_), .. } => Err(format!(
            "{prefix}.optimizer.decay does not apply to path methods: their steps are not epochs"
        )),
        OptimizerConfig::Sgd {
            schedule: Some(_), ..
        } => Err(format!(
            "{prefix}.optimizer.schedule does not apply to path methods: they set their own \
             learning rates"
        )),
        _ => Ok(()),
    }
}
