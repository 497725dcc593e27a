//! `levelset hessian`: the curvature of the config's training loss at a checkpoint, its
//! largest Hessian eigenvalues and its trace, as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use levelset_models::backend::{BACKEND_NAME, Train, device};
use levelset_models::checkpoint;
use levelset_models::flat::flatten;
use levelset_models::{DataSplit, Landscape};
use levelset_strings::{HessianConfig, hessian};
use serde_json::json;

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};

pub struct HessianArgs {
    pub config: ExperimentConfig,
    pub checkpoint: PathBuf,
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
        let (model, _) = checkpoint::load(
            landscape.init(0),
            &landscape.architecture(),
            &self.checkpoint,
            &device(),
        )
        .with_context(|| {
            format!(
                "loading {} for config '{}'",
                self.checkpoint.display(),
                self.config.name
            )
        })?;
        let point = flatten(&model.valid());
        let measured = hessian(&landscape, point, &self.settings)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.checkpoint.display()))?;
        let mut report = serde_json::to_value(&measured)?;
        report["checkpoint"] = json!(self.checkpoint);
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
