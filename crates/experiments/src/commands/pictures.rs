//! What `levelset plane` and `levelset surface` share: a grid of points evaluated one row per
//! stacked pass, its energy and training loss, the JSON file rewritten after every row so that
//! `--resume` continues where a run stopped, and the CSV of the finished grid.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::prelude::Tensor;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Compute, Train};
use levelset_models::statistics::BnConfig;
use levelset_models::{Energy, Landscape};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, differing_keys};
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::progress::count_bar;
use crate::resumable::{read_json, refuse_unless_resumed};

/// The flags `plane` and `surface` share.
#[derive(clap::Args, Debug)]
pub struct OutputFlags {
    /// Folder for the JSON file, the CSV and the figures.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run whose JSON file is in --out (the same settings) from its last finished
    /// row.
    #[arg(long)]
    pub resume: bool,
    /// Overrides the config's data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// What every picture's file records about how its values were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub levelset_version: String,
    pub backend: String,
    pub energy: Energy,
    /// The `[bn]` statistics each point is evaluated with (nets with running statistics).
    pub bn: Option<BnConfig>,
}

impl Measured {
    pub fn of<L: Landscape<Train>>(landscape: &L) -> Self {
        Measured {
            levelset_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: BACKEND_NAME.to_string(),
            energy: landscape.energy_kind(),
            bn: landscape.statistics(),
        }
    }
}

/// The energies of the rows of a [k, num_params] tensor of flat points.
pub type Evaluate<'a> = dyn Fn(Tensor<Compute, 2>) -> Vec<f64> + 'a;

/// A grid's axes and the rows evaluated so far: row `j` holds the points `(x[i], y[j])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// The configured energy, one row per finished grid row (`null`: not finite).
    #[serde(with = "finite")]
    pub energy: Vec<Vec<f64>>,
    /// The training loss at the same points (the energy itself where that is the training
    /// loss).
    #[serde(with = "finite")]
    pub train_loss: Vec<Vec<f64>>,
}

impl Grid {
    pub fn new(x: Vec<f64>, y: Vec<f64>) -> Self {
        Grid {
            x,
            y,
            energy: Vec::new(),
            train_loss: Vec::new(),
        }
    }
}

/// What a picture's file holds besides its grid: its settings and everything derived from
/// them, which a resumed run must reproduce.
pub trait Header: Serialize + DeserializeOwned {
    /// The files' stem: `plane` writes `plane.json` and `plane.csv`.
    const NAME: &'static str;
}

/// A picture's file: its header's fields, and its grid under the key `grid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "H: Header")]
pub struct Picture<H> {
    #[serde(flatten)]
    pub header: H,
    pub grid: Grid,
}

pub fn json_path<H: Header>(out: &Path) -> PathBuf {
    out.join(format!("{}.json", H::NAME))
}

/// Refuses to start over a picture already in `out` unless asked to resume it.
pub fn check_fresh<H: Header>(output: &OutputFlags) -> Result<()> {
    refuse_unless_resumed(&json_path::<H>(&output.out), output.resume, "run")
}

/// Fills `picture`'s grid with `landscape`'s energy and the training loss
/// (`with_evaluators`, `fill`): `points(j)` gives row `j`'s flat points, `endpoints` are
/// handed to the landscapes first.
pub fn compute<H: Header, L: Landscape<Train>>(
    config: &ExperimentConfig,
    landscape: &L,
    endpoints: Option<(&Tensor<Compute, 1>, &Tensor<Compute, 1>)>,
    output: &OutputFlags,
    picture: Picture<H>,
    points: &dyn Fn(usize) -> Tensor<Compute, 2>,
) -> Result<Picture<H>> {
    let mut picture = Some(picture);
    with_evaluators(config, landscape, endpoints, &mut |energy, train_loss| {
        let start = picture.take().expect("one grid");
        picture = Some(fill(output, start, points, energy, train_loss)?);
        Ok(())
    })?;
    Ok(picture.expect("the grid was filled"))
}

/// Evaluates the rows of `picture`'s grid not yet done, `points(j)` giving row `j`'s flat
/// points, rewriting the JSON after each row; with `resume`, first takes the finished rows of
/// the file in `out`, after checking that it was computed with the same settings. Writes the
/// CSV once the grid is complete.
fn fill<H: Header>(
    output: &OutputFlags,
    mut picture: Picture<H>,
    points: &dyn Fn(usize) -> Tensor<Compute, 2>,
    energy: &Evaluate,
    train_loss: Option<&Evaluate>,
) -> Result<Picture<H>> {
    let (out, resume) = (&output.out, output.resume);
    let path = json_path::<H>(out);
    if resume && path.exists() {
        picture.grid = resumed_rows(&path, &picture)?;
    }
    let (nx, ny) = (picture.grid.x.len(), picture.grid.y.len());
    let done = picture.grid.energy.len();
    if done > 0 {
        println!("resuming {}: {done} of {ny} rows done", path.display());
    }
    let bar = count_bar(H::NAME, "rows", ny as u64);
    bar.set_position(done as u64);
    for j in done..ny {
        let row = points(j);
        let energies = energy(row.clone());
        let losses = match train_loss {
            Some(train_loss) => train_loss(row),
            None => energies.clone(),
        };
        assert!(
            energies.len() == nx && losses.len() == nx,
            "one value per point"
        );
        let grid = &mut picture.grid;
        grid.energy.push(energies);
        grid.train_loss.push(losses);
        write_atomic(&path, &serde_json::to_vec_pretty(&picture)?)
            .with_context(|| format!("writing {}", path.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    write_csv(&out.join(format!("{}.csv", H::NAME)), &picture.grid)?;
    Ok(picture)
}

/// The finished rows of the picture in `path`, which must match `picture` in everything
/// but its rows.
fn resumed_rows<H: Header>(path: &Path, picture: &Picture<H>) -> Result<Grid> {
    let again = "rerun with the same settings, or choose another --out";
    let remove = "remove it to start over";
    let what = format!("a levelset {} file", H::NAME);
    let damaged = || format!("{} is damaged; {remove}", path.display());
    let previous: serde_json::Value =
        read_json(path, &what, remove)?.with_context(|| format!("{} is gone", path.display()))?;
    let saved: Picture<H> = serde_json::from_value(previous.clone()).with_context(damaged)?;
    // Both sides go through JSON text, so equal settings compare equal to the last bit.
    let current: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(picture)?)?;
    let mut keys = Vec::new();
    differing_keys(
        &without_rows(previous),
        &without_rows(current),
        "",
        &mut keys,
    );
    if !keys.is_empty() {
        bail!(
            "cannot resume {}: it was computed with other settings (differs in {}); {again}",
            path.display(),
            keys.join(", ")
        );
    }
    let grid = saved.grid;
    let rows_fit = |rows: &[Vec<f64>]| rows.iter().all(|r| r.len() == grid.x.len());
    if grid.energy.len() > grid.y.len()
        || grid.train_loss.len() != grid.energy.len()
        || !rows_fit(&grid.energy)
        || !rows_fit(&grid.train_loss)
    {
        bail!(
            "{}: its rows do not fit its {} x {} grid; {}",
            path.display(),
            grid.x.len(),
            grid.y.len(),
            damaged()
        );
    }
    Ok(grid)
}

fn without_rows(mut picture: serde_json::Value) -> serde_json::Value {
    if let Some(grid) = picture.get_mut("grid").and_then(|g| g.as_object_mut()) {
        grid.remove("energy");
        grid.remove("train_loss");
    }
    picture
}

/// `x,y,energy,train_loss`, one line per grid point, row by row (empty: not finite).
fn write_csv(path: &Path, grid: &Grid) -> Result<()> {
    let value = |v: f64| {
        if v.is_finite() {
            v.to_string()
        } else {
            String::new()
        }
    };
    let mut text = String::from("x,y,energy,train_loss\n");
    for (j, (energies, losses)) in grid.energy.iter().zip(&grid.train_loss).enumerate() {
        for (i, (&e, &l)) in energies.iter().zip(losses).enumerate() {
            text.push_str(&format!(
                "{},{},{},{}\n",
                grid.x[i],
                grid.y[j],
                value(e),
                value(l)
            ));
        }
    }
    write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Runs `work` with `landscape`'s energy of a row of points and, unless that energy is the
/// training loss, the training loss of the same points: a second landscape of `config` with
/// `energy = "train_loss"` (its data built once more). Both are given `endpoints` first
/// (`[bn] stats = "interpolate"` keeps them).
fn with_evaluators<L: Landscape<Train>>(
    config: &ExperimentConfig,
    landscape: &L,
    endpoints: Option<(&Tensor<Compute, 1>, &Tensor<Compute, 1>)>,
    work: &mut dyn FnMut(&Evaluate, Option<&Evaluate>) -> Result<()>,
) -> Result<()> {
    if let Some((a, b)) = endpoints {
        landscape.set_endpoints(a, b);
    }
    let template = landscape.init(0).valid();
    let energy = |rows: Tensor<Compute, 2>| landscape.energies(&template, rows);
    if landscape.energy_kind() == Energy::TrainLoss {
        return work(&energy, None);
    }
    let train_config = ExperimentConfig {
        energy: Energy::TrainLoss,
        ..config.clone()
    };
    with_landscape(
        &train_config,
        TrainLoss {
            energy: &energy,
            endpoints,
            work,
        },
    )
    .context("building the training loss beside the energy")?
}

/// The second half of [`with_evaluators`], once the training-loss landscape is built: a
/// job of one type whatever the first landscape's, so that each landscape type compiles it
/// once.
struct TrainLoss<'a> {
    energy: &'a Evaluate<'a>,
    endpoints: Option<(&'a Tensor<Compute, 1>, &'a Tensor<Compute, 1>)>,
    work: &'a mut dyn FnMut(&Evaluate, Option<&Evaluate>) -> Result<()>,
}

impl WithLandscape for TrainLoss<'_> {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        if let Some((a, b)) = self.endpoints {
            landscape.set_endpoints(a, b);
        }
        let template = landscape.init(0).valid();
        let train_loss = |rows: Tensor<Compute, 2>| landscape.energies(&template, rows);
        (self.work)(self.energy, Some(&train_loss))
    }
}

/// Grid values in JSON: a non-finite value (a diverged point far from the models) is `null`,
/// which JSON has for it, and reads back as NaN.
mod finite {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(rows: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<Vec<Option<f64>>> = rows
            .iter()
            .map(|r| r.iter().map(|&v| v.is_finite().then_some(v)).collect())
            .collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        let rows = Vec::<Vec<Option<f64>>>::deserialize(d)?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            .collect())
    }
}
