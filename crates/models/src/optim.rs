//! The optimizers the paper used, behind one config: Adam, and SGD with optional momentum,
//! global-norm gradient clipping and per-epoch learning-rate decay; and what CIFAR ResNets
//! train with besides: weight decay and per-step learning-rate schedules over the run.

use std::f64::consts::PI;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, GradientsParams, LearningRate, Optimizer, Sgd, SgdConfig,
    SgdState, SimpleOptimizer,
};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::landscape::cpu_backend;

/// `[train.optimizer]` (and the path methods' `optimizer`): `kind = "adam"` or `"sgd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Adam {
        lr: f64,
        /// L2 weight decay as PyTorch's `Adam(weight_decay=...)`: `grad += weight_decay *
        /// param` for every parameter before the update (not AdamW's decoupled decay).
        /// Finite and >= 0; absent or 0: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight_decay: Option<f64>,
    },
    Sgd {
        lr: f64,
        /// Heavy-ball momentum with dampening 0, as PyTorch's `SGD(momentum=...)`.
        #[serde(default)]
        momentum: Option<f64>,
        /// Rescale the whole gradient when its global L2 norm exceeds this (TF's
        /// `clip_by_global_norm`, as Zaremba et al.).
        #[serde(default)]
        clip_global_norm: Option<f64>,
        /// Multiply the learning rate by `factor` each epoch after `after_epochs` epochs.
        #[serde(default)]
        decay: Option<LrDecay>,
        /// Weight decay as PyTorch's `SGD(weight_decay=...)`: `grad += weight_decay * param`
        /// for every parameter that has a gradient, after clipping and before momentum
        /// (He et al.'s CIFAR ResNets: 1e-4). Finite and >= 0; absent or 0: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight_decay: Option<f64>,
        /// A learning rate that changes every step over `train.max_steps`:
        /// `{ kind = "step", at = [0.5, 0.75], factor = 0.1 }` or `{ kind = "cosine" }`
        /// ([`RateSchedule`]). Not together with `decay`, which changes it per epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<RateSchedule>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrDecay {
    pub after_epochs: usize,
    pub factor: f64,
}

/// SGD's learning rate as a function of the step, over a run of `train.max_steps` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RateSchedule {
    /// `lr` multiplied by `factor` at each milestone: from step `round(a * max_steps)` on
    /// (0-based) for each fraction `a` of `at` (He et al.'s ResNets: `at = [0.5, 0.75]`,
    /// `factor = 0.1`, their 32k and 48k of 64k iterations scaled to the run). `at` strictly
    /// increasing in (0, 1), `factor` > 0.
    Step { at: Vec<f64>, factor: f64 },
    /// Cosine annealing from `lr` to 0 over the run, as PyTorch's `CosineAnnealingLR` with
    /// `T_max = max_steps` stepped every iteration: `lr * (1 + cos(pi * step / max_steps)) / 2`.
    /// A variant with braces, so that a stray key (`at`) is an error as in the others.
    Cosine {},
}

impl RateSchedule {
    fn validate(&self) -> Result<(), String> {
        match self {
            RateSchedule::Step { at, factor } => {
                let increasing = at.windows(2).all(|w| w[0] < w[1]);
                let inside = at.iter().all(|a| *a > 0.0 && *a < 1.0);
                if at.is_empty() || !increasing || !inside {
                    return Err(format!(
                        "schedule.at must list fractions of train.max_steps, strictly \
                         increasing, each in (0, 1), got {at:?}"
                    ));
                }
                if !(factor.is_finite() && *factor > 0.0) {
                    return Err(format!(
                        "schedule.factor must be a positive number, got {factor}"
                    ));
                }
                Ok(())
            }
            RateSchedule::Cosine {} => Ok(()),
        }
    }

    /// What multiplies the base rate at `step` (0-based) of a run of `max_steps` steps.
    pub fn factor(&self, step: usize, max_steps: usize) -> f64 {
        match self {
            RateSchedule::Step { at, factor } => {
                let passed = at
                    .iter()
                    .filter(|a| step as f64 >= (*a * max_steps as f64).round())
                    .count();
                factor.powi(passed as i32)
            }
            RateSchedule::Cosine {} => {
                let progress = step.min(max_steps) as f64 / max_steps.max(1) as f64;
                0.5 * (1.0 + (PI * progress).cos())
            }
        }
    }
}

/// Burn's weight decay for a configured one; none for 0.
fn weight_decay_config(weight_decay: Option<f64>) -> Option<WeightDecayConfig> {
    weight_decay
        .filter(|w| *w > 0.0)
        .map(|w| WeightDecayConfig { penalty: w as f32 })
}

impl OptimizerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number, got {v}"))
            }
        };
        let weight_decay = |w: &Option<f64>| match w {
            Some(w) if !(w.is_finite() && *w >= 0.0) => Err(format!(
                "weight_decay must be a finite number >= 0, got {w}"
            )),
            _ => Ok(()),
        };
        match self {
            OptimizerConfig::Adam {
                lr,
                weight_decay: decay,
            } => {
                positive("lr", *lr)?;
                weight_decay(decay)
            }
            OptimizerConfig::Sgd {
                lr,
                momentum,
                clip_global_norm,
                decay,
                weight_decay: penalty,
                schedule,
            } => {
                positive("lr", *lr)?;
                if let Some(m) = momentum
                    && !(0.0..1.0).contains(m)
                {
                    return Err(format!("momentum must be in [0, 1), got {m}"));
                }
                if let Some(c) = clip_global_norm {
                    positive("clip_global_norm", *c)?;
                }
                if let Some(d) = decay {
                    positive("decay.factor", d.factor)?;
                }
                weight_decay(penalty)?;
                if let Some(schedule) = schedule {
                    if decay.is_some() {
                        return Err("decay and schedule both set the learning rate (decay per \
                                    epoch, schedule per step); keep one"
                            .into());
                    }
                    schedule.validate()?;
                }
                Ok(())
            }
        }
    }

    /// Learning rate during `epoch` (0-based) under `decay`; under a `schedule`, which changes
    /// it per step, the base rate `lr` ([`OptimizerConfig::learning_rate_at`] gives the
    /// step's).
    pub fn learning_rate(&self, epoch: usize) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. } => *lr,
            OptimizerConfig::Sgd { lr, decay, .. } => match decay {
                Some(d) if epoch >= d.after_epochs => {
                    lr * d.factor.powi((epoch + 1 - d.after_epochs) as i32)
                }
                _ => *lr,
            },
        }
    }

    /// Learning rate of the step with index `step` (0-based) of a run of `max_steps` steps,
    /// taken during `epoch`: the schedule's where there is one, else
    /// [`OptimizerConfig::learning_rate`] of the epoch.
    pub fn learning_rate_at(&self, step: usize, max_steps: usize, epoch: usize) -> f64 {
        match self {
            OptimizerConfig::Sgd {
                lr,
                schedule: Some(schedule),
                ..
            } => lr * schedule.factor(step, max_steps),
            _ => self.learning_rate(epoch),
        }
    }

    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> AnyOptimizer<B, M> {
        match self {
            OptimizerConfig::Adam { weight_decay, .. } => {
                AnyOptimizer::Adam(FusedAdam::new(weight_decay_config(*weight_decay)).into())
            }
            OptimizerConfig::Sgd {
                momentum,
                clip_global_norm,
                weight_decay,
                ..
            } => {
                let momentum = momentum.map(|momentum| MomentumConfig {
                    momentum,
                    dampening: 0.0,
                    nesterov: false,
                });
                let weight_decay = weight_decay_config(*weight_decay);
                // The in-place kernel computes `param - lr * grad` alone.
                let plain = momentum.is_none() && weight_decay.is_none();
                let burns = SgdConfig::new()
                    .with_momentum(momentum)
                    .with_weight_decay(weight_decay)
                    .build();
                AnyOptimizer::Sgd {
                    inner: FusedSgd { burns, plain }.into(),
                    clip_global_norm: *clip_global_norm,
                }
            }
        }
    }
}

pub enum AnyOptimizer<B: AutodiffBackend, M: AutodiffModule<B>> {
    Adam(OptimizerAdaptor<FusedAdam, M, B>),
    Sgd {
        inner: OptimizerAdaptor<FusedSgd<B::InnerBackend>, M, B>,
        clip_global_norm: Option<f64>,
    },
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> AnyOptimizer<B, M> {
    pub fn step(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        match self {
            AnyOptimizer::Adam(opt) => opt.step(lr, module, grads),
            AnyOptimizer::Sgd {
                inner,
                clip_global_norm,
            } => {
                if let Some(max_norm) = clip_global_norm {
                    let on_cpu = cpu_backend::<B::InnerBackend>;
                    clip_by_global_norm::<B, M>(&module, &mut grads, *max_norm, on_cpu);
                }
                inner.step(lr, module, grads)
            }
        }
    }
}

/// Adam's constants: TensorFlow's defaults, which the paper's code ran with (Burn's epsilon
/// is 1e-5).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamHyper {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Default for AdamHyper {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// Burn's Adam, whose update flex computes in one pass per parameter (levelset-flex's
/// `try_adam_step`), with the same values and state. The kernel has no weight decay, so a
/// decaying Adam runs Burn's step.
#[derive(Clone)]
pub struct FusedAdam {
    hyper: AdamHyper,
    burns: Adam,
    /// Whether the flex kernel computes the step (no weight decay).
    fused: bool,
}

impl AdamHyper {
    /// `[beta_1, beta_2, epsilon]`, as the flex kernel takes them.
    fn constants(&self) -> [f32; 3] {
        [self.beta_1, self.beta_2, self.epsilon]
    }

    /// Burn's Adam with these constants.
    fn config(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
    }
}

impl FusedAdam {
    fn new(weight_decay: Option<WeightDecayConfig>) -> Self {
        let hyper = AdamHyper::default();
        Self {
            hyper,
            fused: weight_decay.is_none(),
            burns: hyper.config().with_weight_decay(weight_decay).build(),
        }
    }
}

impl Default for FusedAdam {
    fn default() -> Self {
        Self::new(None)
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let args = (tensor, grad, state);
        if !self.fused {
            let (tensor, grad, state) = args;
            return self.burns.step(lr, tensor, grad, state);
        }
        let args = match crate::kernels::try_adam_step(self.hyper.constants(), lr, args) {
            Ok(done) => return done,
            Err(args) => args,
        };
        let (tensor, grad, state) = args;
        self.burns.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <Adam as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// Burn's SGD, whose update without momentum and weight decay flex computes in place in one
/// pass (levelset-flex's `try_sgd_step`), with the same values and state; with either, Burn's
/// step runs.
#[derive(Clone)]
pub struct FusedSgd<B: Backend> {
    burns: Sgd<B>,
    /// Without momentum and weight decay: the step is `param - lr * grad`.
    plain: bool,
}

impl<B: Backend> SimpleOptimizer<B> for FusedSgd<B> {
    type State<const D: usize> = SgdState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let (tensor, grad) = if self.plain {
            match crate::kernels::try_sgd_step(lr, (tensor, grad)) {
                Ok(tensor) => return (tensor, Some(SgdState::new(None))),
                Err(args) => args,
            }
        } else {
            (tensor, grad)
        };
        self.burns.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <Sgd<B> as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// Scales every gradient by `max_norm / global_norm` when the global norm is larger.
///
/// Where the gradients live on the CPU (`on_cpu` of their device), the norm is read back and
/// the factor computed in f64, which costs nothing there. On the GPU backends reading it back
/// would make every step wait for the device to drain its queue before the next step's
/// kernels are issued, so the factor `min(1, max_norm / norm)` stays on the device and scales
/// every gradient (by exactly 1 when the norm is within bounds).
fn clip_by_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
    on_cpu: impl FnOnce(&Device<B::InnerBackend>) -> bool,
) {
    let mut norm = GlobalNorm::<B> {
        grads,
        squares: None,
    };
    module.visit(&mut norm);
    let Some(squares) = norm.squares else { return };
    let factor = if on_cpu(&squares.device()) {
        let global = squares.into_scalar().elem::<f64>().sqrt();
        if global <= max_norm {
            return;
        }
        Factor::Host(max_norm / global)
    } else {
        Factor::Device(squares.sqrt().recip().mul_scalar(max_norm).clamp_max(1.0))
    };
    module.visit(&mut ScaleGrads::<B> { grads, factor });
}

struct GlobalNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    squares: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GlobalNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = square_sum(g);
            self.squares = Some(match self.squares.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// The sum of the squares of `x`'s values.
fn square_sum<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, 1> {
    let x = match crate::kernels::try_square_sum(x) {
        Ok(sum) => return sum,
        Err(x) => x,
    };
    x.powi_scalar(2).sum()
}

/// The clipping factor: a number on the host, or a one-element tensor on the device.
enum Factor<B: Backend> {
    Host(f64),
    Device(Tensor<B, 1>),
}

struct ScaleGrads<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    factor: Factor<B::InnerBackend>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let scaled = match &self.factor {
                Factor::Host(factor) => g.mul_scalar(*factor),
                Factor::Device(factor) => g * factor.clone().reshape([1; D]),
            };
            self.grads.register(param.id, scaled);
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    type Train = Autodiff<Flex>;

    /// The gradients of a small layer's loss, scaled up by `scale`.
    fn gradients(layer: &Linear<Train>, scale: f32) -> GradientsParams {
        let device = Default::default();
        let x = Tensor::<Train, 2>::from_floats([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]], &device);
        let loss = layer.forward(x).sum().mul_scalar(scale);
        GradientsParams::from_grads(loss.backward(), layer)
    }

    fn values(layer: &Linear<Train>, grads: &GradientsParams) -> Vec<f32> {
        let weight = grads
            .get::<Flex, 2>(layer.weight.id)
            .expect("a weight gradient");
        let bias = grads
            .get::<Flex, 1>(layer.bias.as_ref().expect("a bias").id)
            .expect("a bias gradient");
        let mut values = weight.into_data().to_vec::<f32>().expect("f32");
        values.extend(bias.into_data().to_vec::<f32>().expect("f32"));
        values
    }

    /// The layer's parameters, weight then bias, as `values` orders gradients.
    fn params(layer: &Linear<Train>) -> Vec<f32> {
        let mut values = layer.weight.val().into_data().to_vec::<f32>().expect("f32");
        let bias = layer.bias.as_ref().expect("a bias").val();
        values.extend(bias.into_data().to_vec::<f32>().expect("f32"));
        values
    }

    fn sgd(momentum: Option<f64>, weight_decay: Option<f64>) -> OptimizerConfig {
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum,
            clip_global_norm: None,
            decay: None,
            weight_decay,
            schedule: None,
        }
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{what}: {g} against {w}"
            );
        }
    }

    /// PyTorch's SGD by hand, in f64: `d = g + wd * p`, `v = m * v + d` (`v = d` on the
    /// first step), `p -= lr * v`. The layer's loss is linear in its parameters, so every
    /// step's gradient is the same `g`.
    fn sgd_by_hand(p: &[f32], g: &[f32], momentum: f64, wd: f64, steps: usize) -> Vec<f64> {
        let mut p: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
        let mut v: Vec<f64> = vec![];
        for _ in 0..steps {
            let d: Vec<f64> = p
                .iter()
                .zip(g)
                .map(|(p, g)| f64::from(*g) + wd * p)
                .collect();
            v = if v.is_empty() {
                d
            } else {
                v.iter().zip(&d).map(|(v, d)| momentum * v + d).collect()
            };
            p.iter_mut().zip(&v).for_each(|(p, v)| *p -= 0.1 * v);
        }
        p
    }

    /// Weight decay adds `weight_decay * param` to every gradient, with and without momentum;
    /// without either, the fused in-place step runs and gives plain SGD's values.
    #[test]
    fn sgd_weight_decay_is_pytorchs() {
        let layer = LinearConfig::new(3, 2).init::<Train>(&Default::default());
        let p0 = params(&layer);
        let g = values(&layer, &gradients(&layer, 1.0));
        for (momentum, wd) in [(None, None), (None, Some(0.05)), (Some(0.9), Some(0.05))] {
            let mut opt = sgd(momentum, wd).init::<Train, Linear<Train>>();
            let mut stepped = layer.clone();
            for steps in 1..=3 {
                stepped = opt.step(0.1, stepped.clone(), gradients(&stepped, 1.0));
                let want = sgd_by_hand(&p0, &g, momentum.unwrap_or(0.0), wd.unwrap_or(0.0), steps);
                assert_close(
                    &params(&stepped),
                    &want,
                    &format!("{momentum:?} {wd:?} {steps}"),
                );
            }
        }
        // A decay of 0 is no decay (and runs the fused step).
        let mut zero = sgd(None, Some(0.0)).init::<Train, Linear<Train>>();
        let stepped = zero.step(0.1, layer.clone(), gradients(&layer, 1.0));
        assert_close(
            &params(&stepped),
            &sgd_by_hand(&p0, &g, 0.0, 0.0, 1),
            "zero",
        );
    }

    /// On a parameter large enough for the flex kernel's parallel chunks: without decay the
    /// fused step and Burn's agree bit for bit; with decay the fused optimizer gives Burn's
    /// decayed step, bit for bit, and the hand computation.
    #[test]
    fn fused_sgd_applies_weight_decay_as_burns() {
        use burn::tensor::Distribution;
        let device = Default::default();
        // Past three of the kernel's parallel chunks (1 << 14 values each).
        let len = 3 * (1 << 14) + 5;
        let random = || Tensor::<Flex, 1>::random([len], Distribution::Normal(0.0, 1.0), &device);
        let (p, g) = (random(), random());
        for wd in [None, Some(1e-2)] {
            let decay = weight_decay_config(wd);
            let burns = SgdConfig::new()
                .with_weight_decay(decay.clone())
                .build::<Flex>();
            let fused = FusedSgd {
                burns: burns.clone(),
                plain: decay.is_none(),
            };
            let (theirs, _) = burns.step(0.37, p.clone(), g.clone(), None);
            let (ours, _) = fused.step(0.37, p.clone(), g.clone(), None);
            let ours = ours.into_data().to_vec::<f32>().unwrap();
            assert_eq!(ours, theirs.into_data().to_vec::<f32>().unwrap());
            let (pv, gv) = (
                p.clone().into_data().to_vec::<f32>().unwrap(),
                g.clone().into_data().to_vec::<f32>().unwrap(),
            );
            let want: Vec<f64> = pv
                .iter()
                .zip(&gv)
                .map(|(p, g)| {
                    let (p, g) = (f64::from(*p), f64::from(*g));
                    p - 0.37 * (g + wd.unwrap_or(0.0) * p)
                })
                .collect();
            assert_close(&ours, &want, &format!("{wd:?}"));
        }
    }

    /// Adam's weight decay is PyTorch's L2 term: the first step moves each parameter by
    /// `lr * d / (|d| + epsilon)` with `d = g + wd * p`. A decay large enough that `d` takes
    /// the parameter's sign shows it is applied (the flex kernel has none).
    #[test]
    fn adam_weight_decay_is_pytorchs() {
        let layer = LinearConfig::new(3, 2).init::<Train>(&Default::default());
        let p0 = params(&layer);
        let g = values(&layer, &gradients(&layer, 1.0));
        for wd in [None, Some(1e3)] {
            let config = OptimizerConfig::Adam {
                lr: 0.01,
                weight_decay: wd,
            };
            let mut opt = config.init::<Train, Linear<Train>>();
            let stepped = opt.step(0.01, layer.clone(), gradients(&layer, 1.0));
            let want: Vec<f64> = p0
                .iter()
                .zip(&g)
                .map(|(p, g)| {
                    let (p, g) = (f64::from(*p), f64::from(*g));
                    let d = g + wd.unwrap_or(0.0) * p;
                    p - 0.01 * d / (d.abs() + 1e-8)
                })
                .collect();
            assert_close(&params(&stepped), &want, &format!("{wd:?}"));
        }
    }

    /// Clipping with the factor on the device gives the host's gradients: the same within
    /// f32 rounding when it clips, exactly the same when the norm is within bounds.
    #[test]
    fn the_device_factor_clips_as_the_host_factor() {
        let layer = LinearConfig::new(3, 2).init::<Train>(&Default::default());
        for (scale, max_norm) in [(10.0, 1.0), (1.0, 1e6)] {
            let clipped = |on_device: bool| {
                let mut grads = gradients(&layer, scale);
                clip_by_global_norm::<Train, _>(&layer, &mut grads, max_norm, |_| !on_device);
                values(&layer, &grads)
            };
            let (host, device) = (clipped(false), clipped(true));
            let norm = host.iter().map(|g| g * g).sum::<f32>().sqrt();
            if max_norm < 1e3 {
                assert!((norm - 1.0).abs() < 1e-5, "clipped to the bound: {norm}");
                for (h, d) in host.iter().zip(&device) {
                    assert!((h - d).abs() <= 1e-6 * h.abs().max(1.0), "{h} against {d}");
                }
            } else {
                assert_eq!(host, values(&layer, &gradients(&layer, scale)), "untouched");
                assert_eq!(device, host, "multiplied by exactly 1");
            }
        }
    }
}
