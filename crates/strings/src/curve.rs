//! Bezier and polychain curves (Garipov et al. 2018): the endpoints are fixed, the control
//! points between them are trained together by minimising the expected loss at a random point
//! of the curve, `E_{t ~ U(0,1)} F(θ(t))`, with autodiff through the flat parameter vector.
//!
//! A curve is its coefficients: `θ(t) = Σ_k w_k(t) c_k` over the endpoints and the control
//! points, so the networks run unchanged at every point.
//!
//! The resulting [`ModelPath`]'s beads are the curve at `eval_points` evenly spaced values of `t`
//! (endpoints included, exactly), so its length is measured along that dense sampling and its
//! bead energies are the energy profile along `t`. The curve is certified on those samples
//! only: each segment between two samples reports the higher of its two ends (`grid` 1, no
//! check point inside).

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use levelset_models::Landscape;
use levelset_models::flat::unflatten;
use levelset_models::heartbeat::Heartbeat;
use levelset_models::landscape::cpu_backend;
use levelset_models::optim::OptimizerConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batches::{finite_losses, for_each_batch, reads_loss};
use crate::endpoints::{ConnectError, prepare, validate_slack};
use crate::knots::Knots;
use crate::path::{LengthOver, ModelPath, PathReport, SegmentCheck, Status};
use crate::report::verdict;
use crate::schedule::{LrSchedule, validate_optimizer};
use crate::sizes::{MAX_COUNT, at_most};

/// The ChaCha stream `t` is drawn from; stream 0 initializes the control points.
const T_STREAM: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurveKind {
    /// A Bezier curve of degree `bends + 1`.
    Bezier,
    /// Straight pieces through the control points, which sit at `t = k / (bends + 1)`.
    Polychain,
}

impl CurveKind {
    pub fn name(self) -> &'static str {
        match self {
            CurveKind::Bezier => "bezier",
            CurveKind::Polychain => "polychain",
        }
    }

    /// The weights of the first endpoint, the `bends` control points and the last endpoint
    /// (in path order) at `t` in [0, 1]. They sum to 1.
    pub fn coefficients(self, bends: usize, t: f64) -> Vec<f64> {
        let degree = bends + 1;
        let t = t.clamp(0.0, 1.0);
        match self {
            CurveKind::Bezier => (0..=degree)
                .map(|k| {
                    binomial(degree, k) * t.powi(k as i32) * (1.0 - t).powi((degree - k) as i32)
                })
                .collect(),
            CurveKind::Polychain => {
                let x = t * degree as f64;
                let piece = (x.floor() as usize).min(degree - 1);
                let s = x - piece as f64;
                let mut w = vec![0.0; degree + 1];
                w[piece] = 1.0 - s;
                w[piece + 1] = s;
                w
            }
        }
    }
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// A curve between two fixed endpoints through `controls` (one control point per row).
#[derive(Debug, Clone)]
pub struct Curve<B: Backend> {
    pub kind: CurveKind,
    pub first: Tensor<B, 1>,
    pub controls: Tensor<B, 2>,
    pub last: Tensor<B, 1>,
}

impl<B: Backend> Curve<B> {
    /// The point at `t`; differentiable with respect to the endpoints and control points.
    pub fn point(&self, t: f64) -> Tensor<B, 1> {
        let [_, n] = self.controls.dims();
        self.points(&[t]).reshape([n])
    }

    /// The points at every `t`, one row each: [ts.len(), n].
    pub fn points(&self, ts: &[f64]) -> Tensor<B, 2> {
        let [bends, _] = self.controls.dims();
        let device = self.controls.device();
        let coefficients: Vec<Vec<f64>> = ts
            .iter()
            .map(|&t| self.kind.coefficients(bends, t))
            .collect();
        let columns = |from: usize, to: usize| {
            let values: Vec<f64> = coefficients
                .iter()
                .flat_map(|w| w[from..to].iter().copied())
                .collect();
            Tensor::<B, 2>::from_data(TensorData::new(values, [ts.len(), to - from]), &device)
        };
        let w_first = columns(0, 1); // [k, 1]
        let w_inner = columns(1, bends + 1); // [k, bends]
        let w_last = columns(bends + 1, bends + 2); // [k, 1]
        self.first.clone().unsqueeze::<2>() * w_first
            + w_inner.matmul(self.controls.clone())
            + self.last.clone().unsqueeze::<2>() * w_last
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveConfig {
    pub kind: CurveKind,
    /// Trainable control points between the endpoints (Garipov et al. use 1: a quadratic
    /// Bezier curve, a two-piece polychain).
    pub bends: usize,
    /// Optimizer steps, one training batch each.
    pub steps: usize,
    /// Values of `t` drawn per step; their losses on the step's batch are averaged.
    #[serde(default = "one")]
    pub t_per_step: usize,
    pub optimizer: OptimizerConfig,
    /// Scales the optimizer's rate over the steps (default: Garipov et al.'s).
    #[serde(default = "LrSchedule::garipov")]
    pub schedule: LrSchedule,
    /// Points of `t` the trained curve is evaluated at, endpoints included.
    #[serde(default = "garipov_points")]
    pub eval_points: usize,
    /// Control points start on the straight line, moved by Gaussian noise of this expected
    /// norm relative to the endpoint distance.
    #[serde(default)]
    pub init_noise: f64,
    /// The curve is connected when every sample is at most `slack * level`.
    pub slack: f64,
    #[serde(default)]
    pub length_over: LengthOver,
}

fn one() -> usize {
    1
}

fn garipov_points() -> usize {
    61
}

impl CurveConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.bends == 0 {
            return Err("curve.bends must be at least 1".into());
        }
        if self.t_per_step == 0 {
            return Err("curve.t_per_step must be at least 1".into());
        }
        at_most("curve.bends", self.bends, MAX_COUNT)?;
        at_most("curve.t_per_step", self.t_per_step, MAX_COUNT)?;
        at_most("curve.eval_points", self.eval_points, MAX_COUNT)?;
        validate_optimizer(&self.optimizer, "curve")?;
        self.schedule.validate("curve.schedule")?;
        if self.eval_points < 3 {
            return Err(format!(
                "curve.eval_points must be at least 3, got {}",
                self.eval_points
            ));
        }
        if !(self.init_noise >= 0.0 && self.init_noise.is_finite()) {
            return Err(format!(
                "curve.init_noise must be >= 0, got {}",
                self.init_noise
            ));
        }
        validate_slack("curve", self.slack)
    }
}

/// Trains a curve from `a` to `b` and evaluates it against `{energy <= level}`.
///
/// An invalid config and endpoint problems are errors, as for DSS; a training loss that stops
/// being finite ends the path with [`Status::Failed`].
pub fn connect_curve<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    a: Tensor<B::InnerBackend, 1>,
    b: Tensor<B::InnerBackend, 1>,
    level: f64,
    config: &CurveConfig,
    seed: u64,
    progress: &ProgressBar,
) -> Result<(ModelPath<B::InnerBackend>, PathReport), ConnectError> {
    let points = config.eval_points;
    let setup = prepare(
        landscape,
        config.validate(),
        &a,
        &b,
        level,
        config.slack,
        points - 1,
    )?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let first = Tensor::<B, 1>::from_inner(a.clone());
    let last = Tensor::<B, 1>::from_inner(b.clone());
    let mut knots = Knots::on_segment(&first, &last, config.bends, config.init_noise, &mut rng);
    let (steps, trained) = train(landscape, &mut knots, [first, last], config, seed, progress);

    let curve = Curve {
        kind: config.kind,
        first: a.clone(),
        controls: knots.valid().points.val(),
        last: b.clone(),
    };
    let ts: Vec<f64> = (1..points - 1)
        .map(|k| k as f64 / (points - 1) as f64)
        .collect();
    let inner = curve.points(&ts);
    let mut bead_energies = vec![setup.ends[0]];
    bead_energies.extend(setup.evaluator.energies(inner.clone()));
    bead_energies.push(setup.ends[1]);
    let mut beads = vec![a];
    beads.extend(inner.iter_dim(0).map(|row| row.squeeze_dim::<1>(0)));
    beads.push(b);
    let segments: Vec<SegmentCheck> = bead_energies
        .windows(2)
        .map(|e| sample_segment(e[0], e[1], setup.limit))
        .collect();
    let status = match trained {
        Ok(()) => verdict(&bead_energies, &segments, setup.limit),
        Err(reason) => Status::Failed { reason },
    };
    let mut bends = vec![curve.first.clone()];
    bends.extend(
        curve
            .controls
            .iter_dim(0)
            .map(|row| row.squeeze_dim::<1>(0)),
    );
    bends.push(curve.last.clone());
    let path = ModelPath {
        beads,
        bead_energies,
        segments,
        status,
        bends,
    };
    let report = setup.report(&path, config.kind.name(), config.length_over, 1, steps);
    Ok((path, report))
}

/// Runs the optimizer on the control points; returns the steps taken and, when it stopped
/// early, why.
fn train<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    knots: &mut Knots<B>,
    [first, last]: [Tensor<B, 1>; 2],
    config: &CurveConfig,
    seed: u64,
    progress: &ProgressBar,
) -> (usize, Result<(), String>) {
    let base_lr = config.optimizer.learning_rate(0);
    let template = landscape.init(0);
    let mut optimizer = config.optimizer.init::<B, Knots<B>>();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(T_STREAM);
    progress.set_length(config.steps as u64);
    progress.set_position(0);
    let mut heartbeat = Heartbeat::default();
    let mut taken = 0;
    let on_cpu = cpu_backend::<B::InnerBackend>(&first.device());
    let outcome = for_each_batch(landscape, seed, config.steps, |step, batch, carry| {
        let curve = Curve {
            kind: config.kind,
            first: first.clone(),
            controls: knots.points.val(),
            last: last.clone(),
        };
        let losses = (0..config.t_per_step)
            .map(|_| {
                let model = unflatten(template.clone(), curve.point(rng.random::<f64>()));
                landscape.loss(&model, batch.clone(), carry)
            })
            .collect();
        let loss = Tensor::cat(losses, 0).mean();
        let value = if reads_loss(on_cpu, step, config.steps) {
            Some(finite_losses(loss.clone(), step)?[0])
        } else {
            None
        };
        let grads = GradientsParams::from_grads(loss.backward(), &*knots);
        let lr = base_lr * config.schedule.factor(step as f64 / config.steps as f64);
        *knots = optimizer.step(lr, knots.clone(), grads);
        taken = step + 1;
        progress.set_position(taken as u64);
        let Some(value) = value else {
            return Ok(());
        };
        progress.set_message(format!("{} loss {value:.5}", config.kind.name()));
        if heartbeat.due() {
            tracing::info!(
                curve = config.kind.name(),
                step = taken,
                loss = value,
                "training"
            );
        }
        Ok(())
    });
    (taken, outcome)
}

/// A segment between two neighbouring samples of a curve: it holds no check point of its
/// own, so it reports the higher end.
fn sample_segment(left: f64, right: f64, limit: f64) -> SegmentCheck {
    let worst = |e: f64| if e.is_nan() { f64::INFINITY } else { e };
    let (left, right) = (worst(left), worst(right));
    SegmentCheck {
        max_energy: left.max(right),
        argmax_t: if right > left { 1.0 } else { 0.0 },
        passed: left.max(right) <= limit,
        depth: 0,
    }
}
