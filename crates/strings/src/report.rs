//! Turning a finished [`ModelPath`] into its [`PathReport`]: the metrics are computed the same way
//! for every method, so methods can be compared on the same pairs.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use levelset_models::Landscape;
use levelset_models::flat::{distance, weight_mask};

use crate::evaluator::Evaluator;
use crate::path::{LengthOver, ModelPath, PathReport, SegmentCheck, Status};

/// How a method ran, beside the path it produced.
pub(crate) struct Run {
    pub method: &'static str,
    pub level: f64,
    pub length_over: LengthOver,
    /// Highest energy on the straight line between the endpoints.
    pub linear_barrier: f64,
    /// Check points per segment.
    pub grid: usize,
    /// Optimizer steps the method spent.
    pub steps: usize,
    pub start: Instant,
}

pub(crate) fn report<B: AutodiffBackend, L: Landscape<B>>(
    evaluator: &Evaluator<'_, B, L>,
    path: &ModelPath<B::InnerBackend>,
    run: Run,
) -> PathReport {
    let mask = weight_mask(evaluator.template());
    let all = path.normalized_length(None);
    let weights = path.normalized_length(Some(&mask));
    PathReport {
        method: run.method.into(),
        energy: evaluator.landscape.energy_kind(),
        level: run.level,
        status: path.status.clone(),
        beads: path.beads.len(),
        normalized_length: match run.length_over {
            LengthOver::All => all,
            LengthOver::Weights => weights,
        },
        length_over: run.length_over,
        normalized_length_all: all,
        normalized_length_weights: weights,
        endpoint_distance: distance(&path.beads[0], &path.beads[path.beads.len() - 1]),
        max_energy: path.max_energy(),
        linear_barrier: run.linear_barrier,
        bead_energies: path.bead_energies.clone(),
        segments: path.segments.clone(),
        grid: run.grid,
        bead_steps: run.steps,
        energy_evaluations: evaluator.evaluations(),
        wall_seconds: run.start.elapsed().as_secs_f64(),
        bn: evaluator.landscape.statistics(),
        control_points: (!path.bends.is_empty()).then_some(path.bends.len()),
    }
}

/// The status of a path whose every point was evaluated: connected when no bead and no
/// segment rises above `limit`; otherwise the segments that do (or touch a bead that does).
pub(crate) fn verdict(bead_energies: &[f64], segments: &[SegmentCheck], limit: f64) -> Status {
    let within = |e: f64| e <= limit;
    let failing: Vec<usize> = segments
        .iter()
        .enumerate()
        .filter(|(i, s)| !(s.passed && within(bead_energies[*i]) && within(bead_energies[i + 1])))
        .map(|(i, _)| i)
        .collect();
    if failing.is_empty() {
        return Status::Connected;
    }
    let highest = segments
        .iter()
        .map(|s| s.max_energy)
        .chain(bead_energies.iter().copied())
        .map(|e| if e.is_nan() { f64::INFINITY } else { e })
        .fold(f64::NEG_INFINITY, f64::max);
    Status::NotConnected {
        reason: format!("the path rises to {highest} above {limit}"),
        failing_segments: failing,
        depth: 0,
    }
}
