//! `levelset depth`: the deep nets' sweeps towards their floors in one figure. Each task's
//! length and beads are drawn against L0 / floor (its measured training floor, `levelset
//! floor`), and the paper's Figure 1 values against L0 / (the paper's lowest level), so that
//! "does the string bend as the level nears the lowest loss the model reaches?" can be read
//! across tasks and data sizes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use levelset_models::atomic::write_atomic;
use plotters::style::RGBColor;

use crate::output::figures::{Figure, Series, draw};
use crate::output::paper::figure1;
use crate::output::tables::{number, plus_minus};
use crate::studies::floor::{self, FloorResults};
use crate::studies::sweep::{
    LevelSummary, SweepResults, check_summary, read_results, results_path,
};

/// One task of the figure: the paper task it compares with (`mnist`, `cifar10`, `ptb`), its
/// sweep folder, and the folder of its floor measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthTask {
    pub task: String,
    pub sweep: PathBuf,
    pub floor: PathBuf,
}

impl std::str::FromStr for DepthTask {
    type Err = String;

    /// `TASK=SWEEP_DIR[,FLOOR_DIR]`; the floor defaults to `SWEEP_DIR/floor`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (task, dirs) = s
            .split_once('=')
            .ok_or_else(|| format!("expected TASK=SWEEP_DIR[,FLOOR_DIR], got '{s}'"))?;
        if task.is_empty() {
            return Err(format!("expected a task's name before '=', got '{s}'"));
        }
        let (sweep, floor) = match dirs.split_once(',') {
            Some((sweep, floor)) => (PathBuf::from(sweep), PathBuf::from(floor)),
            None => (PathBuf::from(dirs), Path::new(dirs).join("floor")),
        };
        Ok(Self {
            task: task.to_string(),
            sweep,
            floor,
        })
    }
}

/// Each task's line and, for a task of the paper's Figure 1, the paper's (a lighter shade).
const COLORS: [(RGBColor, RGBColor); 4] = [
    (RGBColor(31, 119, 180), RGBColor(158, 202, 225)),
    (RGBColor(255, 127, 14), RGBColor(253, 190, 133)),
    (RGBColor(44, 160, 44), RGBColor(161, 217, 155)),
    (RGBColor(214, 39, 40), RGBColor(252, 174, 145)),
];

struct Loaded {
    task: String,
    sweep: SweepResults,
    floor: FloorResults,
    /// The floor the levels are divided by: the mean of the seeds' lowest energies.
    value: f64,
}

fn load(task: &DepthTask) -> Result<Loaded> {
    let sweep = read_results(&task.sweep)?
        .with_context(|| format!("no sweep results in {}", task.sweep.display()))?;
    check_summary(&results_path(&task.sweep), &sweep)?;
    let path = floor::results_path(&task.floor);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (measure it with `levelset floor --out {}`)",
            path.display(),
            task.floor.display()
        )
    })?;
    let floor: FloorResults =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(value) = floor.floor_mean.filter(|v| *v > 0.0) else {
        bail!("{}: no positive floor measured", path.display());
    };
    if floor.config.energy != sweep.config.energy {
        bail!(
            "{} measures {} but the sweep in {} measures {}",
            path.display(),
            floor.config.energy,
            task.sweep.display(),
            sweep.config.energy
        );
    }
    Ok(Loaded {
        task: task.task.clone(),
        sweep,
        floor,
        value,
    })
}

/// Writes `length.{svg,png}`, `beads.{svg,png}` and `depth.md` to `out`.
pub fn run(tasks: &[DepthTask], out: &Path) -> Result<String> {
    if tasks.is_empty() || tasks.len() > COLORS.len() {
        bail!(
            "give 1 to {} tasks as --sweep TASK=DIR, got {}",
            COLORS.len(),
            tasks.len()
        );
    }
    let loaded: Vec<Loaded> = tasks.iter().map(load).collect::<Result<_>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let panel = |y_label: &str,
                 pick: fn(&LevelSummary) -> (Option<f64>, Option<f64>),
                 paper_pick: fn(&crate::output::paper::PaperPoint) -> Option<f64>| {
        let mut series = Vec::new();
        for (t, (ours, theirs)) in loaded.iter().zip(COLORS) {
            series.push(Series {
                label: format!("{} (levelset, L0 / floor {:.4})", t.task, t.value),
                points: t
                    .sweep
                    .summary
                    .iter()
                    .filter_map(|s| {
                        let (mean, se) = pick(s);
                        mean.map(|m| (s.level / t.value, m, se))
                    })
                    .collect(),
                color: ours,
            });
            let paper = figure1(&t.task).unwrap_or(&[]);
            let lowest = paper.iter().map(|p| p.level).fold(f64::INFINITY, f64::min);
            let points: Vec<(f64, f64, Option<f64>)> = paper
                .iter()
                .filter_map(|p| paper_pick(p).map(|v| (p.level / lowest, v, None)))
                .collect();
            if !points.is_empty() {
                series.push(Series {
                    label: format!("{} (paper, L0 / its lowest level {lowest})", t.task),
                    points,
                    color: theirs,
                });
            }
        }
        Figure {
            title: format!("{y_label} as the level nears the floor"),
            x_label: "L0 / floor (log scale)".into(),
            y_label: y_label.into(),
            log_x: true,
            series,
        }
    };
    draw(
        &panel(
            "normalized geodesic length",
            |s| (s.length_mean, s.length_se),
            |p| Some(p.length),
        ),
        &out.join("length"),
    )?;
    draw(
        &panel("beads", |s| (s.beads_mean, s.beads_se), |p| p.beads),
        &out.join("beads"),
    )?;
    let table = depth_table(&loaded);
    let md = out.join("depth.md");
    write_atomic(&md, table.as_bytes()).with_context(|| format!("writing {}", md.display()))?;
    Ok(table)
}

fn depth_table(loaded: &[Loaded]) -> String {
    let mut out = String::from(
        "Each task's levels against its floor (the mean of its seeds' lowest energies within \
         the floor budget); mean ± standard error over connected pairs.\n\n\
         | task | energy | floor | L0 | L0 / floor | length | beads | connected |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for t in loaded {
        for s in &t.sweep.summary {
            out.push_str(&format!(
                "| {} | {} | {} ({} seeds, {} steps) | {} | {:.3} | {} | {} | {}/{} |\n",
                t.task,
                t.sweep.config.energy,
                number(Some(t.value), 4),
                t.floor.seeds.len(),
                t.floor.steps,
                s.level,
                s.level / t.value,
                plus_minus(s.length_mean, s.length_se, 3),
                plus_minus(s.beads_mean, s.beads_se, 2),
                s.connected,
                s.pairs
            ));
        }
    }
    out
}
