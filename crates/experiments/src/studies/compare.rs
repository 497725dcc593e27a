//! `levelset reproduce methods`: every path method, with and without weight matching, on the
//! same endpoint pairs: a table and the energy profile along each path; for a net with running
//! statistics, `[compare] statistics` adds a table of the straight line and the DSS string with
//! each `[bn] stats` mode, on the same pairs. Every finished path is kept in `progress.json`,
//! so a stopped comparison continues from its last one, and a finished one is redrawn.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::Tensor;
use levelset_models::Landscape;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Compute, Train};
use levelset_models::flat::distance;
use levelset_models::statistics::StatsMode;
use levelset_strings::{Outcome, align};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::figures::{Figure, Series, draw};
use crate::output::tables::{mean, write_csv, write_study};
use crate::pair::{MethodName, connect_pair, flat_of, pair_seeds, train_endpoint};
use crate::resumable::{check_origin, read_json};

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

/// The straight line and the DSS string of one pair with one way of setting a point's
/// running statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticsRow {
    pub pair: usize,
    pub stats: StatsMode,
    /// Highest energy on the straight line between the endpoints.
    pub line_max_energy: f64,
    pub outcome: Outcome,
    pub max_energy: f64,
    pub normalized_length: f64,
    pub beads: usize,
    pub energy_evaluations: usize,
    pub wall_seconds: f64,
}

/// One path's energy profile (pair 0's paths are drawn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    method: String,
    aligned: bool,
    points: Vec<(f64, f64)>,
}

/// What a comparison has finished (`progress.json`), rewritten after every path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    backend: String,
    config: ExperimentConfig,
    rows: Vec<CompareRow>,
    profiles: Vec<Profile>,
    statistics: Vec<StatisticsRow>,
}

impl Progress {
    fn path(out: &Path) -> PathBuf {
        out.join("progress.json")
    }

    /// The earlier progress in `out` of this config on this backend, or a fresh start.
    fn read_or_start(out: &Path, config: &ExperimentConfig) -> Result<Progress> {
        let path = Self::path(out);
        let instead = "remove it (and the folder's results) to compare again from the start";
        let Some(earlier) =
            read_json::<Progress>(&path, "a levelset comparison's progress", instead)?
        else {
            return Ok(Progress {
                backend: BACKEND_NAME.to_string(),
                config: config.clone(),
                rows: Vec::new(),
                profiles: Vec::new(),
                statistics: Vec::new(),
            });
        };
        check_origin(
            &path,
            (&earlier.config, &earlier.backend),
            config,
            BACKEND_NAME,
            &format!("continuing it needs the same one ({instead})"),
        )?;
        Ok(earlier)
    }

    fn save(&self, out: &Path) -> Result<()> {
        let path = Self::path(out);
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        write_atomic(&path, &text).with_context(|| format!("writing {}", path.display()))
    }
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
        if !compare.statistics.is_empty() && landscape.statistics().is_none() {
            bail!(
                "config {}: compare.statistics compares ways of setting running statistics, \
                 and this net keeps none (it has no batch normalization)",
                self.config.name
            );
        }
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let mut progress = Progress::read_or_start(&self.out, &self.config)?;
        let paths_per_pair = 2 * METHODS.len() + compare.statistics.len();
        for pair in 0..compare.pairs {
            let finished = progress.rows.iter().filter(|r| r.pair == pair).count()
                + progress
                    .statistics
                    .iter()
                    .filter(|r| r.pair == pair)
                    .count();
            if finished == paths_per_pair {
                continue;
            }
            let (sa, sb) = pair_seeds(compare.seed, pair);
            let a = train_endpoint(&landscape, &self.config, level, sa)?;
            let b = train_endpoint(&landscape, &self.config, level, sb)?;
            let endpoint_max = a.energy.max(b.energy);
            let (fa, fb) = (flat_of(&a.model), flat_of(&b.model));
            let align_config = self.config.align.clone().unwrap_or_default();
            let aligned = align::<Train, _>(&landscape, &fa, &fb, &align_config, sa)
                .map_err(|e| anyhow::anyhow!("weight matching: {e}"))?;
            for (use_aligned, second) in [(false, fb.clone()), (true, aligned.b.clone())] {
                for (method, name, _) in METHODS {
                    let done = |r: &CompareRow| {
                        (r.pair, r.method.as_str(), r.aligned) == (pair, name, use_aligned)
                    };
                    if progress.rows.iter().any(done) {
                        continue;
                    }
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
                        progress.profiles.push(Profile {
                            method: name.into(),
                            aligned: use_aligned,
                            points: profile(&path).into_iter().map(|(t, e, _)| (t, e)).collect(),
                        });
                    }
                    progress.rows.push(CompareRow {
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
                    progress.save(&self.out)?;
                }
            }
            for &stats in &compare.statistics {
                if progress
                    .statistics
                    .iter()
                    .any(|r| (r.pair, r.stats) == (pair, stats))
                {
                    continue;
                }
                let mut config = self.config.clone();
                let bn = config.bn.get_or_insert_with(Default::default);
                bn.stats = stats;
                let row = with_landscape(
                    &config.clone(),
                    StatisticsPath {
                        config,
                        pair,
                        a: fa.clone(),
                        b: fb.clone(),
                        level,
                        seed: sa,
                    },
                )??;
                progress.statistics.push(row);
                progress.save(&self.out)?;
            }
        }
        let rows = &progress.rows;
        write_outputs(&self.out, &self.config, level, rows, &progress.statistics)?;
        let series = |aligned: bool| -> Vec<Series> {
            METHODS
                .iter()
                .filter_map(|&(_, name, color)| {
                    let p = progress
                        .profiles
                        .iter()
                        .find(|p| p.method == name && p.aligned == aligned)?;
                    Some(Series {
                        label: name.into(),
                        points: p.points.iter().map(|&(t, e)| (t, e, None)).collect(),
                        color,
                    })
                })
                .collect()
        };
        for (series, suffix, what) in [
            (&series(false), "", "unaligned"),
            (&series(true), "-aligned", "weight-matched"),
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
        Ok(progress.rows)
    }
}

/// One pair's straight line and DSS string on the landscape of one `[bn] stats` mode.
struct StatisticsPath {
    config: ExperimentConfig,
    pair: usize,
    a: Tensor<Compute, 1>,
    b: Tensor<Compute, 1>,
    level: f64,
    seed: u64,
}

impl WithLandscape for StatisticsPath {
    type Output = Result<StatisticsRow>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<StatisticsRow> {
        let stats = landscape
            .statistics()
            .expect("checked: the net keeps running statistics")
            .stats;
        let (_, report) = connect_pair(
            &landscape,
            &MethodName::Dss.method(&self.config)?,
            self.a,
            self.b,
            self.level,
            self.seed,
        )?;
        tracing::info!(pair = self.pair, stats = ?stats, status = %report.status.describe(), "statistics path done");
        Ok(StatisticsRow {
            pair: self.pair,
            stats,
            line_max_energy: report.linear_barrier,
            outcome: report.status.outcome(),
            max_energy: report.max_energy,
            normalized_length: report.normalized_length,
            beads: report.beads,
            energy_evaluations: report.energy_evaluations,
            wall_seconds: report.wall_seconds,
        })
    }
}

fn write_outputs(
    out: &Path,
    config: &ExperimentConfig,
    level: f64,
    rows: &[CompareRow],
    statistics: &[StatisticsRow],
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
    if !statistics.is_empty() {
        table.push_str(&statistics_table(config, level, statistics));
        write_csv(&out.join("statistics.csv"), statistics)?;
        let path = out.join("statistics.json");
        write_atomic(&path, &serde_json::to_vec_pretty(statistics)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    write_study(out, rows, rows, &table)?;
    println!("{table}");
    Ok(())
}

/// The statistics table: per `[bn] stats` mode, the straight line's highest energy and the DSS
/// string's, its length and beads, as means over the pairs.
fn statistics_table(config: &ExperimentConfig, level: f64, rows: &[StatisticsRow]) -> String {
    let mut table = format!(
        "\n{} at {} <= {level}: the running statistics at every point (means over pairs)\n\n\
         | [bn] stats | line max | connected | string max | normalized length | beads | evaluations | seconds |\n\
         |---|---|---|---|---|---|---|---|\n",
        config.name, config.energy
    );
    let modes = &config
        .compare
        .as_ref()
        .expect("a comparison's config")
        .statistics;
    for &stats in modes {
        let group: Vec<&StatisticsRow> = rows.iter().filter(|r| r.stats == stats).collect();
        let mean_of =
            |f: fn(&StatisticsRow) -> f64| mean(group.iter().map(|r| f(r))).unwrap_or(f64::NAN);
        table.push_str(&format!(
            "| {} | {:.5} | {}/{} | {:.5} | {:.3} | {:.1} | {:.0} | {:.1} |\n",
            stats.name(),
            mean_of(|r| r.line_max_energy),
            group
                .iter()
                .filter(|r| r.outcome == Outcome::Connected)
                .count(),
            group.len(),
            mean_of(|r| r.max_energy),
            mean_of(|r| r.normalized_length),
            mean_of(|r| r.beads as f64),
            mean_of(|r| r.energy_evaluations as f64),
            mean_of(|r| r.wall_seconds),
        ));
    }
    table
}
