//! What `levelset bench` times, generic over the landscape: the same code paths sweeps run.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::flatten;
use levelset_models::optim::AnyOptimizer;
use levelset_models::{Architecture, DataSplit, Landscape};
use levelset_strings::Evaluator;
use levelset_strings::hessian::Curvature;

use super::measure::{Measurement, Report, Timed, measure};
use crate::config::ExperimentConfig;
use crate::pair::{MethodName, connect_pair, flat_of, pair_seeds, train_endpoint};

/// Interior points of a segment check: the DSS configs' grid of 20.
pub const CHECK_GRID: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub repeats: usize,
    /// Optimizer steps per timed repeat (after as many warm-up steps).
    pub steps: usize,
    pub seed: u64,
}

fn throughput(architecture: &Architecture) -> Report {
    let unit = match architecture.language_model() {
        Some(_) => "tokens/s",
        None => "examples/s",
    };
    Report::Rate { unit, scale: 1.0 }
}

/// Times one run of `work` units of `f`.
fn timed(work: f64, f: impl FnOnce()) -> Timed {
    let start = Instant::now();
    f();
    Timed {
        seconds: start.elapsed().as_secs_f64(),
        work,
    }
}

/// Training steps on the config's own batches (collected before timing, so data loading is
/// not measured), in examples (tokens) per second.
pub fn train_step<L: Landscape<Train>>(
    name: &str,
    landscape: &L,
    config: &ExperimentConfig,
    plan: Plan,
) -> Measurement {
    let mut run = train_step_run(landscape, config, plan);
    run(); // warm-up: first-use allocations and kernel compilation
    let report = throughput(&landscape.architecture());
    measure(name, "train_step", report, plan.repeats, run)
}

/// What a timed run of training steps starts from: a fresh optimizer and model.
struct Steps<L: Landscape<Train>> {
    optimizer: AnyOptimizer<Train, L::Model>,
    lr: f64,
    carry: L::Carry,
    model: Option<L::Model>,
}

impl<L: Landscape<Train>> Steps<L> {
    /// The state, and the config's own `plan.steps` batches (collected before timing, so
    /// data loading is not measured).
    fn new(landscape: &L, config: &ExperimentConfig, plan: Plan) -> (Self, Vec<L::Batch>) {
        // Short training sets (the full-batch regressions) are cycled.
        let first: Vec<L::Batch> = landscape
            .loader(plan.seed)
            .iter()
            .take(plan.steps)
            .collect();
        let batches = first.iter().cloned().cycle().take(plan.steps).collect();
        let steps = Self {
            optimizer: config.train.optimizer.init::<Train, L::Model>(),
            lr: config.train.optimizer.learning_rate(0),
            carry: landscape.carry(plan.seed, 0),
            model: Some(landscape.init(plan.seed)),
        };
        (steps, batches)
    }

    /// One optimizer step on `batch`, calling `after` as each phase ends; the step's loss.
    fn step(
        &mut self,
        landscape: &L,
        batch: &L::Batch,
        mut after: impl FnMut(Phase),
    ) -> Tensor<Train, 1> {
        let current = self
            .model
            .take()
            .expect("model is put back after every step");
        let loss = landscape.loss(&current, batch.clone(), &mut self.carry);
        after(Phase::Forward);
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        after(Phase::Backward);
        self.model = Some(self.optimizer.step(self.lr, current, grads));
        after(Phase::Optimizer);
        loss
    }
}

/// One repeat of [`train_step`]: `plan.steps` optimizer steps on the same model.
pub fn train_step_run<'a, L: Landscape<Train>>(
    landscape: &'a L,
    config: &ExperimentConfig,
    plan: Plan,
) -> impl FnMut() -> Timed + 'a {
    let (mut s, batches) = Steps::new(landscape, config, plan);
    let examples: usize = batches.iter().map(L::batch_examples).sum();
    move || {
        timed(examples as f64, || {
            let mut last = None;
            for batch in &batches {
                last = Some(s.step(landscape, batch, |_| {}));
            }
            // Reading the last loss waits for queued work on asynchronous (GPU) backends.
            let _ = last.map(|l| l.into_scalar());
        })
    }
}

/// Training steps from a fresh model and optimizer (created here, before the first call),
/// `plan.steps` per call of the returned closure, which calls its hook as each phase of each
/// step ends; for counting what each phase launches (`levelset warmup --launches`).
pub fn hooked_steps_run<'a, L: Landscape<Train>>(
    landscape: &'a L,
    config: &ExperimentConfig,
    plan: Plan,
) -> impl FnMut(&mut dyn FnMut(Phase)) + 'a {
    let (mut s, batches) = Steps::new(landscape, config, plan);
    move |after| {
        for batch in &batches {
            s.step(landscape, batch, &mut *after);
        }
    }
}

/// A phase of a training step, for `bench --breakdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The loss: the model's forward pass on the batch.
    Forward,
    /// `loss.backward()` and collecting the parameters' gradients.
    Backward,
    /// The optimizer's update of every parameter.
    Optimizer,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Forward, Phase::Backward, Phase::Optimizer];

    pub fn workload(self) -> &'static str {
        match self {
            Phase::Forward => "step_forward",
            Phase::Backward => "step_backward",
            Phase::Optimizer => "step_optimizer",
        }
    }
}

/// Milliseconds per training step spent in `phase`, with the device synchronised after every
/// phase of every step, so that on asynchronous (GPU) backends each phase's kernels are
/// charged to it and not to whichever later call waits for them. The synchronisations cost
/// time of their own: the phases add up to more than [`train_step`]'s step.
pub fn train_phase<L: Landscape<Train>>(
    name: &str,
    landscape: &L,
    config: &ExperimentConfig,
    plan: Plan,
    phase: Phase,
) -> Measurement {
    let (mut s, batches) = Steps::new(landscape, config, plan);
    let dev = device();
    let sync = || Train::sync(&dev).expect("the device synchronises");
    let mut run = move || {
        let mut spent = 0.0;
        for batch in &batches {
            let mut start = Instant::now();
            s.step(landscape, batch, |ended| {
                sync();
                if ended == phase {
                    spent += start.elapsed().as_secs_f64();
                }
                start = Instant::now();
            });
        }
        Timed {
            seconds: spent,
            work: batches.len() as f64,
        }
    };
    run(); // warm-up: first-use allocations and kernel compilation
    let report = Report::PerWork {
        unit: "ms/step",
        scale: 1e3,
    };
    measure(name, phase.workload(), report, plan.repeats, run)
}

/// One energy evaluation on the config's held-out data, in examples (tokens) per second.
pub fn eval<L: Landscape<Train>>(name: &str, landscape: &L, plan: Plan) -> Measurement {
    let run = eval_run(landscape, plan);
    run();
    let report = throughput(&landscape.architecture());
    measure(name, "eval", report, plan.repeats, run)
}

/// One repeat of [`eval`].
pub fn eval_run<L: Landscape<Train>>(landscape: &L, plan: Plan) -> impl Fn() -> Timed + '_ {
    let model = landscape.init(plan.seed).valid();
    let examples = landscape.eval_examples() as f64;
    move || {
        timed(examples, || {
            landscape.energy(&model);
        })
    }
}

/// One DSS segment check between two random models: `CHECK_GRID - 1` interior points, each
/// a full energy evaluation, in seconds; `stacked` evaluates them in the landscape's stacked
/// pass, otherwise one by one (DSS uses whichever pays on the backend).
pub fn segment_check<L: Landscape<Train>>(
    name: &str,
    landscape: &L,
    plan: Plan,
    stacked: bool,
) -> Measurement {
    let run = segment_check_run(landscape, plan, stacked);
    run();
    let workload = segment_check_workload(stacked);
    measure(name, workload, Report::Seconds, plan.repeats, run)
}

/// The workload name of a segment check, stacked or point by point.
pub fn segment_check_workload(stacked: bool) -> &'static str {
    if stacked {
        "segment_check_stacked"
    } else {
        "segment_check_pointwise"
    }
}

/// One repeat of [`segment_check`].
pub fn segment_check_run<L: Landscape<Train>>(
    landscape: &L,
    plan: Plan,
    stacked: bool,
) -> impl Fn() -> Timed + '_ {
    let evaluator = Evaluator::with_stacking(landscape, stacked);
    let a = flatten(&landscape.init(plan.seed).valid());
    let b = flatten(&landscape.init(plan.seed + 1).valid());
    move || {
        timed(1.0, || {
            evaluator.check(&a, &b, CHECK_GRID, f64::INFINITY, 0);
        })
    }
}

/// Examples the curvature workloads measure the loss on: `levelset hessian`'s default.
pub const HESSIAN_EXAMPLES: usize = 500;

/// One gradient of the curvature loss and one Hessian-vector product (a central difference
/// of two gradients) at a random model, in seconds each, over the first
/// [`HESSIAN_EXAMPLES`] examples of the first split the task holds; none when the task
/// measures no curvature (a language model).
pub fn hessian_product<L: Landscape<Train>>(
    name: &str,
    landscape: &L,
    plan: Plan,
) -> Option<[Measurement; 2]> {
    let point = flatten(&landscape.init(plan.seed).valid());
    let examples = HESSIAN_EXAMPLES.min(landscape.eval_examples());
    let curvature = [DataSplit::Train, DataSplit::Test]
        .into_iter()
        .find_map(|split| Curvature::new(landscape, point.clone(), split, examples).ok())?;
    let curvature = std::cell::RefCell::new(curvature);
    let n = point.dims()[0];
    let v = Tensor::<Compute, 1>::ones([n], &device()).div_scalar((n as f64).sqrt());
    let gradient = || {
        timed(1.0, || {
            curvature
                .borrow()
                .gradient(point.clone())
                .expect("the loss has a gradient");
        })
    };
    let product = || {
        timed(1.0, || {
            curvature
                .borrow_mut()
                .product(&v)
                .expect("the loss has a gradient");
        })
    };
    gradient();
    product();
    Some([
        measure(
            name,
            "hessian_gradient",
            Report::Seconds,
            plan.repeats,
            gradient,
        ),
        measure(
            name,
            "hessian_vector_product",
            Report::Seconds,
            plan.repeats,
            product,
        ),
    ])
}

/// DSS between one fixed pair of endpoints at `level` (trained once, untimed), in seconds.
pub fn dss_end_to_end<L: Landscape<Train>>(
    name: &str,
    landscape: &L,
    config: &ExperimentConfig,
    level: f64,
    plan: Plan,
) -> anyhow::Result<Measurement> {
    let (sa, sb) = pair_seeds(plan.seed, 0);
    let a = flat_of(&train_endpoint(landscape, config, level, sa)?.model);
    let b = flat_of(&train_endpoint(landscape, config, level, sb)?.model);
    let dss = MethodName::Dss.method(config)?;
    let mut failure = None;
    let measurement = measure(
        name,
        "dss_end_to_end",
        Report::Seconds,
        plan.repeats,
        || {
            timed(1.0, || {
                let connected = connect_pair(landscape, &dss, a.clone(), b.clone(), level, sa);
                if let Err(e) = connected {
                    failure = Some(e);
                }
            })
        },
    );
    match failure {
        Some(e) => Err(e.context(format!("{name}: DSS at level {level}"))),
        None => Ok(measurement),
    }
}

/// The machine's float32 matmul rate on the compute backend (2048^2 by 2048^2), in GFLOP/s:
/// the ceiling the training-step rate is compared against.
pub fn matmul_peak(plan: Plan) -> Measurement {
    const N: usize = 2048;
    let distribution = burn::tensor::Distribution::Uniform(-1.0, 1.0);
    let a = Tensor::<Compute, 2>::random([N, N], distribution, &device());
    let b = Tensor::<Compute, 2>::random([N, N], distribution, &device());
    let run = || {
        timed(2.0 * (N as f64).powi(3), || {
            let c = a.clone().matmul(b.clone());
            let _ = c.slice([0..1, 0..1]).into_scalar();
        })
    };
    run();
    let report = Report::Rate {
        unit: "GFLOP/s",
        scale: 1e-9,
    };
    measure("machine", "matmul_peak", report, plan.repeats, run)
}

/// Forward floating-point operations (multiply-adds x 2) per example of the architectures
/// whose rates are compared against the matmul peak.
pub fn forward_flops(architecture: &Architecture) -> Option<f64> {
    match architecture {
        Architecture::MnistConv(c) => {
            let conv =
                |side: usize, c_in: usize, c_out: usize| (side * side * c_out * c_in * 25) as f64;
            let macs = conv(28, 1, c.conv1)
                + conv(14, c.conv1, c.conv2)
                + (7 * 7 * c.conv2 * c.hidden) as f64
                + (c.hidden * 10) as f64;
            Some(2.0 * macs)
        }
        _ => None,
    }
}

/// Achieved GFLOP/s of a throughput measurement (examples/s), given the floating-point
/// operations one example costs in that workload.
pub fn gflops(rate: &Measurement, workload: &str, flops_per_example: f64) -> Measurement {
    let to_gflops = |examples_per_s: f64| flops_per_example * examples_per_s / 1e9;
    Measurement {
        workload: workload.into(),
        unit: "GFLOP/s".into(),
        median: to_gflops(rate.median),
        min: to_gflops(rate.min),
        max: to_gflops(rate.max),
        samples: rate.samples.iter().map(|&s| to_gflops(s)).collect(),
        ..rate.clone()
    }
}
