//! `levelset warmup`: one untimed pass of every kernel shape a config's runs use (a training
//! step, an energy evaluation, a DSS segment check), so that the GPU backends autotune them
//! before the work that matters. CubeCL stores each tuned shape on disk as soon as it is
//! tuned, so a warm-up that is stopped resumes where it left off, and a machine pays the
//! tuning once per shape.

use std::path::PathBuf;

use anyhow::Result;
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Compute, Train, device};
use levelset_models::landscape::{StackedPass, cpu_backend};

use super::apply_layer_rule;
use super::workloads::{Plan, eval_run, segment_check_run, train_step_run};
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};

#[derive(clap::Args, Debug)]
pub struct WarmupArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides the config's data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `burn` or `matmul` layers (see `levelset bench --layers`); default: the backend's.
    #[arg(long)]
    pub layers: Option<String>,
    /// The parts to run: any of train, eval, check (default all three). With CubeCL's
    /// execution log on, two runs of `--phases train` with different `--steps` give the kernel
    /// launches of one training step (experiments/bench/README.md).
    #[arg(long, value_delimiter = ',', default_value = "train,eval,check")]
    pub phases: Vec<String>,
    /// Training steps in the train phase.
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
}

pub fn run(args: WarmupArgs) -> Result<()> {
    for phase in &args.phases {
        if !PHASES.contains(&phase.as_str()) {
            anyhow::bail!(
                "--phases: unknown phase '{phase}' (expected {})",
                PHASES.join(", ")
            );
        }
    }
    if args.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let rule = apply_layer_rule(args.layers.as_deref())?;
    let mut config = ExperimentConfig::load(&args.config)?;
    config.task.resolve_data_dir(args.data_dir.as_deref())?;
    println!(
        "warming up {} on {BACKEND_NAME} ({} layers)",
        args.config.display(),
        rule.name()
    );
    with_landscape(
        &config.clone(),
        Warmup {
            config,
            phases: args.phases,
            steps: args.steps,
        },
    )?
}

const PHASES: [&str; 3] = ["train", "eval", "check"];

struct Warmup {
    config: ExperimentConfig,
    phases: Vec<String>,
    steps: usize,
}

impl WithLandscape for Warmup {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        let plan = Plan {
            repeats: 1,
            steps: self.steps,
            seed: 0,
        };
        let stacked = landscape.stacked_pass(&device()) == StackedPass::Faster;
        let report = |what: &str, seconds: f64| println!("  {what}: {seconds:.1} s");
        let wants = |phase: &str| self.phases.iter().any(|p| p == phase);
        if wants("train") {
            report(
                &format!("training steps ({})", self.steps),
                train_step_run(&landscape, &self.config, plan)().seconds,
            );
        }
        if wants("eval") {
            report("energy evaluation", eval_run(&landscape, plan)().seconds);
        }
        if wants("check") {
            report(
                "segment check",
                segment_check_run(&landscape, plan, stacked)().seconds,
            );
        }
        if cpu_backend::<Compute>(&device()) {
            println!("done: {BACKEND_NAME} tunes nothing; the GPU backends keep what they tune");
            return Ok(());
        }
        println!(
            "done: a later run of this config on this machine reuses the tuned kernels \
             (CubeCL keeps them in target/autotune of the Cargo project around the working \
             directory, else in the user's cache directory under cubecl/)"
        );
        Ok(())
    }
}
