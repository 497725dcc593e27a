//! `levelset eval`: the config's energy of a checkpoint, as JSON, whoever trained it; or of
//! every point of a `connect` run, with the error of the ensemble of its points beside the
//! endpoints' own and their two-model ensemble (Garipov et al.'s fast ensembling).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::module::AutodiffModule;
use burn::prelude::{ElementConversion, Int, Tensor};
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Compute, Train};
use levelset_models::flat::num_params;
use serde_json::json;

use super::connect::SavedPath;
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::pair::load_model;

/// What `eval` and `export` read.
pub enum Target {
    Checkpoint(PathBuf),
    /// Every point of a `connect` run folder.
    Path(PathBuf),
}

pub struct EvalArgs {
    pub config: ExperimentConfig,
    pub target: Target,
    /// With a path: the error of the ensemble of its points (classifiers only).
    pub ensemble: bool,
}

/// Prints (and returns) the JSON report.
pub fn run(args: EvalArgs) -> Result<serde_json::Value> {
    if args.ensemble && matches!(args.target, Target::Checkpoint(_)) {
        bail!("--ensemble goes with --path: it is the ensemble of a path's points");
    }
    with_landscape(&args.config.clone(), args)?
}

impl WithLandscape for EvalArgs {
    type Output = Result<serde_json::Value>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<serde_json::Value> {
        let report = match &self.target {
            Target::Checkpoint(dir) => self.checkpoint(&landscape, dir)?,
            Target::Path(run) => self.path(&landscape, run)?,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(report)
    }
}

impl EvalArgs {
    fn checkpoint<L: Landscape<Train>>(
        &self,
        landscape: &L,
        dir: &Path,
    ) -> Result<serde_json::Value> {
        let (model, meta) = load_model(landscape, dir, &self.config.name)?;
        let model = model.valid();
        let energy = landscape.energy(&model);
        let mut report = json!({
            "checkpoint": dir,
            "config": self.config.name,
            "energy_kind": landscape.energy_kind(),
            "energy": energy,
            "num_params": num_params(&model),
            "backend": BACKEND_NAME,
            // What the checkpoint's own sidecar says it reached when it was saved.
            "recorded": {
                "energy_kind": meta.energy_kind,
                "energy": meta.energy,
                "level": meta.level,
                "backend": meta.backend,
            },
        });
        // A batch-normalized net: `energy` is what every path method measures at this point
        // (`[bn]`), and beside it the energy with the checkpoint's own running statistics,
        // which is what PyTorch's `eval()` mode computes.
        if let Some(bn) = landscape.statistics() {
            report["bn"] = serde_json::to_value(bn)?;
            report["energy_with_carried_statistics"] =
                json!(landscape.energy_with_carried_statistics(&model));
        }
        Ok(report)
    }

    /// The energy at every bead of the run in `run` (one stacked pass where the net has one),
    /// beside the report's, and with `--ensemble` the ensembles' errors.
    fn path<L: Landscape<Train>>(&self, landscape: &L, run: &Path) -> Result<serde_json::Value> {
        let saved = SavedPath::read(run)?;
        let template = landscape.init(0).valid();
        let flats = saved.flats(landscape, &self.config.name)?;
        let (first, last) = (&flats[0], &flats[flats.len() - 1]);
        landscape.set_endpoints(first, last);
        let energies = landscape.energies(&template, Tensor::stack(flats.clone(), 0));
        let points: Vec<serde_json::Value> = energies
            .iter()
            .zip(&saved.report.bead_energies)
            .enumerate()
            .map(|(k, (energy, reported))| {
                let mut point = saved.describe(k);
                point["energy"] = json!(energy);
                point["reported"] = json!(reported);
                point
            })
            .collect();
        let mut report = json!({
            "run": run,
            "method": saved.report.method,
            "config": self.config.name,
            "energy_kind": landscape.energy_kind(),
            "backend": BACKEND_NAME,
            "points": points,
        });
        if let Some(bn) = landscape.statistics() {
            report["bn"] = serde_json::to_value(bn)?;
        }
        if self.ensemble {
            report["ensemble"] = self.ensemble(landscape, &template, &flats)?;
        }
        Ok(report)
    }

    /// The errors, on the examples the energy is measured on, of every point, of the
    /// ensemble of all points (the mean of their softmax outputs), of each endpoint and of
    /// the endpoints' two-model ensemble.
    fn ensemble<L: Landscape<Train>>(
        &self,
        landscape: &L,
        template: &<L::Model as AutodiffModule<Train>>::InnerModule,
        flats: &[Tensor<Compute, 1>],
    ) -> Result<serde_json::Value> {
        let mut outputs = Vec::with_capacity(flats.len());
        let mut labels = None;
        for flat in flats {
            let model = levelset_models::flat::unflatten(template.clone(), flat.clone());
            let Some((probabilities, y)) = landscape.probabilities(&model) else {
                bail!(
                    "--ensemble: config '{}' is not a classifier; an ensemble's error is the \
                     argmax of its members' mean softmax outputs, which an image classifier \
                     has (mnist, cifar10)",
                    self.config.name
                );
            };
            labels.get_or_insert(y);
            outputs.push(probabilities);
        }
        let labels = labels.expect("a path has points");
        let error = |members: &[&Tensor<Compute, 2>]| -> f64 {
            let mean = members
                .iter()
                .map(|p| (*p).clone())
                .reduce(|a, b| a + b)
                .expect("an ensemble has members")
                .div_scalar(members.len() as f64);
            error_rate(mean, labels.clone())
        };
        let all: Vec<&Tensor<Compute, 2>> = outputs.iter().collect();
        let (a, b) = (&outputs[0], &outputs[outputs.len() - 1]);
        let split = if landscape.energy_kind().held_out() {
            "test"
        } else {
            "train"
        };
        Ok(json!({
            "split": split,
            "members": outputs.len(),
            "error": error(&all),
            "points": outputs.iter().map(|p| error(&[p])).collect::<Vec<_>>(),
            "endpoints": [error(&[a]), error(&[b])],
            "endpoints_ensemble": error(&[a, b]),
        }))
    }
}

/// The fraction of rows of `probabilities` whose most probable class is not the label.
fn error_rate(probabilities: Tensor<Compute, 2>, labels: Tensor<Compute, 1, Int>) -> f64 {
    let n = labels.dims()[0];
    let wrong = probabilities
        .argmax(1)
        .flatten::<1>(0, 1)
        .not_equal(labels)
        .float()
        .sum()
        .into_scalar()
        .elem::<f64>();
    wrong / n as f64
}
