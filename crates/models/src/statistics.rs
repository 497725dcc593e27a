//! `[bn]`: which running statistics a batch-normalized net is evaluated with at a point of
//! the landscape. The statistics are not coordinates (the flat vector skips them), so a point
//! between two nets has none of its own until this setting gives it some; every path method
//! reaches them only through `Landscape::energy`, which applies it.

use serde::{Deserialize, Serialize};

/// How a batch-normalized net's evaluation gets its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsMode {
    /// Reset, then a cumulative average over `batches` training batches in training mode
    /// without gradients (PyTorch's `update_bn`, as Garipov et al. at every curve point).
    #[default]
    Recompute,
    /// The two endpoints' statistics (as the statistics pass gives them), interpolated at
    /// the point's position along the segment between them, its projection clamped to
    /// [0, 1] (on the straight line, Li et al.'s and Draxler et al.'s interpolation).
    Interpolate,
    /// Each evaluation batch's own statistics.
    Batch,
}

impl StatsMode {
    pub fn name(self) -> &'static str {
        match self {
            StatsMode::Recompute => "recompute",
            StatsMode::Interpolate => "interpolate",
            StatsMode::Batch => "batch",
        }
    }
}

/// The `[bn]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BnConfig {
    #[serde(default)]
    pub stats: StatsMode,
    /// Training batches of the statistics pass (`recompute`).
    #[serde(default = "default_batches")]
    pub batches: usize,
}

/// The statistics pass's default length, a fraction of an evaluation's cost at the batch
/// sizes the configs use; the book's statistics table shows what the choice does.
fn default_batches() -> usize {
    20
}

impl Default for BnConfig {
    fn default() -> Self {
        Self {
            stats: StatsMode::default(),
            batches: default_batches(),
        }
    }
}

impl BnConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.batches == 0 || self.batches > 100_000 {
            return Err(format!(
                "bn.batches must be in 1..=100000, got {}",
                self.batches
            ));
        }
        Ok(())
    }
}
