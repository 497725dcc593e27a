//! `levelset surface`: the energy and training loss around one checkpoint along Li et al.'s
//! (2018) filter-normalized random directions, a 1-D curve or a 2-D surface. Writes
//! `surface.json`, `surface.csv` and the figure `surface.{svg,png}`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::prelude::*;
use levelset_models::backend::{Compute, Train};
use levelset_models::flat::flatten;
use levelset_models::outdir::OutputLock;
use levelset_models::{Energy, Landscape};
use levelset_strings::directions::filter_normalized;
use levelset_strings::plane::{axis, span_row};
use serde::{Deserialize, Serialize};

use crate::commands::pictures::{self, Grid, Header, Measured, OutputFlags, Picture};
use crate::config::{ExperimentConfig, load_config};
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::contour::{self, Contour};
use crate::output::figures::{self, Figure, LEVELSET_COLOR, PAPER_COLOR, Series};
use crate::pair::load_model;

/// What a run was asked for: a resumed run must be asked the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurfaceSettings {
    pub config: ExperimentConfig,
    pub checkpoint: PathBuf,
    /// 1: a curve along one direction; 2: a surface over two.
    pub dims: usize,
    /// Points per axis.
    pub grid: usize,
    /// Each axis runs over [-range, range], in multiples of its direction.
    pub range: f64,
    pub seed: u64,
}

/// `levelset surface`'s flags.
#[derive(clap::Args, Debug)]
pub struct SurfaceCli {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// 1: a curve along one direction; 2: a surface over two.
    #[arg(long, default_value_t = 2)]
    pub dims: usize,
    /// Grid points per axis (a row of the grid is one stacked evaluation).
    #[arg(long, default_value_t = 51)]
    pub grid: usize,
    /// Each axis runs over [-range, range], in multiples of its direction.
    #[arg(long, default_value_t = 1.0)]
    pub range: f64,
    /// Seeds the directions: the first is drawn from SEED, the second from SEED + 1.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutputFlags,
}

impl SurfaceCli {
    pub fn into_args(self) -> Result<SurfaceArgs> {
        Ok(SurfaceArgs {
            settings: SurfaceSettings {
                config: load_config(&self.config, self.output.data_dir.clone())?,
                checkpoint: self.checkpoint,
                dims: self.dims,
                grid: self.grid,
                range: self.range,
                seed: self.seed,
            },
            output: self.output,
        })
    }
}

pub struct SurfaceArgs {
    pub settings: SurfaceSettings,
    pub output: OutputFlags,
}

/// One direction: the seed of its Gaussian draw and its norm after filter normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    pub seed: u64,
    pub norm: f64,
}

/// `surface.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurfaceFile {
    #[serde(flatten)]
    pub measured: Measured,
    pub settings: SurfaceSettings,
    /// The level the checkpoint was trained to, when it records one of this energy.
    pub level: Option<f64>,
    /// The norm of the checkpoint's parameters.
    pub model_norm: f64,
    /// How the directions are made.
    pub directions_are: String,
    /// The directions along x (and y), in order.
    pub directions: Vec<Direction>,
}

impl Header for SurfaceFile {
    const NAME: &'static str = "surface";
}

pub fn run(args: SurfaceArgs) -> Result<Picture<SurfaceFile>> {
    let settings = &args.settings;
    if !(1..=2).contains(&settings.dims) {
        anyhow::bail!("--dims must be 1 or 2, got {}", settings.dims);
    }
    if !(2..=1000).contains(&settings.grid) {
        anyhow::bail!("--grid must be in 2..=1000, got {}", settings.grid);
    }
    if !(settings.range.is_finite() && settings.range > 0.0) {
        anyhow::bail!("--range must be a positive number, got {}", settings.range);
    }
    pictures::check_fresh::<SurfaceFile>(&args.output)?;
    let _lock = OutputLock::acquire(&args.output.out)?;
    with_landscape(&settings.config.clone(), args)?
}

impl WithLandscape for SurfaceArgs {
    type Output = Result<Picture<SurfaceFile>>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<Picture<SurfaceFile>> {
        let settings = &self.settings;
        let (model, meta) = load_model(&landscape, &settings.checkpoint, &settings.config.name)?;
        let model = model.valid();
        let origin = flatten(&model);
        let seeds: Vec<u64> = (0..settings.dims as u64)
            .map(|k| settings.seed.wrapping_add(k))
            .collect();
        let directions: Vec<_> = seeds
            .iter()
            .map(|&seed| filter_normalized(&model, seed))
            .collect();
        let norm = |t: &Tensor<Compute, 1>| {
            t.clone()
                .powi_scalar(2)
                .sum()
                .sqrt()
                .into_scalar()
                .elem::<f64>()
        };
        let xs = axis(-settings.range, settings.range, settings.grid);
        let ys = if settings.dims == 2 {
            xs.clone()
        } else {
            vec![0.0]
        };
        let file = Picture {
            header: SurfaceFile {
                measured: Measured::of(&landscape),
                settings: settings.clone(),
                level: meta
                    .level
                    .filter(|_| meta.energy_kind == landscape.energy_kind()),
                model_norm: norm(&origin),
                directions_are:
                    "Li et al.'s filter-normalized Gaussian directions: each filter (a \
                             convolution's output channel, a linear layer's output unit) \
                             rescaled to the norm of the model's filter, parameters of rank \
                             one (biases, normalization scales and shifts) zero"
                        .into(),
                directions: seeds
                    .iter()
                    .zip(&directions)
                    .map(|(&seed, d)| Direction {
                        seed,
                        norm: norm(d),
                    })
                    .collect(),
            },
            grid: Grid::new(xs.clone(), ys.clone()),
        };
        let row = |j: usize| span_row(&origin, &directions[0], directions.get(1), &xs, ys[j]);
        // No endpoints: `[bn] stats = "interpolate"` has no segment here, and each point's
        // statistics are its own recomputed ones.
        let file = pictures::compute(&settings.config, &landscape, None, &self.output, file, &row)?;
        draw(&file, &self.output.out)?;
        println!(
            "{}: {} around {} along {} filter-normalized direction(s) (seeds {:?}); {}",
            settings.config.name,
            file.header.measured.energy,
            settings.checkpoint.display(),
            settings.dims,
            seeds,
            self.output.out.join("surface.json").display()
        );
        Ok(file)
    }
}

/// A curve of the energy and training loss (`--dims 1`), or contour figures of each
/// (`--dims 2`, `surface.{svg,png}` and `surface-train-loss.{svg,png}`).
fn draw(file: &Picture<SurfaceFile>, out: &Path) -> Result<()> {
    let name = &file.header.settings.config.name;
    let grid = &file.grid;
    let stem = out.join("surface");
    if file.header.settings.dims == 1 {
        let series = |label: String, values: &[f64], color| Series {
            label,
            points: grid
                .x
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_finite())
                .map(|(&x, &v)| (x, v, None))
                .collect(),
            color,
        };
        let mut lines = vec![series(
            file.header.measured.energy.to_string(),
            &grid.energy[0],
            LEVELSET_COLOR,
        )];
        if file.header.measured.energy != Energy::TrainLoss {
            lines.push(series(
                "train_loss".into(),
                &grid.train_loss[0],
                PAPER_COLOR,
            ));
        }
        return figures::draw(
            &Figure {
                title: format!("{name}: along a filter-normalized direction"),
                x_label: "multiple of the direction".into(),
                y_label: if file.header.measured.energy == Energy::TrainLoss {
                    "train_loss".into()
                } else {
                    format!("{} and train_loss", file.header.measured.energy)
                },
                log_x: false,
                series: lines,
            },
            &stem,
        );
    }
    let figure = Contour {
        title: format!(
            "{name}: {} around the checkpoint",
            file.header.measured.energy
        ),
        x_label: "multiple of direction 1".into(),
        y_label: "multiple of direction 2".into(),
        x: &grid.x,
        y: &grid.y,
        values: &grid.energy,
        level: file.header.level,
        marks: vec![("model".into(), 0.0, 0.0)],
        paths: Vec::new(),
    };
    contour::draw_with_train_loss(
        figure,
        file.header.measured.energy,
        &grid.train_loss,
        format!("{name}: train_loss around the checkpoint"),
        &stem,
    )
}
