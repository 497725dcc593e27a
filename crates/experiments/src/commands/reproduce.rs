//! `levelset reproduce <task>`: the task's sweep (resumed if it was interrupted), then its
//! figures, in `experiments/<config name>/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use levelset_models::atomic::write_atomic;
use levelset_models::outdir::OutputLock;

use crate::config::ExperimentConfig;
use crate::output::figures::{Figure, LEVELSET_COLOR, PALETTE, PAPER_COLOR, Series, draw};
use crate::output::paper::figure1;
use crate::output::tables::{number, plus_minus};
use crate::studies::sweep::{LevelSummary, SweepArgs, SweepResults, endpoint_ratios};

/// Figure 1's five tasks and the deep-linear theory check: each a sweep.
pub const SWEEP_TASKS: [&str; 8] = [
    "quadratic",
    "cubic",
    "mnist",
    "cifar10",
    "ptb",
    "linear",
    "symmetry",
    "resnet20",
];

/// The tasks with their own config that are not sweeps: path-method comparisons and the width
/// study.
const CONFIG_TASKS: [&str; 4] = ["methods", "methods-mnist", "methods-resnet20", "width"];

pub struct ReproduceArgs {
    pub task: String,
    /// Paper-scale settings (`configs/<task>.toml`) instead of the quick ones.
    pub full: bool,
    pub configs: PathBuf,
    pub out: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

pub fn run(args: ReproduceArgs) -> Result<()> {
    if args.task == "prop23" {
        let out = args
            .out
            .unwrap_or_else(|| Path::new("experiments").join("prop23"));
        let _lock = OutputLock::acquire(&out)?;
        crate::studies::prop23::run(&out)?;
        return Ok(());
    }
    let task = args.task.as_str();
    if !SWEEP_TASKS.contains(&task) && !CONFIG_TASKS.contains(&task) {
        anyhow::bail!(
            "unknown task '{task}' (choose one of: {}, prop23, {})",
            SWEEP_TASKS.join(", "),
            CONFIG_TASKS.join(", ")
        );
    }
    let name = if args.full {
        args.task.clone()
    } else {
        format!("{}-quick", args.task)
    };
    let config =
        crate::config::load_config(&args.configs.join(format!("{name}.toml")), args.data_dir)?;
    let out = args
        .out
        .unwrap_or_else(|| Path::new("experiments").join(&name));
    // Held for the sweep, the figures and the tables alike.
    let _lock = OutputLock::acquire(&out)?;
    match args.task.as_str() {
        "methods" | "methods-mnist" | "methods-resnet20" => {
            crate::studies::compare::run(crate::studies::compare::CompareArgs { config, out })?;
            return Ok(());
        }
        "width" => {
            crate::studies::width::run(&config, &out)?;
            return Ok(());
        }
        _ => {}
    }
    let results = crate::studies::sweep::run_locked(SweepArgs {
        config: config.clone(),
        out: out.clone(),
        resume: true,
        shard: None,
    })?;
    sweep_figures(&args.task, &config, &results, &out)?;
    let table = paper_table(&args.task, &results);
    let path = out.join("paper-vs-levelset.md");
    write_atomic(&path, table.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    println!("{table}");
    Ok(())
}

/// Paper and levelset side by side at every level either of them has.
pub fn paper_table(task: &str, results: &SweepResults) -> String {
    let paper = figure1(task).unwrap_or(&[]);
    let mut levels: Vec<f64> = paper
        .iter()
        .map(|p| p.level)
        .chain(results.summary.iter().map(|s| s.level))
        .collect();
    levels.sort_by(|a, b| b.total_cmp(a));
    levels.dedup();
    let mut out = String::from(
        "levelset: mean ± standard error over connected pairs, and over every pair with a \
         string (\"all\"); endpoints: energy / L0, mean ± s.e. [min, max].\n\n\
         | L0 | paper length | levelset length | levelset length, all | paper beads | \
         levelset beads | levelset beads, all | levelset connected | endpoints / L0 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let stat = |ours: Option<&LevelSummary>,
                pick: fn(&LevelSummary) -> (Option<f64>, Option<f64>),
                digits| {
        let (mean, se) = ours.map_or((None, None), pick);
        plus_minus(mean, se, digits)
    };
    for level in levels {
        let ours = results.summary.iter().find(|s| s.level == level);
        let theirs = paper.iter().find(|p| p.level == level);
        out.push_str(&format!(
            "| {level} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            number(theirs.map(|p| p.length), 3),
            stat(ours, |s| (s.length_mean, s.length_se), 3),
            stat(ours, |s| (s.length_all_mean, s.length_all_se), 3),
            number(theirs.and_then(|p| p.beads), 2),
            stat(ours, |s| (s.beads_mean, s.beads_se), 2),
            stat(ours, |s| (s.beads_all_mean, s.beads_all_se), 2),
            ours.map_or("–".to_string(), |s| format!(
                "{}/{}",
                s.connected, s.pairs
            )),
            ours.map_or("–".to_string(), endpoint_ratios),
        ));
    }
    out
}

/// `length`, `beads` and `connected` figures (SVG and PNG) for a finished sweep.
pub fn sweep_figures(
    task: &str,
    config: &ExperimentConfig,
    results: &SweepResults,
    out: &Path,
) -> Result<()> {
    let paper = figure1(task).unwrap_or(&[]);
    let ours =
        |pick: fn(&crate::studies::sweep::LevelSummary) -> (Option<f64>, Option<f64>)| Series {
            label: "levelset (mean ± s.e., connected pairs)".into(),
            points: results
                .summary
                .iter()
                .filter_map(|s| {
                    let (mean, se) = pick(s);
                    mean.map(|m| (s.level, m, se))
                })
                .collect(),
            color: LEVELSET_COLOR,
        };
    let theirs = |pick: fn(&crate::output::paper::PaperPoint) -> Option<f64>| Series {
        label: "Freeman & Bruna 2017, Figure 1".into(),
        points: paper
            .iter()
            .filter_map(|p| pick(p).map(|v| (p.level, v, None)))
            .collect(),
        color: PAPER_COLOR,
    };
    let x_label = format!("level L0 ({}, log scale)", config.energy);
    let with_paper = |mut series: Vec<Series>, paper: Series| {
        if !paper.points.is_empty() {
            series.push(paper);
        }
        series
    };
    draw(
        &Figure {
            title: format!("{}: normalized geodesic length", config.name),
            x_label: x_label.clone(),
            y_label: "normalized geodesic length".into(),
            log_x: true,
            series: with_paper(
                vec![ours(|s| (s.length_mean, s.length_se))],
                theirs(|p| Some(p.length)),
            ),
        },
        &out.join("length"),
    )?;
    draw(
        &Figure {
            title: format!("{}: pairs connected", config.name),
            x_label: x_label.clone(),
            y_label: "fraction of pairs connected".into(),
            log_x: true,
            series: vec![Series {
                label: "levelset (pairs whose endpoints reached L0)".into(),
                points: results
                    .summary
                    .iter()
                    .filter(|s| s.pairs > s.endpoint_failed)
                    .map(|s| {
                        let sought = (s.pairs - s.endpoint_failed) as f64;
                        (s.level, s.connected as f64 / sought, None)
                    })
                    .collect(),
                color: LEVELSET_COLOR,
            }],
        },
        &out.join("connected"),
    )?;
    sweep_curvature(config, results, out)?;
    draw(
        &Figure {
            title: format!("{}: beads in the string", config.name),
            x_label,
            y_label: "beads (endpoints included)".into(),
            log_x: true,
            series: with_paper(
                vec![ours(|s| (s.beads_mean, s.beads_se))],
                theirs(|p| p.beads),
            ),
        },
        &out.join("beads"),
    )
}

/// For a sweep with a `[hessian]`: `curvature.{svg,png}` (the top eigenvalue at every bead of
/// every string, endpoints included, against the position along the string) and
/// `curvature-trace.{svg,png}` (the trace, when measured), one line a pair, one color a
/// level. Nothing for a sweep without curvature.
fn sweep_curvature(config: &ExperimentConfig, results: &SweepResults, out: &Path) -> Result<()> {
    let measured: Vec<_> = results
        .rows
        .iter()
        .filter_map(|r| r.curvature.as_ref().map(|c| (r, c)))
        .collect();
    if measured.is_empty() {
        return Ok(());
    }
    let levels: &[f64] = results.config.sweep.as_ref().map_or(&[], |s| &s.levels);
    let color = |level: f64| {
        let k = levels.iter().position(|&l| l == level).unwrap_or(0);
        PALETTE[k % PALETTE.len()]
    };
    for (pick, stem, what) in [
        (
            (|c: &crate::curvature::CurvatureSummary| c.top_eigenvalue.clone())
                as fn(&crate::curvature::CurvatureSummary) -> Vec<Option<f64>>,
            "curvature",
            "top eigenvalue",
        ),
        (|c| c.trace.clone(), "curvature-trace", "trace"),
    ] {
        let series: Vec<Series> = measured
            .iter()
            .map(|(row, curvature)| Series {
                label: format!("L0 = {}, pair {}", row.level, row.pair),
                points: curvature
                    .t
                    .iter()
                    .zip(pick(curvature))
                    .filter_map(|(&t, v)| v.map(|v| (t, v, None)))
                    .collect(),
                color: color(row.level),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        draw(
            &Figure {
                title: format!("{}: Hessian {what} along each string", config.name),
                x_label: "position along the string (by length)".into(),
                y_label: format!("{what} of the training loss's Hessian"),
                log_x: false,
                series,
            },
            &out.join(stem),
        )?;
    }
    Ok(())
}
