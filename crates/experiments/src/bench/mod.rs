//! `levelset bench`: throughput of the paper's models on the compiled backend, the cost of a
//! DSS segment check, end-to-end DSS runs, and the machine's matmul peak, as medians of
//! repeats with a busy-machine guard. The JSON it writes has the schema of
//! `experiments/bench/torch_bench.py`, so `experiments/bench/compare.py` puts them side by side.

mod cpu_share;
mod layers;
mod measure;
pub mod warmup;
mod workloads;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use levelset_models::Landscape;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Compute, Train, device};
use levelset_models::landscape::StackedPass;
use levelset_models::nets::rule::{LayerRule, layer_rule, override_layer_rule};
use levelset_models::tasks::EVAL_BATCH;

use crate::config::{ExperimentConfig, TaskConfig};
use crate::landscapes::{WithLandscape, with_landscape};
use layers::{layer_breakdown, lm_layer_breakdown};
#[cfg(target_arch = "x86_64")]
pub use measure::has_avx2_and_fma;
pub use measure::{BenchReport, Machine, Measurement};
use workloads::{
    Phase, Plan, dss_end_to_end, eval, forward_flops, gflops, hessian_product, matmul_peak,
    segment_check, train_phase, train_step,
};

/// A benchmarked model: the quick config it comes from, and the level of its end-to-end DSS
/// pair (none where that would take tens of minutes on a CPU).
struct Model {
    name: &'static str,
    config: &'static str,
    dss_level: Option<f64>,
    /// At most this many end-to-end DSS repeats (one MNIST run takes minutes on a CPU).
    dss_repeats: usize,
}

const MODELS: [Model; 5] = [
    Model {
        name: "poly",
        config: "quadratic-quick.toml",
        dss_level: Some(0.05),
        dss_repeats: usize::MAX,
    },
    Model {
        name: "mnist",
        config: "mnist-quick.toml",
        dss_level: Some(0.1),
        dss_repeats: 1,
    },
    Model {
        name: "cifar10",
        config: "cifar10-quick.toml",
        dss_level: None,
        dss_repeats: 0,
    },
    Model {
        name: "ptb",
        config: "ptb-quick.toml",
        dss_level: None,
        dss_repeats: 0,
    },
    // Not among the defaults: minutes a repeat on a 2-core CPU. Its evaluation includes the
    // statistics pass `[bn]` asks for.
    Model {
        name: "resnet20",
        config: "resnet20-quick.toml",
        dss_level: None,
        dss_repeats: 0,
    },
];

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Models to time: poly, mnist, cifar10, ptb, resnet20.
    #[arg(long, value_delimiter = ',', default_value = "poly,mnist,cifar10,ptb")]
    pub models: Vec<String>,
    #[arg(long, default_value = "configs")]
    pub configs: PathBuf,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// JSON file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Timed repeats per workload (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Training steps per timed repeat.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Repeats of each end-to-end DSS run (MNIST's is run once: it takes minutes on a CPU);
    /// 0 skips them and the endpoint training they need.
    #[arg(long, default_value_t = 3)]
    pub dss_repeats: usize,
    /// How the nets compute convolutions and LSTM layers: `burn` (Burn's layers) or `matmul`
    /// (unfold + batched matmul, fused gate matmuls); default: the backend's own choice.
    #[arg(long)]
    pub layers: Option<String>,
    /// Also time the phases of a training step apart (forward, backward, optimizer update),
    /// with a device synchronisation after each, in milliseconds per step; and, for the nets
    /// with a layer-by-layer description (the described nets and the paper's MLPs, MNIST and
    /// CIFAR-10 nets) and the PTB model, every layer operation's forward and backward in a
    /// training step and its forward in an evaluation batch, each between two
    /// synchronisations.
    #[arg(long)]
    pub breakdown: bool,
}

pub fn run(args: BenchArgs) -> Result<BenchReport> {
    if args.repeats == 0 || args.steps == 0 {
        bail!("--repeats and --steps must be at least 1");
    }
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting the number of threads")?;
    }
    let rule = apply_layer_rule(args.layers.as_deref())?;
    let plan = Plan {
        repeats: args.repeats,
        steps: args.steps,
        seed: 0,
    };
    let models: Vec<&'static Model> = args
        .models
        .iter()
        .map(|name| {
            MODELS.iter().find(|m| m.name == name).with_context(|| {
                let known: Vec<_> = MODELS.iter().map(|m| m.name).collect();
                format!(
                    "unknown model {name:?} (expected one of {})",
                    known.join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut report = BenchReport {
        tool: "levelset".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        backend: BACKEND_NAME.into(),
        threads: rayon::current_num_threads(),
        machine: Machine::this(),
        layers: Some(rule.name().into()),
        results: vec![matmul_peak(plan)],
    };
    // Written after every measurement, so a run stopped part-way (a device call's timeout in
    // the middle of a model's kernel tuning) keeps what it measured.
    let save = |report: &BenchReport| -> Result<()> {
        let json = serde_json::to_vec_pretty(report)?;
        write_atomic(&args.out, &json).with_context(|| format!("writing {}", args.out.display()))
    };
    save(&report)?;
    for model in models {
        // --data-dir applies to the models with data files; the polynomial task has none.
        let mut config = ExperimentConfig::load(&args.configs.join(model.config))?;
        config.task.resolve_data_dir(args.data_dir.as_deref())?;
        let job = ModelBench {
            model,
            config: config.clone(),
            plan,
            dss_repeats: args.dss_repeats.min(model.dss_repeats),
            breakdown: args.breakdown,
            record: &mut |measurement| {
                report.results.push(measurement);
                save(&report)
            },
        };
        with_landscape(&config, job)??;
    }
    println!("{}", table(&report));
    Ok(report)
}

struct ModelBench<'a> {
    model: &'static Model,
    config: ExperimentConfig,
    plan: Plan,
    dss_repeats: usize,
    breakdown: bool,
    /// Takes each measurement as it is made.
    record: &'a mut dyn FnMut(Measurement) -> Result<()>,
}

impl WithLandscape for ModelBench<'_> {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Self::Output {
        let name = self.model.name;
        let record = self.record;
        tracing::info!(model = name, "benchmarking");
        let flops = forward_flops(&landscape.architecture());
        let train = train_step(name, &landscape, &self.config, self.plan);
        record(train.clone())?;
        if let Some(forward) = flops {
            // A training step costs about three forwards: the backward pass computes
            // gradients for both the inputs and the weights of every layer.
            record(gflops(&train, "train_gflops", 3.0 * forward))?;
        }
        if self.breakdown {
            for phase in Phase::ALL {
                record(train_phase(
                    name,
                    &landscape,
                    &self.config,
                    self.plan,
                    phase,
                ))?;
            }
            let architecture = landscape.architecture();
            match (
                architecture.described(),
                architecture.language_model(),
                &self.config.task,
            ) {
                (Some(net), _, _) => {
                    let batch = landscape
                        .loader(self.plan.seed)
                        .iter()
                        .next()
                        .map_or(0, |b| L::batch_examples(&b));
                    let eval_batch = EVAL_BATCH.min(landscape.eval_examples());
                    layer_breakdown(name, &net, batch, eval_batch, self.plan, record)?;
                }
                (
                    None,
                    Some(lm),
                    TaskConfig::Ptb {
                        batch_size, steps, ..
                    },
                ) => lm_layer_breakdown(name, &lm, [*batch_size, *steps], self.plan, record)?,
                _ => tracing::warn!(
                    model = name,
                    "no per-layer breakdown: only nets with a layer-by-layer description (the \
                     described nets and the paper's MNIST, CIFAR-10 and PTB nets) have one"
                ),
            }
        }
        let evaluated = eval(name, &landscape, self.plan);
        record(evaluated.clone())?;
        if let Some(forward) = flops {
            record(gflops(&evaluated, "eval_gflops", forward))?;
        }
        if landscape.stacked_pass(&device()) != StackedPass::Absent {
            record(segment_check(name, &landscape, self.plan, true))?;
        }
        record(segment_check(name, &landscape, self.plan, false))?;
        for measured in hessian_product(name, &landscape, self.plan)
            .into_iter()
            .flatten()
        {
            record(measured)?;
        }
        if let (1.., Some(level)) = (self.dss_repeats, self.model.dss_level) {
            let plan = Plan {
                repeats: self.dss_repeats,
                ..self.plan
            };
            record(dss_end_to_end(name, &landscape, &self.config, level, plan)?)?;
        }
        Ok(())
    }
}

/// Makes the process use the `--layers` rule given by name, or the backend's own; the rule.
fn apply_layer_rule(name: Option<&str>) -> Result<LayerRule> {
    let rule = match name {
        Some(name) => LayerRule::parse(name).map_err(|e| anyhow::anyhow!("--layers: {e}"))?,
        None => layer_rule::<Compute>(&device()),
    };
    override_layer_rule(Some(rule));
    Ok(rule)
}

/// A markdown table of a report, with its machine line.
pub fn table(report: &BenchReport) -> String {
    let mut out = format!(
        "{} {} on {}{} ({} threads; {}, {} cores, {})\n\n",
        report.tool,
        report.version,
        report.backend,
        report
            .layers
            .as_ref()
            .map(|l| format!(", {l} layers"))
            .unwrap_or_default(),
        report.threads,
        report.machine.cpu,
        report.machine.cores,
        report.machine.simd
    );
    out.push_str("| model | workload | median | min | max | unit | others' CPU | flagged |\n");
    out.push_str("|---|---|---:|---:|---:|---|---:|---|\n");
    for m in &report.results {
        out.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {} | {} | {} |\n",
            m.model,
            m.workload,
            m.median,
            m.min,
            m.max,
            m.unit,
            m.other_cpu_share
                .map_or("–".into(), |s| format!("{:.0}%", 100.0 * s)),
            if m.flagged { "yes" } else { "" }
        ));
    }
    out
}
