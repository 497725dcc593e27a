//! Checking a path read back from disk against the landscape: a saved string is a file
//! like any other, and a resumed run reports only what it has measured again.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::Landscape;
use levelset_models::flat::weight_mask;

use crate::evaluator::Evaluator;
use crate::path::{LengthOver, ModelPath, Outcome, PathReport, SegmentCheck};
use crate::report::verdict;

/// Relative difference allowed between a saved energy and the same energy measured again:
/// the same backend and machine give the same bits, but a saved path may come from a run
/// whose evaluation stacked its points differently (another summation order).
const TOLERANCE: f64 = 1e-5;

/// Measures `beads` again (every bead's energy and every segment on the report's grid, at
/// `limit`) and returns `report` if it says what they show: the same bead energies, segment
/// maxima, status, maximum and lengths. Otherwise says the first thing that differs.
pub fn recertify<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    beads: Vec<Tensor<B::InnerBackend, 1>>,
    report: &PathReport,
    limit: f64,
) -> Result<(), String> {
    let n = beads.len();
    if n < 2 || report.beads != n || report.bead_energies.len() != n {
        return Err(format!(
            "the report lists {} beads and {} bead energies, the saved string holds {n}",
            report.beads,
            report.bead_energies.len()
        ));
    }
    let evaluator = Evaluator::new(landscape);
    landscape.set_endpoints(&beads[0], &beads[n - 1]);
    let energies: Vec<f64> = beads.iter().map(|b| evaluator.energy(b)).collect();
    for (k, (&measured, &saved)) in energies.iter().zip(&report.bead_energies).enumerate() {
        if !close(measured, saved) {
            return Err(format!(
                "bead {k}'s energy is {measured}, the report says {saved}"
            ));
        }
    }
    // A failed run claims no path: its beads are what it reached, and nothing more is
    // reported of them.
    if report.status.outcome() == Outcome::Failed {
        return Ok(());
    }
    if report.segments.len() != n - 1 {
        return Err(format!(
            "the report checks {} segments between {n} beads",
            report.segments.len()
        ));
    }
    if report.grid < 2 {
        return Err(format!(
            "a check grid of {} points per segment",
            report.grid
        ));
    }
    let segments: Vec<SegmentCheck> = beads
        .windows(2)
        .zip(&report.segments)
        .map(|(pair, saved)| evaluator.check(&pair[0], &pair[1], report.grid, limit, saved.depth))
        .collect();
    for (k, (measured, saved)) in segments.iter().zip(&report.segments).enumerate() {
        if !close(measured.max_energy, saved.max_energy) || measured.passed != saved.passed {
            return Err(format!(
                "segment {k} rises to {} ({}), the report says {} ({})",
                measured.max_energy,
                passed(measured.passed),
                saved.max_energy,
                passed(saved.passed)
            ));
        }
    }
    let status = verdict(&energies, &segments, limit);
    if status.outcome() != report.status.outcome() {
        return Err(format!(
            "the string is {}, the report says {}",
            status.describe(),
            report.status.describe()
        ));
    }
    let path = ModelPath {
        beads,
        bead_energies: energies,
        segments,
        status,
        bends: Vec::new(),
    };
    let mask = weight_mask(evaluator.template());
    let all = path.normalized_length(None);
    let weights = path.normalized_length(Some(&mask));
    let length = match report.length_over {
        LengthOver::All => all,
        LengthOver::Weights => weights,
    };
    for (what, measured, saved) in [
        ("maximum energy", path.max_energy(), report.max_energy),
        ("normalized length", length, report.normalized_length),
        ("normalized length (all)", all, report.normalized_length_all),
        (
            "normalized length (weights)",
            weights,
            report.normalized_length_weights,
        ),
    ] {
        if !close(measured, saved) {
            return Err(format!("its {what} is {measured}, the report says {saved}"));
        }
    }
    Ok(())
}

/// Checks that `report`'s status and maximum follow from its own energies at `limit`: what
/// can be checked of a path whose points were not saved (a curve's samples).
pub fn consistent(report: &PathReport, limit: f64) -> Result<(), String> {
    let energies = &report.bead_energies;
    if let Some((k, e)) = energies.iter().enumerate().find(|(_, e)| e.is_nan()) {
        return Err(format!("point {k}'s energy is {e}"));
    }
    if report.status.outcome() == Outcome::Failed {
        return Ok(());
    }
    if energies.len() < 2 || report.segments.len() + 1 != energies.len() {
        return Err(format!(
            "the report lists {} energies and {} segments between them",
            energies.len(),
            report.segments.len()
        ));
    }
    let segments: Vec<SegmentCheck> = report
        .segments
        .iter()
        .map(|s| SegmentCheck {
            passed: s.max_energy <= limit,
            ..*s
        })
        .collect();
    let status = verdict(energies, &segments, limit);
    if status.outcome() != report.status.outcome() {
        return Err(format!(
            "its energies make it {}, the report says {}",
            status.describe(),
            report.status.describe()
        ));
    }
    let path_max = segments
        .iter()
        .map(|s| s.max_energy)
        .chain(energies.iter().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    if !close(path_max, report.max_energy) {
        return Err(format!(
            "its energies rise to {path_max}, the report says {}",
            report.max_energy
        ));
    }
    Ok(())
}

/// Whether a measured value agrees with a saved one: both finite and within [`TOLERANCE`],
/// or the same infinity (a NaN segment is recorded as +inf).
fn close(measured: f64, saved: f64) -> bool {
    if measured.is_finite() && saved.is_finite() {
        (measured - saved).abs() <= TOLERANCE * measured.abs().max(saved.abs()).max(1e-12)
    } else {
        measured == saved
    }
}

fn passed(p: bool) -> &'static str {
    if p { "passes" } else { "fails" }
}

#[cfg(test)]
mod tests {
    use levelset_models::Energy;

    use super::*;
    use crate::path::Status;

    /// A curve's report: five sampled energies, the segments between them.
    fn report(energies: &[f64], status: Status) -> PathReport {
        let segments = energies
            .windows(2)
            .map(|w| SegmentCheck {
                max_energy: w[0].max(w[1]),
                argmax_t: 0.5,
                passed: w[0].max(w[1]) <= 1.1,
                depth: 0,
            })
            .collect();
        PathReport {
            method: "bezier".into(),
            energy: Energy::TestLoss,
            level: 1.0,
            status,
            beads: energies.len(),
            normalized_length: 1.2,
            length_over: LengthOver::All,
            normalized_length_all: 1.2,
            normalized_length_weights: 1.2,
            endpoint_distance: 3.0,
            max_energy: energies.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            linear_barrier: 2.0,
            bead_energies: energies.to_vec(),
            segments,
            grid: 2,
            bead_steps: 10,
            energy_evaluations: 5,
            wall_seconds: 0.1,
            bn: None,
            control_points: Some(3),
        }
    }

    #[test]
    fn a_curve_report_must_follow_from_its_own_energies() {
        let below = [0.9, 1.0, 1.05, 1.0, 0.9];
        assert_eq!(consistent(&report(&below, Status::Connected), 1.1), Ok(()));
        // Connected, but a point rises above the limit.
        let above = [0.9, 1.0, 1.5, 1.0, 0.9];
        let e = consistent(&report(&above, Status::Connected), 1.1).unwrap_err();
        assert!(e.contains("the report says connected"), "{e}");
        // The segments' `passed` flags are recomputed, not read.
        let mut flagged = report(&above, Status::Connected);
        flagged.segments.iter_mut().for_each(|s| s.passed = true);
        assert!(consistent(&flagged, 1.1).is_err());
        let mut lower = report(&below, Status::Connected);
        lower.max_energy = 0.5;
        let e = consistent(&lower, 1.1).unwrap_err();
        assert!(e.contains("rise to 1.05, the report says 0.5"), "{e}");
        let e = consistent(&report(&[0.9, f64::NAN], Status::Connected), 1.1).unwrap_err();
        assert!(e.contains("point 1's energy is NaN"), "{e}");
        let mut cut = report(&below, Status::Connected);
        cut.segments.pop();
        assert!(
            consistent(&cut, 1.1)
                .unwrap_err()
                .contains("5 energies and 3 segments")
        );
    }
}
