//! `levelset hessian`: the curvature of the config's training loss at a checkpoint, its
//! largest Hessian eigenvalues and its trace, as JSON; or at every point of a finished
//! `connect` run (`--path`), as `connect --hessian` measures them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_models::flat::flatten;
use levelset_models::outdir::OutputLock;
use levelset_models::{DataSplit, Landscape};
use levelset_strings::{HessianConfig, HessianReport, hessian};
use serde_json::json;

use crate::commands::connect::{SavedPath, write_report};
use crate::commands::connect_hessian;
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::pair::load_model;

/// Where `levelset hessian` measures.
#[derive(Debug, Clone)]
pub enum HessianTarget {
    Checkpoint(PathBuf),
    /// Every point of the finished `connect` run in this folder (DSS beads, NEB pivots).
    Path(PathBuf),
}

pub struct HessianArgs {
    pub config: ExperimentConfig,
    pub target: HessianTarget,
    pub settings: HessianConfig,
    /// Also written here, atomically.
    pub out: Option<PathBuf>,
}

/// Prints (and returns) the JSON report.
pub fn run(args: HessianArgs) -> Result<serde_json::Value> {
    args.settings.validate().map_err(anyhow::Error::msg)?;
    with_landscape(&args.config.clone(), args)?
}

impl WithLandscape for HessianArgs {
    type Output = Result<serde_json::Value>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<serde_json::Value> {
        let mut report = match &self.target {
            HessianTarget::Checkpoint(dir) => {
                let mut report = serde_json::to_value(self.at_checkpoint(&landscape, dir)?)?;
                report["checkpoint"] = json!(dir);
                report
            }
            HessianTarget::Path(run) => {
                let mut report = serde_json::to_value(self.along_path(&landscape, run)?)?;
                report["path"] = json!(run);
                report
            }
        };
        report["config"] = json!(self.config.name);
        report["backend"] = json!(BACKEND_NAME);
        // What was differentiated: a classifier's mean cross-entropy, a regression's mean
        // error, without the weight penalty, dropout or augmentation.
        report["loss"] = json!("the training loss without its weight penalty");
        let text = serde_json::to_string_pretty(&report)?;
        if let Some(out) = &self.out {
            levelset_models::atomic::write_atomic(out, format!("{text}\n").as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
        }
        println!("{text}");
        Ok(report)
    }
}

impl HessianArgs {
    fn at_checkpoint<L: Landscape<Train>>(
        &self,
        landscape: &L,
        dir: &Path,
    ) -> Result<HessianReport> {
        let (model, _) = load_model(landscape, dir, &self.config.name)?;
        let point = flatten(&model.valid());
        hessian(landscape, point, &self.settings)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
    }

    /// Measures every point of the run in `run` into its `hessian.json` (continuing a
    /// measurement of the same settings there) and adds the summary to its `report.json`, as
    /// `connect --hessian` does.
    fn along_path<L: Landscape<Train>>(
        &self,
        landscape: &L,
        run: &Path,
    ) -> Result<connect_hessian::ReportCurvature> {
        let _lock = OutputLock::acquire(run)?;
        let saved = SavedPath::read(run)?;
        let beads: Vec<Vec<f32>> = saved
            .flats(landscape, &self.config.name)?
            .iter()
            .map(|flat| flat.to_data().to_vec::<f32>().expect("f32 parameters"))
            .collect();
        let curvature = connect_hessian::measure(
            landscape,
            run,
            &beads,
            &saved.report.bead_energies,
            &self.settings,
        )?;
        let summary = connect_hessian::summary(&curvature);
        write_report(run, &saved.report, Some(summary.clone()))?;
        Ok(summary)
    }
}

/// `--split`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SplitName {
    Train,
    Test,
}

impl From<SplitName> for DataSplit {
    fn from(split: SplitName) -> Self {
        match split {
            SplitName::Train => DataSplit::Train,
            SplitName::Test => DataSplit::Test,
        }
    }
}
