//! `levelset train`: one endpoint trained to a level and saved as a checkpoint.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Train};

use levelset_models::checkpoint;
use levelset_models::outdir::OutputLock;
use levelset_models::train::train_to_level;

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::progress::steps_bar;
use crate::pair::{Provenance, save_model, warn_if_unresolved};

pub struct TrainArgs {
    pub config: ExperimentConfig,
    pub level: f64,
    pub seed: u64,
    pub out: PathBuf,
    /// Replace a checkpoint already in `out`.
    pub force: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    with_landscape(&args.config.clone(), args)?
}

impl WithLandscape for TrainArgs {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        // Checked once the config has proved valid (a bad one leaves no folder behind), and
        // before any training: hours of work must not end in a refusal to save them.
        let _lock = OutputLock::acquire(&self.out)?;
        if !self.force && checkpoint::exists(&self.out) {
            bail!(
                "{} already holds a checkpoint; pass --force to replace it, or choose another --out",
                self.out.display()
            );
        }
        let kind = landscape.energy_kind();
        warn_if_unresolved(&landscape, &[self.level]);
        tracing::info!(
            task = %self.config.name,
            energy = %kind,
            level = self.level,
            seed = self.seed,
            backend = BACKEND_NAME,
            "training one endpoint"
        );
        let start = Instant::now();
        let bar = steps_bar("train");
        let model = landscape.init(self.seed);
        let trained = train_to_level(
            &landscape,
            model,
            self.level,
            &self.config.train,
            self.seed,
            &bar,
        );
        bar.finish_and_clear();
        let trained = trained?;
        let seconds = start.elapsed().as_secs_f64();
        let made = Provenance {
            seed: self.seed,
            energy: trained.energy,
            level: Some(self.level),
            steps: trained.steps,
        };
        let meta = save_model(&landscape, &self.config, trained.model, made, &self.out)?;
        println!(
            "{}: {kind} {:.6} <= {} after {} steps in {seconds:.1} s ({} parameters, {BACKEND_NAME}); checkpoint in {}",
            self.config.name,
            trained.energy,
            self.level,
            trained.steps,
            meta.num_params,
            self.out.display()
        );
        Ok(())
    }
}
