//! `levelset reproduce width`: one-hidden-layer ReLU nets of growing width m on a fixed
//! low-dimensional task (Thm 2.4 / Cor 2.5): how far above L0 paths must go, and how curved
//! they are, against m. Each width is an ordinary sweep in its own folder, so it resumes.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use levelset_models::Landscape;
use levelset_models::backend::Train;
use levelset_strings::Outcome;

use crate::config::{ExperimentConfig, TaskConfig};
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::figures::{Figure, LEVELSET_COLOR, Series, draw};
use crate::output::tables::{mean, number, write_study};
use crate::pair::{Endpoints, connect_pair, pair_seeds};
use crate::studies::sweep::{SweepArgs, SweepResults, sweep_on};

#[derive(Debug, Clone, Serialize)]
pub struct WidthRow {
    pub width: usize,
    pub pairs: usize,
    pub connected: usize,
    /// Mean over pairs of the straight line's maximum minus L0.
    pub linear_gap: Option<f64>,
    /// Mean over connected pairs of the string's certified maximum minus L0.
    pub string_gap: Option<f64>,
    /// Mean over pairs of the trained one-bend curve's maximum minus L0 (with a `[curve]`
    /// section): the gap of the best path found at fixed complexity, the theory's quantity.
    pub curve_gap: Option<f64>,
    pub length: Option<f64>,
    pub beads: Option<f64>,
}

/// Least-squares slope of log y against log x over the points with y > 0.
pub fn log_log_slope(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let (mx, my) = (
        logs.iter().map(|p| p.0).sum::<f64>() / n,
        logs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// One width: its sweep, then (with a [curve] section) the maximum minus L0 of a trained
/// curve between every pair whose endpoints reached the level, on the sweep's own endpoints.
struct WidthSweep {
    args: SweepArgs,
}

impl WithLandscape for WidthSweep {
    type Output = Result<(SweepResults, Vec<f64>)>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Self::Output {
        let config = &self.args.config;
        let sweep = self.args.validate()?.clone();
        let mut endpoints = Endpoints::new(&sweep.levels);
        let results = sweep_on(&self.args, &landscape, &mut endpoints)?;
        if config.curve.is_none() {
            return Ok((results, Vec::new()));
        }
        // The config's curve, of its own kind.
        let method = levelset_strings::Method::Curve(config.curve()?.clone());
        let mut gaps = Vec::new();
        for &level in &sweep.levels {
            for pair in 0..sweep.pairs {
                let (sa, sb) = pair_seeds(sweep.seed, pair);
                let (Ok(a), Ok(b)) = (
                    endpoints.get(&landscape, config, level, sa),
                    endpoints.get(&landscape, config, level, sb),
                ) else {
                    continue;
                };
                let (_, report) = connect_pair(&landscape, &method, a.flat, b.flat, level, sa)?;
                gaps.push(report.max_energy - level);
            }
        }
        Ok((results, gaps))
    }
}

fn row(width: usize, results: &SweepResults, curve_gaps: &[f64]) -> WidthRow {
    let rows = &results.rows;
    let connected = || rows.iter().filter(|r| r.outcome == Outcome::Connected);
    WidthRow {
        width,
        pairs: rows.len(),
        connected: connected().count(),
        linear_gap: mean(
            rows.iter()
                .filter_map(|r| r.linear_barrier.map(|b| b - r.level)),
        ),
        string_gap: mean(connected().filter_map(|r| r.max_energy.map(|m| m - r.level))),
        curve_gap: mean(curve_gaps.iter().copied()),
        length: mean(connected().filter_map(|r| r.normalized_length)),
        beads: mean(connected().filter_map(|r| r.beads.map(|b| b as f64))),
    }
}

pub fn run(config: &ExperimentConfig, out: &Path) -> Result<Vec<WidthRow>> {
    let widths = config
        .width
        .clone()
        .with_context(|| format!("config {} has no [width] section", config.name))?;
    let TaskConfig::ReluWidth { input_dim, .. } = config.task else {
        bail!("reproduce width needs a relu_width task");
    };
    let mut rows = Vec::new();
    for &m in &widths.widths {
        let mut at = config.clone();
        at.name = format!("{}-m{m}", config.name);
        if let TaskConfig::ReluWidth { width, .. } = &mut at.task {
            *width = m;
        }
        let args = SweepArgs {
            config: at.clone(),
            out: out.join(format!("m{m}")),
            resume: true,
            shard: None,
        };
        args.validate()?;
        let (results, curve_gaps) = with_landscape(&at, WidthSweep { args })??;
        rows.push(row(m, &results, &curve_gaps));
    }
    let slope = |pick: fn(&WidthRow) -> Option<f64>| {
        log_log_slope(
            &rows
                .iter()
                .filter_map(|r| pick(r).map(|v| (r.width as f64, v)))
                .collect::<Vec<_>>(),
        )
    };
    let num = |v: Option<f64>| number(v, 4);
    let mut table = format!(
        "{} ({}, input dimension n = {input_dim}; means over pairs)\n\n\
         | width m | connected | straight-line max − L0 | string max − L0 | curve max − L0 | normalized length | beads |\n\
         |---|---|---|---|---|---|---|\n",
        config.name, config.energy
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {}/{} | {} | {} | {} | {} | {} |\n",
            r.width,
            r.connected,
            r.pairs,
            num(r.linear_gap),
            num(r.string_gap),
            num(r.curve_gap),
            num(r.length),
            num(r.beads)
        ));
    }
    table.push_str(&format!(
        "\nFitted log-log slopes against m: straight-line gap {}, trained curve's gap {}, \
         normalized length − 1 {}, beads {} (theory's rate for the best path's gap: \
         O(m^(-1/n)), slope {:.3}). The string's own gap is held below (slack − 1) L0 by DSS's \
         check, so it cannot show the rate.\n",
        num(slope(|r| r.linear_gap)),
        num(slope(|r| r.curve_gap)),
        num(slope(|r| r.length.map(|l| l - 1.0))),
        num(slope(|r| r.beads)),
        -1.0 / input_dim as f64
    ));
    write_study(out, &rows, &rows, &table)?;
    println!("{table}");
    let series = |label: &str, pick: fn(&WidthRow) -> Option<f64>| Series {
        label: label.into(),
        points: rows
            .iter()
            .filter_map(|r| pick(r).map(|v| (r.width as f64, v, None)))
            .collect(),
        color: LEVELSET_COLOR,
    };
    for (stem, y_label, pick) in [
        (
            "gap",
            "straight-line max − L0",
            (|r| r.linear_gap) as fn(&WidthRow) -> Option<f64>,
        ),
        ("curve-gap", "trained curve's max − L0", |r| r.curve_gap),
        ("length", "normalized geodesic length", |r| r.length),
        ("beads", "beads (endpoints included)", |r| r.beads),
    ] {
        if stem == "curve-gap" && config.curve.is_none() {
            continue;
        }
        draw(
            &Figure {
                title: format!("{}: {y_label} against width", config.name),
                x_label: "hidden width m (log scale)".into(),
                y_label: y_label.into(),
                log_x: true,
                series: vec![series("levelset (mean over pairs)", pick)],
            },
            &out.join(stem),
        )?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::log_log_slope;

    #[test]
    fn slope_of_a_power_law() {
        let points: Vec<(f64, f64)> = [2.0, 4.0, 8.0, 16.0]
            .iter()
            .map(|&m: &f64| (m, 3.0 * m.powf(-0.5)))
            .collect();
        assert!((log_log_slope(&points).unwrap() + 0.5).abs() < 1e-12);
        assert_eq!(log_log_slope(&[(2.0, 1.0)]), None);
        assert_eq!(log_log_slope(&[(2.0, -1.0), (4.0, 0.0)]), None);
    }
}
