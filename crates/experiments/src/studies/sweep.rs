//! `levelset sweep`: levels x pairs of trained endpoints, each pair connected by DSS, with
//! results rewritten atomically after every pair so a killed sweep can resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use levelset_models::Landscape;
use levelset_models::backend::Compute;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_models::outdir::OutputLock;
use levelset_models::statistics::StatsMode;
use levelset_strings::path::positions;
use levelset_strings::{ModelPath, Outcome, Status, permutable_units, permute};
use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, HessianSection, Partner, SweepConfig};
use crate::curvature::{CurvatureSummary, measure_point};
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::tables::{mean_se, plus_minus, write_study};
use crate::pair::{
    Endpoints, MethodName, connect_pair, load_checkpoint, pair_seeds, warn_if_unresolved,
};
use crate::resumable::{check_origin, read_json, refuse_unless_resumed};
use crate::studies::shard::{Shard, Split, describe, record_split, results_dir};

/// One pair at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub level: f64,
    pub pair: usize,
    pub seed_a: u64,
    pub seed_b: u64,
    /// `connected`, `not_connected` or `failed`.
    pub outcome: Outcome,
    /// Why the pair is not connected or failed; empty when connected.
    pub reason: String,
    pub energy_a: Option<f64>,
    pub energy_b: Option<f64>,
    /// Optimizer steps of both endpoints from initialization to this level.
    pub endpoint_steps: usize,
    pub beads: Option<usize>,
    pub normalized_length: Option<f64>,
    pub max_energy: Option<f64>,
    pub linear_barrier: Option<f64>,
    pub bead_steps: usize,
    pub energy_evaluations: usize,
    /// Time spent on this row, including the endpoint training it was the first to need
    /// (each seed trains once per sweep, through all levels).
    pub wall_seconds: f64,
    /// How a batch-normalized net's running statistics were set at every point (`[bn]
    /// stats`); absent for nets without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn_stats: Option<StatsMode>,
    /// The curvature at every bead of the string, as the config's `[hessian]` asks; absent
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curvature: Option<CurvatureSummary>,
}

/// Mean and standard error of the connected pairs at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    pub level: f64,
    pub pairs: usize,
    pub connected: usize,
    pub not_connected: usize,
    pub failed: usize,
    /// Failed pairs whose endpoints never reached the level (so no path was sought).
    /// Recomputed from the rows; absent from results written before it existed.
    #[serde(default)]
    pub endpoint_failed: usize,
    pub length_mean: Option<f64>,
    pub length_se: Option<f64>,
    pub beads_mean: Option<f64>,
    pub beads_se: Option<f64>,
    /// Length and beads over every pair that has a string (connected or not), so that a
    /// level where strings hit the bead cap is not summarized by its easy pairs alone.
    #[serde(default)]
    pub length_all_mean: Option<f64>,
    #[serde(default)]
    pub length_all_se: Option<f64>,
    #[serde(default)]
    pub beads_all_mean: Option<f64>,
    #[serde(default)]
    pub beads_all_se: Option<f64>,
    /// The trained endpoints' energies divided by the level: how far below it (or, under a
    /// training-loss stopping rule, above it) they stopped.
    #[serde(default)]
    pub endpoint_ratio_mean: Option<f64>,
    #[serde(default)]
    pub endpoint_ratio_se: Option<f64>,
    #[serde(default)]
    pub endpoint_ratio_min: Option<f64>,
    #[serde(default)]
    pub endpoint_ratio_max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    pub levelset_version: String,
    pub backend: String,
    /// The part of the sweep these rows are (`sweep --shard`); absent for a whole sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub config: ExperimentConfig,
    pub rows: Vec<Row>,
    pub summary: Vec<LevelSummary>,
}

pub struct SweepArgs {
    pub config: ExperimentConfig,
    pub out: PathBuf,
    pub resume: bool,
    /// Run only this shard's pairs, into `out/shards/K-of-N`.
    pub shard: Option<Shard>,
}

impl SweepArgs {
    /// What a sweep needs from its config, checked before any data is loaded: valid DSS
    /// settings and a `[sweep]` section (returned).
    pub fn validate(&self) -> Result<&SweepConfig> {
        self.config.dss()?;
        self.config
            .sweep
            .as_ref()
            .with_context(|| format!("config {} has no [sweep] section", self.config.name))
    }

    /// Where this run writes: `out`, or its shard's folder under it.
    pub fn results_dir(&self) -> PathBuf {
        results_dir(&self.out, self.shard)
    }
}

/// Runs the sweep holding the lock on its output folder, taken before any work. A shard
/// first records its split in (or checks it against) `out/shards/split.json`, before its
/// folder exists, so that a refused shard leaves no folder of another split behind.
pub fn run(args: SweepArgs) -> Result<SweepResults> {
    args.validate()?;
    if let Some(shard) = args.shard {
        let split = Split {
            shards: shard.count,
            config: args.config.clone(),
        };
        record_split(
            &args.out,
            &split,
            false,
            "run that split's shards with that config, or choose another --out",
        )?;
    }
    let _lock = OutputLock::acquire(&args.results_dir())?;
    run_locked(args)
}

/// Runs the sweep; the caller holds the lock on `args.results_dir()` (see [`run`]).
pub fn run_locked(args: SweepArgs) -> Result<SweepResults> {
    args.validate()?;
    with_landscape(&args.config.clone(), args)?
}

pub fn results_path(out: &Path) -> PathBuf {
    out.join("results.json")
}

/// The results.json in `dir`, if there is one.
pub fn read_results(dir: &Path) -> Result<Option<SweepResults>> {
    let path = results_path(dir);
    let instead = format!(
        "results.csv beside it holds the same finished rows for reference; move \
         results.json aside to start this sweep over in {}, or choose another --out",
        dir.display()
    );
    let Some(results) = read_json::<SweepResults>(&path, "a levelset sweep result", &instead)?
    else {
        return Ok(None);
    };
    // The config read back sizes what is done with the rows (sweep.pairs, the levels), so
    // it is held to the same rules as a config file.
    results
        .config
        .validate()
        .with_context(|| format!("{} records an invalid config", path.display()))?;
    Ok(Some(results))
}

/// Checks that the summary of results read back from `path` is the one their rows give, for
/// readers that take the summary as it is (`depth`); a resumed or merged sweep recomputes it.
/// The same code on the same rows, read back exactly, gives it bit for bit.
pub fn check_summary(path: &Path, results: &SweepResults) -> Result<()> {
    if let Some(sweep) = &results.config.sweep
        && summarize(sweep, &results.rows) != results.summary
    {
        bail!(
            "{}: its summary is not the one its rows give (edited?); restore the file, or \
             rerun the sweep",
            path.display()
        );
    }
    Ok(())
}

/// Checks results read back from `path` against the sweep they are to continue or join:
/// produced by `config` (`needs` says why that matters) on `backend` (rows of two backends
/// differ in their last digits), for `shard` (`None`: a whole sweep), and holding only that
/// sweep's (level, pair) rows, each once, with the seeds the sweep gives its pair. A file
/// edited or copied from elsewhere is refused, the row named, instead of being taken in
/// part or ignored.
pub fn check_results(
    path: &Path,
    results: &SweepResults,
    config: &ExperimentConfig,
    backend: &str,
    shard: Option<Shard>,
    needs: &str,
) -> Result<()> {
    check_origin(
        path,
        (&results.config, &results.backend),
        config,
        backend,
        needs,
    )?;
    let part = |s: Option<Shard>| describe(s, "a whole sweep");
    if results.shard != shard {
        bail!(
            "{} holds the rows of {}, not of {}",
            path.display(),
            part(results.shard),
            part(shard)
        );
    }
    let sweep = config
        .sweep
        .as_ref()
        .with_context(|| format!("config {} has no [sweep] section", config.name))?;
    let mut seen = std::collections::HashMap::new();
    for (i, row) in results.rows.iter().enumerate() {
        let key = format!("level {} pair {}", row.level, row.pair);
        let expected = sweep.levels.contains(&row.level)
            && row.pair < sweep.pairs
            && shard.is_none_or(|s| s.owns(row.pair));
        if !expected {
            let of = shard.map_or(String::new(), |s| format!("shard {s} of "));
            bail!(
                "{}: row {i} ({key}) does not belong to {of}this sweep (sweep.levels {:?}, \
                 sweep.pairs {}): the file was edited or comes from another sweep",
                path.display(),
                sweep.levels,
                sweep.pairs
            );
        }
        if let Some(first) = seen.insert((row.level.to_bits(), row.pair), i) {
            bail!(
                "{}: {key} appears twice (rows {first} and {i}); a sweep writes each row once, \
                 so the file was edited or damaged",
                path.display()
            );
        }
        let seeds = pair_seeds(sweep.seed, row.pair);
        if (row.seed_a, row.seed_b) != seeds {
            bail!(
                "{}: row {i} ({key}) records seeds ({}, {}), but sweep.seed {} gives pair {} \
                 the seeds {seeds:?}: the file was edited or comes from another sweep",
                path.display(),
                row.seed_a,
                row.seed_b,
                sweep.seed,
                row.pair
            );
        }
    }
    Ok(())
}

/// Rows already finished by an earlier run of the same config.
fn previous_rows(args: &SweepArgs) -> Result<Vec<Row>> {
    let dir = args.results_dir();
    let path = results_path(&dir);
    refuse_unless_resumed(&path, args.resume, "sweep")?;
    let Some(previous) = read_results(&dir)? else {
        return Ok(Vec::new());
    };
    check_results(
        &path,
        &previous,
        &args.config,
        BACKEND_NAME,
        args.shard,
        "resume needs the same one",
    )?;
    Ok(previous.rows)
}

impl WithLandscape for SweepArgs {
    type Output = Result<SweepResults>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<SweepResults> {
        let mut endpoints = Endpoints::new(&self.validate()?.levels);
        sweep_on(&self, &landscape, &mut endpoints)
    }
}

/// The sweep of `args` (its config has a `[sweep]`) on a built landscape, taking endpoints from
/// `endpoints`, so a caller can reuse them after the sweep.
pub fn sweep_on<L: Landscape<Train>>(
    args: &SweepArgs,
    landscape: &L,
    endpoints: &mut Endpoints,
) -> Result<SweepResults> {
    let sweep = args.validate()?.clone();
    warn_if_unresolved(landscape, &sweep.levels);
    if let Some(section) = &args.config.hessian {
        // Before any training: a curvature no row could measure is an error now, not a
        // failed row per pair.
        let settings = section.settings().map_err(anyhow::Error::msg)?;
        let refuse = |e: String| anyhow::anyhow!("config {}: [hessian]: {e}", args.config.name);
        if let Some(caveat) = landscape.curvature_caveat() {
            return Err(refuse(caveat));
        }
        // Prepares the examples once, to refuse a split the task lacks or holds too few of.
        landscape
            .curvature_loss(settings.split, settings.examples)
            .map(drop)
            .map_err(refuse)?;
    }
    let out = args.results_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut rows = previous_rows(args)?;
    let total = jobs(&sweep, args.shard).count() as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("sweep [{elapsed_precise}] {bar:30} {pos}/{len} pairs {msg}")
            .expect("valid template"),
    );
    for (level, pair) in jobs(&sweep, args.shard) {
        if rows.iter().any(|r| r.level == level && r.pair == pair) {
            bar.inc(1);
            continue;
        }
        bar.set_message(format!("level {level}, pair {pair}"));
        let row = run_pair(landscape, &args.config, &sweep, endpoints, level, pair);
        tracing::info!(
            level,
            pair,
            outcome = %row.outcome,
            beads = ?row.beads,
            length = ?row.normalized_length,
            seconds = row.wall_seconds,
            reason = %row.reason,
            "pair done"
        );
        rows.push(row);
        write_results(
            &out,
            &args.config,
            &sweep,
            BACKEND_NAME,
            args.shard,
            &rows,
            None,
        )?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let results = write_results(
        &out,
        &args.config,
        &sweep,
        BACKEND_NAME,
        args.shard,
        &rows,
        None,
    )?;
    println!("{}", summary_table(&args.config, &results.summary));
    Ok(results)
}

/// (level, pair) in run order, the pairs of `shard` only when given.
pub fn jobs(sweep: &SweepConfig, shard: Option<Shard>) -> impl Iterator<Item = (f64, usize)> + '_ {
    sweep.levels.iter().flat_map(move |&level| {
        (0..sweep.pairs)
            .filter(move |&pair| shard.is_none_or(|s| s.owns(pair)))
            .map(move |pair| (level, pair))
    })
}

fn run_pair<L: Landscape<Train>>(
    landscape: &L,
    config: &ExperimentConfig,
    sweep: &SweepConfig,
    endpoints: &mut Endpoints,
    level: f64,
    pair: usize,
) -> Row {
    let start = Instant::now();
    let (seed_a, seed_b) = pair_seeds(sweep.seed, pair);
    let mut row = Row {
        level,
        pair,
        seed_a,
        seed_b,
        // Set from the path's status below.
        outcome: Outcome::Failed,
        reason: String::new(),
        energy_a: None,
        energy_b: None,
        endpoint_steps: 0,
        beads: None,
        normalized_length: None,
        max_energy: None,
        linear_barrier: None,
        bead_steps: 0,
        energy_evaluations: 0,
        wall_seconds: 0.0,
        bn_stats: landscape.statistics().map(|bn| bn.stats),
        curvature: None,
    };
    let outcome = (|| -> Result<Status> {
        let (fa, fb) = if let Some(given) = sweep.checkpoints.get(pair) {
            let load = |dir: &Path| {
                load_checkpoint(landscape, dir)
                    .with_context(|| format!("sweep.checkpoints[{pair}]: {}", dir.display()))
            };
            let ((fa, meta_a), (fb, meta_b)) = (load(&given.a)?, load(&given.b)?);
            row.energy_a = Some(meta_a.energy);
            row.energy_b = Some(meta_b.energy);
            (fa, fb)
        } else {
            trained_pair(landscape, config, sweep, endpoints, level, &mut row)?
        };
        let (path, report) = connect_pair(
            landscape,
            &MethodName::Dss.method(config)?,
            fa,
            fb,
            level,
            seed_a ^ seed_b.rotate_left(32),
        )?;
        if let Some(section) = &config.hessian {
            row.curvature = Some(string_curvature(landscape, &path, section)?);
        }
        row.beads = Some(report.beads);
        row.normalized_length = Some(report.normalized_length);
        row.max_energy = Some(report.max_energy);
        row.linear_barrier = Some(report.linear_barrier);
        row.bead_steps = report.bead_steps;
        row.energy_evaluations = report.energy_evaluations;
        Ok(report.status)
    })();
    let status = outcome.unwrap_or_else(|e| Status::Failed {
        reason: format!("{e:#}"),
    });
    row.outcome = status.outcome();
    row.reason = match &status {
        Status::Connected => String::new(),
        Status::NotConnected { reason, .. } | Status::Failed { reason } => reason.clone(),
    };
    row.wall_seconds = start.elapsed().as_secs_f64();
    row
}

/// The curvature at every bead of a string, as `section` asks.
fn string_curvature<L: Landscape<Train>>(
    landscape: &L,
    path: &ModelPath<Compute>,
    section: &HessianSection,
) -> Result<CurvatureSummary> {
    let settings = section.settings().map_err(anyhow::Error::msg)?;
    let beads: Vec<Vec<f32>> = path
        .beads
        .iter()
        .map(|b| b.to_data().to_vec().expect("f32 parameters"))
        .collect();
    let along = positions(&beads);
    let points = beads
        .iter()
        .enumerate()
        .map(|(k, bead)| {
            measure_point(
                landscape,
                bead,
                (k, along[k], path.bead_energies[k]),
                &settings,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CurvatureSummary::of(&points))
}

/// The endpoints of pair `row.pair` at `level`, trained (or taken from the endpoints trained
/// for another level), their energies and steps recorded in `row`.
fn trained_pair<L: Landscape<Train>>(
    landscape: &L,
    config: &ExperimentConfig,
    sweep: &SweepConfig,
    endpoints: &mut Endpoints,
    level: f64,
    row: &mut Row,
) -> Result<(Tensor<Compute, 1>, Tensor<Compute, 1>)> {
    let a = endpoints.get(landscape, config, level, row.seed_a)?;
    row.energy_a = Some(a.energy);
    row.endpoint_steps += a.steps;
    let fa = a.flat;
    let fb = match sweep.partner {
        Partner::Independent => {
            let b = endpoints.get(landscape, config, level, row.seed_b)?;
            row.endpoint_steps += b.steps;
            row.energy_b = Some(b.energy);
            b.flat
        }
        Partner::SwappedUnits { layer, units } => {
            row.energy_b = row.energy_a;
            swapped(landscape, &fa, layer, units)?
        }
    };
    Ok((fa, fb))
}

/// `flat` with units `units` of permutable layer `layer` exchanged.
fn swapped<L: Landscape<Train>>(
    landscape: &L,
    flat: &Tensor<Compute, 1>,
    layer: usize,
    units: [usize; 2],
) -> Result<Tensor<Compute, 1>> {
    let sizes = permutable_units::<Train, _>(landscape).map_err(anyhow::Error::msg)?;
    let Some(&size) = sizes.get(layer) else {
        bail!(
            "sweep.partner.layer {layer}: the network has {} permutable layers",
            sizes.len()
        );
    };
    if units.iter().any(|&u| u >= size) {
        bail!("sweep.partner.units {units:?}: layer {layer} has {size} units");
    }
    let orders: Vec<Vec<usize>> = sizes
        .iter()
        .enumerate()
        .map(|(l, &n)| {
            let mut order: Vec<usize> = (0..n).collect();
            if l == layer {
                order.swap(units[0], units[1]);
            }
            order
        })
        .collect();
    permute::<Train, _>(landscape, flat, &orders).map_err(anyhow::Error::msg)
}

/// Writes results.json, results.csv and summary.md (with `note` under the table) into `out`,
/// for rows computed on `backend`.
pub fn write_results(
    out: &Path,
    config: &ExperimentConfig,
    sweep: &SweepConfig,
    backend: &str,
    shard: Option<Shard>,
    rows: &[Row],
    note: Option<&str>,
) -> Result<SweepResults> {
    // Rows in sweep order whatever order they were finished (or resumed) in.
    let mut ordered: Vec<Row> = Vec::with_capacity(rows.len());
    for (level, pair) in jobs(sweep, shard) {
        if let Some(r) = rows.iter().find(|r| r.level == level && r.pair == pair) {
            ordered.push(r.clone());
        }
    }
    let results = SweepResults {
        levelset_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: backend.to_string(),
        shard,
        config: config.clone(),
        summary: summarize(sweep, &ordered),
        rows: ordered,
    };
    let mut table = summary_table(config, &results.summary);
    if let Some(note) = note {
        table.push_str(&format!("\n{note}\n"));
    }
    // A row's curvature is a list per bead, which a CSV line cannot hold: results.json
    // keeps it.
    let flat_rows: Vec<Row> = (results.rows.iter())
        .map(|r| Row {
            curvature: None,
            ..r.clone()
        })
        .collect();
    write_study(out, &results, &flat_rows, &table)?;
    Ok(results)
}

fn summarize(sweep: &SweepConfig, rows: &[Row]) -> Vec<LevelSummary> {
    sweep
        .levels
        .iter()
        .map(|&level| {
            let at: Vec<&Row> = rows.iter().filter(|r| r.level == level).collect();
            let connected: Vec<&Row> = (at.iter().copied())
                .filter(|r| r.outcome == Outcome::Connected)
                .collect();
            // Mean ± standard error of (length, beads) over the given rows' strings.
            let stats = |rows: &[&Row]| {
                let lengths: Vec<f64> = rows.iter().filter_map(|r| r.normalized_length).collect();
                let beads: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| r.beads.map(|b| b as f64))
                    .collect();
                (mean_se(&lengths), mean_se(&beads))
            };
            let ((length_mean, length_se), (beads_mean, beads_se)) = stats(&connected);
            let ((length_all_mean, length_all_se), (beads_all_mean, beads_all_se)) = stats(&at);
            let ratios: Vec<f64> = at
                .iter()
                .flat_map(|r| [r.energy_a, r.energy_b])
                .flatten()
                .map(|e| e / level)
                .collect();
            let (endpoint_ratio_mean, endpoint_ratio_se) = mean_se(&ratios);
            let endpoint_ratio_min = ratios.iter().copied().reduce(f64::min);
            let endpoint_ratio_max = ratios.iter().copied().reduce(f64::max);
            let count = |o: Outcome| at.iter().filter(|r| r.outcome == o).count();
            let endpoint_failed = at
                .iter()
                .filter(|r| r.energy_a.is_none() || r.energy_b.is_none())
                .count();
            LevelSummary {
                level,
                pairs: at.len(),
                connected: connected.len(),
                not_connected: count(Outcome::NotConnected),
                failed: count(Outcome::Failed),
                endpoint_failed,
                length_mean,
                length_se,
                beads_mean,
                beads_se,
                length_all_mean,
                length_all_se,
                beads_all_mean,
                beads_all_se,
                endpoint_ratio_mean,
                endpoint_ratio_se,
                endpoint_ratio_min,
                endpoint_ratio_max,
            }
        })
        .collect()
}

/// A Markdown table per level: mean ± standard error of length and beads over connected
/// pairs and over every pair with a string, the outcomes, and where the endpoints stopped.
pub fn summary_table(config: &ExperimentConfig, summary: &[LevelSummary]) -> String {
    let mut out = format!(
        "{} ({}; mean ± standard error; \"all\" counts every pair with a string, connected or \
         not; endpoints: energy / L0 over both endpoints of every pair, mean ± s.e. [min, max])\n\n\
         | L0 | length, connected | beads, connected | length, all | beads, all | connected | \
         not connected | failed (of which endpoints) | endpoints / L0 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        config.name, config.energy
    );
    for s in summary {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{} | {} | {} ({}) | {} |\n",
            s.level,
            plus_minus(s.length_mean, s.length_se, 3),
            plus_minus(s.beads_mean, s.beads_se, 2),
            plus_minus(s.length_all_mean, s.length_all_se, 3),
            plus_minus(s.beads_all_mean, s.beads_all_se, 2),
            s.connected,
            s.pairs,
            s.not_connected,
            s.failed,
            s.endpoint_failed,
            endpoint_ratios(s),
        ));
    }
    out
}

/// `mean ± se [min, max]` of the endpoints' energy / L0.
pub fn endpoint_ratios(s: &LevelSummary) -> String {
    match (s.endpoint_ratio_min, s.endpoint_ratio_max) {
        (Some(min), Some(max)) => format!(
            "{} [{min:.3}, {max:.3}]",
            plus_minus(s.endpoint_ratio_mean, s.endpoint_ratio_se, 3)
        ),
        _ => "–".to_string(),
    }
}
