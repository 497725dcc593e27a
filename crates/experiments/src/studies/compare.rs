//! `levelset reproduce methods`: every path method, with and without weight matching, on the
//! same endpoint pairs: a table and the energy profile along each path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train};
use levelset_models::flat::distance;
use levelset_strings::{Outcome, align};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::figures::{Figure, Series, draw};
use crate::output::tables::{mean, write_study};
use crate::pair::{MethodName, connect_pair, flat_of, pair_seeds, train_endpoint};

const METHODS: [(MethodName, &str, RGBColor); 4] = [
    (MethodName::Dss, "dss", RGBColor(31, 119, 180)),
    (MethodName::Bezier, "bezier", RGBColor(214, 39, 40)),
    (MethodName::Polychain, "polychain", RGBColor(44, 160, 44)),
    (MethodName::Neb, "neb", RGBColor(148, 103, 189)),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub pair: usize,
    pub method: String,
    pub aligned: bool,
    pub outcome: Outcome,
    /// Highest energy along the path minus the higher endpoint energy.
    pub max_above_endpoints: f64,
    pub max_energy: f64,
    pub normalized_length: f64,
    /// Beads (DSS), pivots with endpoints (NEB) or curve samples (Bezier, polychain).
    pub beads: usize,
    pub energy_evaluations: usize,
    pub optimizer_steps: usize,
    pub wall_seconds: f64,
}

pub struct CompareArgs {
    pub config: ExperimentConfig,
    pub out: PathBuf,
}

pub fn run(args: CompareArgs) -> Result<Vec<CompareRow>> {
    let compare = args
        .config
        .compare
        .clone()
        .with_context(|| format!("config {} has no [compare] section", args.config.name))?;
    for (method, _, _) in METHODS {
        method.method(&args.config)?;
    }
    compare.validate().map_err(anyhow::Error::msg)?;
    with_landscape(&args.config.clone(), args)?
}

/// Energy against the fraction of the path's length travelled: bead energies, and each
/// segment's checked maximum where it occurred.
fn profile(path: &levelset_strings::ModelPath<Compute>) -> Vec<(f64, f64, Option<f64>)> {
    let lengths: Vec<f64> = path
        .beads
        .windows(2)
        .map(|w| distance(&w[0], &w[1]))
        .collect();
    let total: f64 = lengths.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut points = Vec::new();
    let mut travelled = 0.0;
    for (k, energy) in path.bead_energies.iter().enumerate() {
        points.push((travelled / total, *energy, None));
        if let (Some(len), Some(seg)) = (lengths.get(k), path.segments.get(k)) {
            points.push((
                (travelled + seg.argmax_t * len) / total,
                seg.max_energy,
                None,
            ));
            travelled += len;
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

impl WithLandscape for CompareArgs {
    type Output = Result<Vec<CompareRow>>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<Vec<CompareRow>> {
        let compare = self.config.compare.clone().expect("checked by run");
        let level = compare.level;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let mut rows = Vec::new();
        let mut profiles: [Vec<Series>; 2] = [Vec::new(), Vec::new()];
        for pair in 0..compare.pairs {
            let (sa, sb) = pair_seeds(compare.seed, pair);
            let a = train_endpoint(&landscape, &self.config, level, sa)?;
            let b = train_endpoint(&landscape, &self.config, level, sb)?;
            let endpoint_max = a.energy.max(b.energy);
            let (fa, fb) = (flat_of(&a.model), flat_of(&b.model));
            let align_config = self.config.align.clone().unwrap_or_default();
            let aligned = align::<Train, _>(&landscape, &fa, &fb, &align_config, sa)
                .map_err(|e| anyhow::anyhow!("weight matching: {e}"))?;
            for (use_aligned, second) in [(false, fb.clone()), (true, aligned.b.clone())] {
                for (method, name, color) in METHODS {
                    let (path, report) = connect_pair(
                        &landscape,
                        &method.method(&self.config)?,
                        fa.clone(),
                        second.clone(),
                        level,
                        sa,
                    )?;
                    tracing::info!(pair, method = name, aligned = use_aligned, status = %report.status.describe(), "path done");
                    if pair == 0 {
                        profiles[use_aligned as usize].push(Series {
                            label: name.into(),
                            points: profile(&path),
                            color,
                        });
                    }
                    rows.push(CompareRow {
                        pair,
                        method: name.into(),
                        aligned: use_aligned,
                        outcome: report.status.outcome(),
                        max_above_endpoints: report.max_energy - endpoint_max,
                        max_energy: report.max_energy,
                        normalized_length: report.normalized_length,
                        beads: report.beads,
                        energy_evaluations: report.energy_evaluations,
                        optimizer_steps: report.bead_steps,
                        wall_seconds: report.wall_seconds,
                    });
                }
            }
        }
        write_outputs(&self.out, &self.config, level, &rows)?;
        for (series, suffix, what) in [
            (&profiles[0], "", "unaligned"),
            (&profiles[1], "-aligned", "weight-matched"),
        ] {
            draw(
                &Figure {
                    title: format!(
                        "{}: energy along each path (pair 0, {what})",
                        self.config.name
                    ),
                    x_label: "fraction of the path's length".into(),
                    y_label: format!("{}", self.config.energy),
                    log_x: false,
                    series: series.clone(),
                },
                &self.out.join(format!("profile{suffix}")),
            )?;
        }
        Ok(rows)
    }
}

fn write_outputs(
    out: &Path,
    config: &ExperimentConfig,
    level: f64,
    rows: &[CompareRow],
) -> Result<()> {
    let mut table = format!(
        "{} at {} <= {level} (means over pairs)\n\n\
         | method | aligned | connected | max above endpoints | normalized length | beads | evaluations | optimizer steps | seconds |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        config.name, config.energy
    );
    for aligned in [false, true] {
        for (_, name, _) in METHODS {
            let group: Vec<&CompareRow> = rows
                .iter()
                .filter(|r| r.method == name && r.aligned == aligned)
                .collect();
            // NaN for a method without rows, as the table has always printed it.
            let mean_of =
                |f: fn(&CompareRow) -> f64| mean(group.iter().map(|r| f(r))).unwrap_or(f64::NAN);
            table.push_str(&format!(
                "| {name} | {} | {}/{} | {:.5} | {:.3} | {:.1} | {:.0} | {:.0} | {:.1} |\n",
                if aligned { "yes" } else { "no" },
                group
                    .iter()
                    .filter(|r| r.outcome == Outcome::Connected)
                    .count(),
                group.len(),
                mean_of(|r| r.max_above_endpoints),
                mean_of(|r| r.normalized_length),
                mean_of(|r| r.beads as f64),
                mean_of(|r| r.energy_evaluations as f64),
                mean_of(|r| r.optimizer_steps as f64),
                mean_of(|r| r.wall_seconds),
            ));
        }
    }
    write_study(out, rows, rows, &table)?;
    println!("{table}");
    Ok(())
}
