//! `levelset warmup`: one untimed pass of every kernel shape a config's runs use (a training
//! step, an energy evaluation, a DSS segment check), so that the GPU backends autotune them
//! before the work that matters. CubeCL stores each tuned shape on disk as soon as it is
//! tuned, so a warm-up that is stopped resumes where it left off, and a machine pays the
//! tuning once per shape. With `--launches` it then counts the kernels each phase launches,
//! once tuned, in CubeCL's execution log read inside this process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::Backend;
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Compute, Train, device};
use levelset_models::landscape::{StackedPass, cpu_backend};
use levelset_models::launches::{KernelUse, LaunchLog, Launches, add, total};
use serde::Serialize;

use super::apply_layer_rule;
use super::workloads::{
    Phase, Plan, eval_run, hooked_steps_run, segment_check_run, segment_check_workload,
    train_step_run,
};
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
    /// The parts to run: any of train, eval, check (default all three).
    #[arg(long, value_delimiter = ',', default_value = "train,eval,check")]
    pub phases: Vec<String>,
    /// Training steps in the train phase (and per count with --launches).
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// After warming up, count the kernels each phase launches (a training step, split into
    /// forward, backward and optimizer update; an energy evaluation; a segment check) and
    /// write them, by kernel name, as JSON to this file. CubeCL backends only (wgpu, cuda).
    #[arg(long)]
    pub launches: Option<PathBuf>,
    /// With --launches: also time every kernel (CubeCL waits for each kernel and times it,
    /// so the work runs slower, but each kernel's own time is measured).
    #[arg(long, requires = "launches")]
    pub kernel_times: bool,
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
    // The log must be on before the device's first use.
    let counting = match &args.launches {
        Some(out) => {
            let log_path = exec_log_path(out);
            let log = LaunchLog::install(&log_path, args.kernel_times).context("--launches")?;
            Some(Counting {
                out: out.clone(),
                log_path,
                log,
                header: LaunchReport {
                    config: args.config.display().to_string(),
                    backend: BACKEND_NAME,
                    layers: rule.name(),
                    kernel_times: args.kernel_times,
                    steps: args.steps,
                    phases: Vec::new(),
                },
            })
        }
        None => None,
    };
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
            counting,
        },
    )?
}

/// Where CubeCL writes its execution log while `--launches out` counts: beside `out`.
fn exec_log_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".exec.log");
    out.with_file_name(name)
}

/// `--launches`: the log being counted and the report it goes into.
struct Counting {
    out: PathBuf,
    log_path: PathBuf,
    log: LaunchLog,
    header: LaunchReport,
}

/// The JSON `--launches` writes.
#[derive(Debug, Serialize)]
struct LaunchReport {
    config: String,
    backend: &'static str,
    layers: &'static str,
    /// Whether each kernel was timed (`seconds` below); otherwise the seconds are 0.
    kernel_times: bool,
    /// Training steps counted (the training phases' figures are per step).
    steps: usize,
    phases: Vec<PhaseLaunches>,
}

#[derive(Debug, Serialize)]
struct PhaseLaunches {
    /// train_step (the sum of the next three), step_forward, step_backward,
    /// step_optimizer, eval, segment_check.
    phase: &'static str,
    /// What one unit of `launches` is: a training step, an evaluation, a segment check.
    per: &'static str,
    launches: f64,
    /// Device seconds per unit, summed over the kernels (with --kernel-times).
    seconds: f64,
    /// Launches and seconds per unit by kernel name (CubeCL's names; fused kernels appear as
    /// such).
    kernels: BTreeMap<String, PerUnit>,
}

#[derive(Debug, Serialize)]
struct PerUnit {
    launches: f64,
    seconds: f64,
}

impl PerUnit {
    fn new(k: KernelUse, units: usize) -> Self {
        PerUnit {
            launches: k.launches as f64 / units as f64,
            seconds: k.seconds / units as f64,
        }
    }
}

impl PhaseLaunches {
    fn new(phase: &'static str, per: &'static str, launches: &Launches, units: usize) -> Self {
        let all = PerUnit::new(total(launches), units);
        PhaseLaunches {
            phase,
            per,
            launches: all.launches,
            seconds: all.seconds,
            kernels: launches
                .iter()
                .map(|(k, &u)| (k.clone(), PerUnit::new(u, units)))
                .collect(),
        }
    }
}

fn sync() {
    Compute::sync(&device()).expect("the device synchronises");
}

impl Counting {
    /// The launches of one call of `run`, and of nothing before it.
    fn once<T>(&mut self, run: impl Fn() -> T) -> Result<Launches> {
        sync();
        self.log.take()?;
        run();
        sync();
        Ok(self.log.take()?)
    }

    /// Counts the launches of each wanted phase on `landscape`, whose kernels are tuned, and
    /// writes the report.
    fn count<L: Landscape<Train>>(
        mut self,
        landscape: &L,
        config: &ExperimentConfig,
        wants: impl Fn(&str) -> bool,
        plan: Plan,
        stacked: bool,
    ) -> Result<()> {
        let mut phases = Vec::new();
        if wants("train") {
            let mut run = hooked_steps_run(landscape, config, plan);
            // A first pass of this fresh state's steps, so that its first-use work is not
            // counted; then the counted pass.
            run(&mut |_| {});
            sync();
            self.log.take()?;
            let mut by_phase: [Launches; 3] = Default::default();
            let mut failed = None;
            run(&mut |phase| {
                sync();
                match self.log.take() {
                    Ok(launches) => {
                        let index = Phase::ALL.iter().position(|&p| p == phase).unwrap();
                        add(&mut by_phase[index], &launches);
                    }
                    Err(e) => failed = Some(e),
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
            let mut step = Launches::new();
            for launches in &by_phase {
                add(&mut step, launches);
            }
            phases.push(PhaseLaunches::new("train_step", "step", &step, plan.steps));
            for (phase, launches) in Phase::ALL.iter().zip(&by_phase) {
                phases.push(PhaseLaunches::new(
                    phase.workload(),
                    "step",
                    launches,
                    plan.steps,
                ));
            }
        }
        if wants("eval") {
            let launches = self.once(eval_run(landscape, plan))?;
            phases.push(PhaseLaunches::new("eval", "evaluation", &launches, 1));
        }
        if wants("check") {
            let launches = self.once(segment_check_run(landscape, plan, stacked))?;
            let workload = segment_check_workload(stacked);
            phases.push(PhaseLaunches::new(workload, "check", &launches, 1));
        }
        for p in &phases {
            let seconds = if self.header.kernel_times {
                format!(", {:.3} ms on the device", p.seconds * 1e3)
            } else {
                String::new()
            };
            println!(
                "  {}: {:.1} launches per {}{seconds}",
                p.phase, p.launches, p.per
            );
        }
        let report = LaunchReport {
            phases,
            ..self.header
        };
        let json = serde_json::to_string_pretty(&report)? + "\n";
        levelset_models::atomic::write_atomic(&self.out, json.as_bytes())
            .with_context(|| format!("writing {}", self.out.display()))?;
        std::fs::remove_file(&self.log_path)
            .with_context(|| format!("removing {}", self.log_path.display()))?;
        println!("launch counts written to {}", self.out.display());
        Ok(())
    }
}

const PHASES: [&str; 3] = ["train", "eval", "check"];

struct Warmup {
    config: ExperimentConfig,
    phases: Vec<String>,
    steps: usize,
    counting: Option<Counting>,
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
        if let Some(counting) = self.counting {
            counting.count(&landscape, &self.config, wants, plan, stacked)?;
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
