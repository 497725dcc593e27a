//! The optimizers the paper used, behind one config: Adam, and SGD with optional momentum,
//! global-norm gradient clipping and per-epoch learning-rate decay.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, GradientsParams, LearningRate, Optimizer, Sgd, SgdConfig,
    SgdState, SimpleOptimizer,
};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::landscape::cpu_backend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Adam {
        lr: f64,
    },
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: Option<f64>,
        /// Rescale the whole gradient when its global L2 norm exceeds this (TF's
        /// `clip_by_global_norm`, as Zaremba et al.).
        #[serde(default)]
        clip_global_norm: Option<f64>,
        /// Multiply the learning rate by `factor` each epoch after `after_epochs` epochs.
        #[serde(default)]
        decay: Option<LrDecay>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrDecay {
    pub after_epochs: usize,
    pub factor: f64,
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
        match self {
            OptimizerConfig::Adam { lr } => positive("lr", *lr),
            OptimizerConfig::Sgd {
                lr,
                momentum,
                clip_global_norm,
                decay,
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
                Ok(())
            }
        }
    }

    /// Learning rate during `epoch` (0-based).
    pub fn learning_rate(&self, epoch: usize) -> f64 {
        match self {
            OptimizerConfig::Adam { lr } => *lr,
            OptimizerConfig::Sgd { lr, decay, .. } => match decay {
                Some(d) if epoch >= d.after_epochs => {
                    lr * d.factor.powi((epoch + 1 - d.after_epochs) as i32)
                }
                _ => *lr,
            },
        }
    }

    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> AnyOptimizer<B, M> {
        match self {
            OptimizerConfig::Adam { .. } => AnyOptimizer::Adam(FusedAdam::default().into()),
            OptimizerConfig::Sgd {
                momentum,
                clip_global_norm,
                ..
            } => {
                let momentum = momentum.map(|momentum| MomentumConfig {
                    momentum,
                    dampening: 0.0,
                    nesterov: false,
                });
                let plain = momentum.is_none();
                let burns = SgdConfig::new().with_momentum(momentum).build();
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
/// `try_adam_step`), with the same values and state.
#[derive(Clone)]
pub struct FusedAdam {
    hyper: AdamHyper,
    burns: Adam,
}

impl AdamHyper {
    /// `[beta_1, beta_2, epsilon]`, as the flex kernel takes them.
    fn constants(&self) -> [f32; 3] {
        [self.beta_1, self.beta_2, self.epsilon]
    }

    /// Burn's Adam with these constants.
    pub(crate) fn burns(&self) -> Adam {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .build()
    }
}

impl Default for FusedAdam {
    fn default() -> Self {
        let hyper = AdamHyper::default();
        Self {
            hyper,
            burns: hyper.burns(),
        }
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

/// Burn's SGD, whose update without momentum flex computes in place in one pass
/// (levelset-flex's `try_sgd_step`), with the same values and state.
#[derive(Clone)]
pub struct FusedSgd<B: Backend> {
    burns: Sgd<B>,
    /// Without momentum.
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
