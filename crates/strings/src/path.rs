//! The result of every path method: beads in order, what was checked between them, and the
//! metrics the paper reports.

use burn::prelude::*;
use levelset_models::Energy;
use levelset_models::flat::distance;
use levelset_models::statistics::BnConfig;
use serde::{Deserialize, Serialize};

/// The highest energy found on the check grid of one straight segment between two beads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentCheck {
    pub max_energy: f64,
    /// Where on the segment (0 = left bead, 1 = right bead) the maximum occurred.
    pub argmax_t: f64,
    /// Whether `max_energy` stayed within `slack * level`.
    pub passed: bool,
    /// Subdivisions of the endpoint segment that produced this segment.
    pub depth: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Every segment passed: the string certifies a path below `slack * level`.
    Connected,
    /// Some segments still fail at the depth or bead cap. Failure proves nothing.
    NotConnected {
        reason: String,
        failing_segments: Vec<usize>,
        depth: usize,
    },
    /// The method could not run to the end (a bead missed its target, an energy was NaN).
    Failed { reason: String },
}

impl Status {
    pub fn is_connected(&self) -> bool {
        matches!(self, Status::Connected)
    }

    /// One line for people: "connected", "not connected: `<reason>`", "failed: `<reason>`".
    pub fn describe(&self) -> String {
        match self {
            Status::Connected => "connected".into(),
            Status::NotConnected { reason, .. } => format!("not connected: {reason}"),
            Status::Failed { reason } => format!("failed: {reason}"),
        }
    }

    /// The outcome, without its reason.
    pub fn outcome(&self) -> Outcome {
        match self {
            Status::Connected => Outcome::Connected,
            Status::NotConnected { .. } => Outcome::NotConnected,
            Status::Failed { .. } => Outcome::Failed,
        }
    }
}

/// How a path ended, as result rows record it ("connected", "not_connected", "failed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Connected,
    NotConnected,
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Connected => "connected",
            Outcome::NotConnected => "not_connected",
            Outcome::Failed => "failed",
        })
    }
}

/// Which parameters geodesic lengths are measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LengthOver {
    /// Every parameter (the paper's MNIST, CIFAR-10 and PTB scripts).
    #[default]
    All,
    /// Weight matrices and kernels only (the paper's polynomial scripts).
    Weights,
}

impl std::fmt::Display for LengthOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LengthOver::All => "all",
            LengthOver::Weights => "weight",
        })
    }
}

/// An ordered string of models from the first endpoint to the second.
#[derive(Debug, Clone)]
pub struct ModelPath<B: Backend> {
    pub beads: Vec<Tensor<B, 1>>,
    pub bead_energies: Vec<f64>,
    /// `segments[i]` lies between `beads[i]` and `beads[i + 1]`.
    pub segments: Vec<SegmentCheck>,
    pub status: Status,
    /// A curve's points of control in coefficient order, the endpoints first and last (its
    /// beads are its samples, rebuilt from these); empty for strings and bands, whose beads
    /// are their points.
    pub bends: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModelPath<B> {
    /// Σ‖θ_{k+1} − θ_k‖ / ‖θ_last − θ_first‖, over the entries where `mask` is 1 (all entries
    /// without a mask). 1 for a straight string.
    pub fn normalized_length(&self, mask: Option<&Tensor<B, 1>>) -> f64 {
        let masked = |t: &Tensor<B, 1>| match mask {
            Some(m) => t.clone() * m.clone(),
            None => t.clone(),
        };
        let beads: Vec<_> = self.beads.iter().map(masked).collect();
        let total: f64 = beads.windows(2).map(|w| distance(&w[0], &w[1])).sum();
        total / distance(&beads[0], &beads[beads.len() - 1])
    }

    /// The highest energy certified along the string: bead energies and every checked point.
    pub fn max_energy(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.max_energy)
            .chain(self.bead_energies.iter().copied())
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// What a connection reports, as written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    pub method: String,
    pub energy: Energy,
    pub level: f64,
    #[serde(flatten)]
    pub status: Status,
    /// Models in the string, endpoints included.
    pub beads: usize,
    /// Normalized geodesic length over the parameters chosen by `length_over`.
    pub normalized_length: f64,
    pub length_over: LengthOver,
    pub normalized_length_all: f64,
    pub normalized_length_weights: f64,
    /// ‖θ_B − θ_A‖ over all parameters.
    pub endpoint_distance: f64,
    /// Highest energy checked along the final string.
    pub max_energy: f64,
    /// Highest energy on the straight line between the endpoints.
    pub linear_barrier: f64,
    pub bead_energies: Vec<f64>,
    pub segments: Vec<SegmentCheck>,
    /// Check points per segment: `t = k / grid`, `k = 1..grid`.
    pub grid: usize,
    /// Optimizer steps spent training beads.
    pub bead_steps: usize,
    pub energy_evaluations: usize,
    pub wall_seconds: f64,
    /// How a batch-normalized net's running statistics were set at every point (`[bn]`);
    /// absent for nets without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn: Option<BnConfig>,
    /// A curve's points of control, its endpoints included (the checkpoints its samples are
    /// rebuilt from); absent for strings and bands, whose beads are their points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_points: Option<usize>,
}

/// Each point's position along the polygonal path through `points`, by length: 0 at the
/// first, 1 at the last (all 0 when the path has no length).
pub fn positions(points: &[Vec<f32>]) -> Vec<f64> {
    let mut along = vec![0.0];
    for pair in points.windows(2) {
        let step: f64 = pair[0]
            .iter()
            .zip(&pair[1])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            .sqrt();
        along.push(along.last().copied().unwrap_or(0.0) + step);
    }
    let total = along.last().copied().unwrap_or(0.0);
    along
        .into_iter()
        .map(|d| if total > 0.0 { d / total } else { 0.0 })
        .collect()
}
