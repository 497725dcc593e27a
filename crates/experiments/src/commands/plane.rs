//! `levelset plane`: the energy and training loss on the plane through three models (Garipov
//! et al. 2018), or through a `connect` run's endpoints and its bead farthest from their
//! straight line, with the whole path projected onto it. Writes `plane.json`, `plane.csv` and
//! the contour figure `plane.{svg,png}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train};
use levelset_models::flat::distance;
use levelset_models::outdir::OutputLock;
use levelset_strings::Plane;
use levelset_strings::plane::{axis, bounds, farthest_from_line};
use serde::{Deserialize, Serialize};

use crate::commands::connect::SavedPath;
use crate::commands::pictures::{self, Grid, Header, Measured, OutputFlags, Picture};
use crate::config::{ExperimentConfig, load_config};
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::contour::{self, Contour};
use crate::pair::load_checkpoint;

/// Which models span the plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Models {
    /// Three checkpoint directories: the origin, the x axis's direction, the third.
    Checkpoints { a: PathBuf, b: PathBuf, c: PathBuf },
    /// A `connect` output folder: its endpoints and the bead farthest from their line.
    Path(PathBuf),
}

/// What a run was asked for: a resumed run must be asked the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneSettings {
    pub config: ExperimentConfig,
    pub models: Models,
    /// Points per axis.
    pub grid: usize,
    /// Each axis runs past the outermost point by this fraction of its extent.
    pub margin: f64,
    /// Other `connect` runs between the same endpoints as `Models::Path`'s, projected onto
    /// its plane and drawn beside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<PathBuf>,
}

/// `levelset plane`'s flags.
#[derive(clap::Args, Debug)]
pub struct PlaneCli {
    #[arg(long)]
    pub config: PathBuf,
    /// The checkpoint at the origin.
    #[arg(long, required_unless_present = "path", conflicts_with = "path")]
    pub a: Option<PathBuf>,
    /// The checkpoint that sets the x axis (u = (b - a) / |b - a|).
    #[arg(long, required_unless_present = "path", conflicts_with = "path")]
    pub b: Option<PathBuf>,
    /// The third checkpoint (the y axis: c - a orthogonalized against u).
    #[arg(long, required_unless_present = "path", conflicts_with = "path")]
    pub c: Option<PathBuf>,
    /// A `connect` output folder (DSS or NEB): the plane through its endpoints and the bead
    /// farthest from their straight line, the whole path projected onto it.
    #[arg(long, value_name = "RUN")]
    pub path: Option<PathBuf>,
    /// Another `connect` run between the same endpoints (a Bezier curve beside a DSS string,
    /// say), projected onto --path's plane and drawn on it too (repeatable).
    #[arg(long, value_name = "RUN")]
    pub also: Vec<PathBuf>,
    /// Grid points per axis (a row of the grid is one stacked evaluation).
    #[arg(long, default_value_t = 21)]
    pub grid: usize,
    /// Each axis runs past the outermost model by this fraction of its extent.
    #[arg(long, default_value_t = 0.2)]
    pub margin: f64,
    #[command(flatten)]
    pub output: OutputFlags,
}

impl PlaneCli {
    pub fn into_args(self) -> Result<PlaneArgs> {
        let models = match (self.path, self.a, self.b, self.c) {
            (Some(run), ..) => Models::Path(run),
            (None, Some(a), Some(b), Some(c)) => Models::Checkpoints { a, b, c },
            _ => anyhow::bail!("plane needs --a, --b and --c, or --path"),
        };
        if !self.also.is_empty() && !matches!(models, Models::Path(_)) {
            anyhow::bail!(
                "--also draws another run on --path's plane: it goes with --path, not with \
                 --a, --b and --c"
            );
        }
        Ok(PlaneArgs {
            settings: PlaneSettings {
                config: load_config(&self.config, self.output.data_dir.clone())?,
                models,
                grid: self.grid,
                margin: self.margin,
                also: self.also,
            },
            output: self.output,
        })
    }
}

pub struct PlaneArgs {
    pub settings: PlaneSettings,
    pub output: OutputFlags,
}

/// A model marked on the plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub name: String,
    pub x: f64,
    pub y: f64,
    /// How far the model lies from the plane (0 up to rounding for the three that span it).
    pub off_plane: f64,
}

/// `plane.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaneFile {
    #[serde(flatten)]
    pub measured: Measured,
    pub settings: PlaneSettings,
    /// The level L0 drawn as a contour line: the path's, or the highest the checkpoints were
    /// trained to (when they record one of this energy).
    pub level: Option<f64>,
    /// Coordinates are distances in parameter space from the first model along `u = (b - a) /
    /// |b - a|` and `v`, the unit vector along `c - a` orthogonal to `u`.
    pub units: String,
    /// `|b - a|`.
    pub u_norm: f64,
    /// The length of `c - a`'s component orthogonal to `u`.
    pub v_norm: f64,
    /// The three models that span the plane, `a`, `b`, `c`.
    pub models: Vec<Mark>,
    /// With `--path`: every point of the path, projected onto the plane, in path order.
    pub path: Option<Vec<Mark>>,
    /// With `--path`: its method (`dss`, `neb`, `bezier`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// With `--also`: each run's points, projected onto the plane, in path order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<ProjectedPath>,
}

/// Another run's path on the plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectedPath {
    pub run: PathBuf,
    pub method: String,
    pub points: Vec<Mark>,
}

impl Header for PlaneFile {
    const NAME: &'static str = "plane";
}

pub fn run(args: PlaneArgs) -> Result<Picture<PlaneFile>> {
    let settings = &args.settings;
    if !(settings.margin.is_finite() && settings.margin >= 0.0) {
        anyhow::bail!(
            "--margin must be a non-negative number, got {}",
            settings.margin
        );
    }
    if !(2..=1000).contains(&settings.grid) {
        anyhow::bail!("--grid must be in 2..=1000, got {}", settings.grid);
    }
    pictures::check_fresh::<PlaneFile>(&args.output)?;
    let _lock = OutputLock::acquire(&args.output.out)?;
    with_landscape(&settings.config.clone(), args)?
}

/// The models of `settings` as flat vectors: `a`, `b`, `c`, the path's points (with
/// `--path`) and the level they were trained or connected at.
struct Loaded {
    abc: [Tensor1; 3],
    /// The path's method and points.
    path: Option<(String, Vec<Tensor1>)>,
    level: Option<f64>,
}

type Tensor1 = burn::prelude::Tensor<Compute, 1>;

fn load<L: Landscape<Train>>(landscape: &L, models: &Models, config: &str) -> Result<Loaded> {
    let load = |dir: &Path| {
        load_checkpoint(landscape, dir).with_context(|| format!("loading {}", dir.display()))
    };
    match models {
        Models::Checkpoints { a, b, c } => {
            let [a, b, c] = [load(a)?, load(b)?, load(c)?];
            // The L0 of models trained to this energy: the highest, as `connect` takes it.
            let level = [&a.1, &b.1, &c.1]
                .iter()
                .filter(|meta| meta.energy_kind == landscape.energy_kind())
                .filter_map(|meta| meta.level)
                .reduce(f64::max);
            Ok(Loaded {
                abc: [a.0, b.0, c.0],
                path: None,
                level,
            })
        }
        Models::Path(run) => {
            let saved = SavedPath::read(run)?;
            let points: Vec<Tensor1> = saved.flats(landscape, config)?;
            let (a, b) = (&points[0], &points[points.len() - 1]);
            let inner = &points[1..points.len() - 1];
            let Some((k, _)) = farthest_from_line(a, b, inner) else {
                anyhow::bail!(
                    "{}: the path is the straight segment between its endpoints (no bead \
                     between them): it spans no plane; pass --a, --b and --c instead",
                    run.display()
                );
            };
            let c = inner[k].clone();
            let level =
                (saved.report.energy == landscape.energy_kind()).then_some(saved.report.level);
            Ok(Loaded {
                abc: [a.clone(), b.clone(), c],
                path: Some((saved.report.method.clone(), points)),
                level,
            })
        }
    }
}

/// Each `--also` run's method and points; refused unless its endpoints are `a` and `b` (to
/// float rounding): a path between other endpoints is not around the same barrier.
fn load_also<L: Landscape<Train>>(
    landscape: &L,
    runs: &[PathBuf],
    [a, b]: [&Tensor1; 2],
    config: &str,
) -> Result<Vec<(PathBuf, String, Vec<Tensor1>)>> {
    let span = distance(a, b);
    runs.iter()
        .map(|run| {
            let saved = SavedPath::read(run)?;
            let points = saved.flats(landscape, config)?;
            let ends = [&points[0], &points[points.len() - 1]];
            for (name, end, want) in [("first", ends[0], a), ("last", ends[1], b)] {
                let gap = distance(end, want);
                if gap > 1e-5 * span.max(1.0) {
                    anyhow::bail!(
                        "--also {}: its {name} endpoint lies {gap:.3e} from --path's (|b - a| = \
                         {span:.3e}); --also takes runs between the same two endpoints",
                        run.display()
                    );
                }
            }
            Ok((run.clone(), saved.report.method.clone(), points))
        })
        .collect()
}

impl WithLandscape for PlaneArgs {
    type Output = Result<Picture<PlaneFile>>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<Picture<PlaneFile>> {
        let settings = &self.settings;
        let loaded = load(&landscape, &settings.models, &settings.config.name)?;
        let [a, b, c] = &loaded.abc;
        let plane = Plane::through(a, b, c).map_err(anyhow::Error::msg)?;
        let mark = |name: String, point: &Tensor1| {
            let (x, y) = plane.coordinates(point);
            Mark {
                name,
                x,
                y,
                off_plane: plane.distance(point),
            }
        };
        let models: Vec<Mark> = ["a", "b", "c"]
            .iter()
            .zip(&loaded.abc)
            .map(|(name, point)| mark(name.to_string(), point))
            .collect();
        let project = |points: &[Tensor1]| -> Vec<Mark> {
            points
                .iter()
                .enumerate()
                .map(|(k, p)| mark(format!("{k:04}"), p))
                .collect()
        };
        let path: Option<Vec<Mark>> = loaded.path.as_ref().map(|(_, points)| project(points));
        let also: Vec<ProjectedPath> =
            load_also(&landscape, &settings.also, [a, b], &settings.config.name)?
                .into_iter()
                .map(|(run, method, points)| ProjectedPath {
                    run,
                    method,
                    points: project(&points),
                })
                .collect();
        let covered: Vec<(f64, f64)> = models
            .iter()
            .chain(path.iter().flatten())
            .chain(also.iter().flat_map(|p| &p.points))
            .map(|m| (m.x, m.y))
            .collect();
        let [(x_lo, x_hi), (y_lo, y_hi)] = bounds(&covered, settings.margin);
        let grid = Grid::new(
            axis(x_lo, x_hi, settings.grid),
            axis(y_lo, y_hi, settings.grid),
        );
        let file = Picture {
            header: PlaneFile {
                measured: Measured::of(&landscape),
                settings: settings.clone(),
                level: loaded.level,
                units: "distance in parameter space from a, along u = (b - a) / |b - a| and v \
                    (c - a orthogonalized against u, normalized)"
                    .into(),
                u_norm: plane.u_norm,
                v_norm: plane.v_norm,
                models,
                path,
                method: loaded.path.as_ref().map(|(method, _)| method.clone()),
                also,
            },
            grid,
        };
        let (xs, ys) = (file.grid.x.clone(), file.grid.y.clone());
        let row = |j: usize| plane.row(&xs, ys[j]);
        let file = pictures::compute(
            &settings.config,
            &landscape,
            Some((a, b)),
            &self.output,
            file,
            &row,
        )?;
        draw(&file, &self.output.out)?;
        println!(
            "{}: {} on a {}x{} plane grid through {}; {}",
            settings.config.name,
            file.header.measured.energy,
            settings.grid,
            settings.grid,
            match &settings.models {
                Models::Checkpoints { .. } => "three checkpoints".to_string(),
                Models::Path(run) => format!("the path in {}", run.display()),
            },
            self.output.out.join("plane.json").display()
        );
        Ok(file)
    }
}

/// `plane.{svg,png}` (the energy, L0 as a contour line) and, when the energy is not the
/// training loss, `plane-train-loss.{svg,png}`.
fn draw(file: &Picture<PlaneFile>, out: &Path) -> Result<()> {
    let marks: Vec<(String, f64, f64)> = file
        .header
        .models
        .iter()
        .map(|m| (m.name.clone(), m.x, m.y))
        .collect();
    let line = |points: &[Mark]| points.iter().map(|m| (m.x, m.y)).collect::<Vec<_>>();
    let paths: Vec<(String, Vec<(f64, f64)>)> = file
        .header
        .path
        .iter()
        .map(|p| {
            let method = file.header.method.as_deref().unwrap_or("path");
            (method.to_string(), line(p))
        })
        .chain(
            file.header
                .also
                .iter()
                .map(|p| (p.method.clone(), line(&p.points))),
        )
        .collect();
    let name = &file.header.settings.config.name;
    let figure = Contour {
        title: format!("{name}: {} on the plane", file.header.measured.energy),
        x_label: "distance along u (from a towards b)".into(),
        y_label: "distance along v".into(),
        x: &file.grid.x,
        y: &file.grid.y,
        values: &file.grid.energy,
        level: file.header.level,
        marks,
        paths,
    };
    contour::draw_with_train_loss(
        figure,
        file.header.measured.energy,
        &file.grid.train_loss,
        format!("{name}: train_loss on the plane"),
        &out.join("plane"),
    )
}
