//! `levelset eval`: the config's energy of a checkpoint, as JSON, whoever trained it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Train, device};
use levelset_models::checkpoint;
use levelset_models::flat::num_params;
use serde_json::json;

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};

pub struct EvalArgs {
    pub config: ExperimentConfig,
    pub checkpoint: PathBuf,
}

/// Prints (and returns) the JSON report.
pub fn run(args: EvalArgs) -> Result<serde_json::Value> {
    with_landscape(&args.config.clone(), args)?
}

impl WithLandscape for EvalArgs {
    type Output = Result<serde_json::Value>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<serde_json::Value> {
        let architecture = landscape.architecture();
        let (model, meta) = checkpoint::load(
            landscape.init(0),
            &architecture,
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
        let model = model.valid();
        let energy = landscape.energy(&model);
        let mut report = json!({
            "checkpoint": self.checkpoint,
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
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(report)
    }
}
