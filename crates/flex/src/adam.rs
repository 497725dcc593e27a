//! Adam's update on flex in one pass over each parameter.
//!
//! Burn's Adam builds its update from about a dozen whole-tensor operations (scalings, sums,
//! a square, a square root, a division), each a pass over memory with a fresh output: for
//! the MNIST convnet's 3.3 million parameters, a tenth of a training step. Here one pass
//! reads the parameter, its gradient and both moments and writes their new values, with
//! Burn's operations in Burn's order, so the values are the same bit for bit (tested).

use burn::backend::Flex;
use burn::optim::{AdamState, AdaptiveMomentumState};
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{CHUNK, cast, values};

/// Adam's constants (Burn's `AdamConfig` keeps its own private).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConstants {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

/// A parameter, its gradient and its Adam state.
pub type AdamArgs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Option<AdamState<B, D>>);

/// A parameter and its Adam state after a step.
pub type AdamStep<B, const D: usize> = (Tensor<B, D>, Option<AdamState<B, D>>);

/// Adam's step of `args` when `B` is flex, the tensors are f32 and the state has no AMSGrad
/// maximum: the new parameter and state. Otherwise `args` back untouched.
pub fn try_adam_step<B: Backend, const D: usize>(
    hyper: &AdamConstants,
    lr: f64,
    args: AdamArgs<B, D>,
) -> Result<AdamStep<B, D>, AdamArgs<B, D>> {
    let amsgrad = matches!(&args.2, Some(s) if s.momentum.max_moment_2.is_some());
    if args.0.dtype() != DType::F32 || amsgrad {
        return Err(args);
    }
    let (tensor, grad, state) = cast::<AdamArgs<B, D>, AdamArgs<Flex, D>>(args)?;
    let shape = tensor.shape();
    let (time, moments) = match state {
        Some(state) => {
            let m = state.momentum;
            (m.time + 1, Some((m.moment_1, m.moment_2)))
        }
        None => (1, None),
    };
    let g = contiguous(grad.into_primitive().tensor());
    let mut p = contiguous(tensor.into_primitive().tensor());
    let first = moments.is_none();
    let (mut m, mut v) = match moments {
        Some((m, v)) => (
            contiguous(m.into_primitive().tensor()),
            contiguous(v.into_primitive().tensor()),
        ),
        None => (
            FlexTensor::zeros(shape.clone(), DType::F32),
            FlexTensor::zeros(shape.clone(), DType::F32),
        ),
    };
    let step = Step::new(hyper, lr, time);
    // In place: the parameter and moments are normally this step's only owners, and fresh
    // outputs had the calling thread zero them and fault in their pages alone, for almost as
    // long as the update itself took on the workers (MNIST convnet profile). Storage still
    // shared elsewhere is copied first.
    let (p1, m1, v1) = (
        p.storage_mut::<f32>(),
        m.storage_mut::<f32>(),
        v.storage_mut::<f32>(),
    );
    let update = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
        for k in 0..p.len() {
            let old = (!first).then(|| (m[k], v[k]));
            (p[k], m[k], v[k]) = step.apply(p[k], g[k], old);
        }
    };
    if p1.len() <= CHUNK {
        update(p1, m1, v1, values(&g));
    } else {
        p1.par_chunks_mut(CHUNK)
            .zip(m1.par_chunks_mut(CHUNK))
            .zip(v1.par_chunks_mut(CHUNK))
            .zip(values(&g).par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| update(p, m, v, g));
    }
    let tensor = |t: FlexTensor| Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(t));
    let momentum = AdaptiveMomentumState::new(time, tensor(m), tensor(v));
    let done = (tensor(p), Some(AdamState::new(momentum)));
    Ok(cast(done).unwrap_or_else(|_| unreachable!("B is Flex")))
}

/// `t` laid out contiguously over its whole buffer, as [`FlexTensor::storage_mut`] needs;
/// taking `t` by value drops the caller's handle, so the result owns its buffer alone unless
/// someone else holds it.
pub(super) fn contiguous(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// The scalars of step `time`, as Burn's Adam computes them (in f32).
struct Step {
    beta_1: f32,
    beta_2: f32,
    /// sqrt(1 - beta_2^t) / (1 - beta_1^t)
    combined_factor: f32,
    /// epsilon * sqrt(1 - beta_2^t)
    epsilon: f32,
    lr: f32,
}

impl Step {
    fn new(hyper: &AdamConstants, lr: f64, time: usize) -> Self {
        let time = time as i32;
        let bias_correction2_sqrt = (1.0 - hyper.beta_2.powi(time)).sqrt();
        Self {
            beta_1: hyper.beta_1,
            beta_2: hyper.beta_2,
            combined_factor: bias_correction2_sqrt / (1.0 - hyper.beta_1.powi(time)),
            epsilon: hyper.epsilon * bias_correction2_sqrt,
            lr: lr as f32,
        }
    }

    /// The new parameter and moments of one weight `p` with gradient `g` and moments `old`
    /// (none at the first step).
    fn apply(&self, p: f32, g: f32, old: Option<(f32, f32)>) -> (f32, f32, f32) {
        let (m, v) = match old {
            Some((m, v)) => (
                m * self.beta_1 + g * (1.0 - self.beta_1),
                v * self.beta_2 + g * g * (1.0 - self.beta_2),
            ),
            None => (g * (1.0 - self.beta_1), g * g * (1.0 - self.beta_2)),
        };
        let update = m * self.combined_factor / (v.sqrt() + self.epsilon);
        (p - update * self.lr, m, v)
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::{AdamConfig, SimpleOptimizer};
    use burn::tensor::Distribution;

    use super::*;

    /// Three steps of ours and Burn's Adam on a parameter of `dims`, compared bit for bit.
    fn check(dims: [usize; 2]) {
        let device = Default::default();
        let hyper = AdamConstants {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
        };
        let burns = AdamConfig::new()
            .with_beta_1(hyper.beta_1)
            .with_beta_2(hyper.beta_2)
            .with_epsilon(hyper.epsilon)
            .build();
        let ours = |p, g, s| {
            try_adam_step::<Flex, 2>(&hyper, 1e-3, (p, g, s))
                .unwrap_or_else(|_| panic!("flex's Adam applies to f32 tensors"))
        };
        let random = || Tensor::<Flex, 2>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let storage = |t: &Tensor<Flex, 2>| t.clone().into_primitive().tensor().bytes().as_ptr();
        let mut p_burn = random();
        // Shared with `p_burn` at the first step, which must be left untouched; owned alone
        // from then on, and updated in place.
        let mut p_ours = p_burn.clone();
        let (mut s_burn, mut s_ours) = (None, None);
        for step in 0..3 {
            let grad = random();
            let before = storage(&p_ours);
            (p_ours, s_ours) = ours(p_ours, grad.clone(), s_ours);
            assert_eq!(
                storage(&p_ours) == before,
                step > 0,
                "in place at step {step}"
            );
            (p_burn, s_burn) = burns.step(1e-3, p_burn, grad, s_burn);
            assert_eq!(
                p_ours.to_data(),
                p_burn.to_data(),
                "parameter at step {step}"
            );
            let ours = &s_ours.as_ref().expect("a state").momentum;
            let burns = &s_burn.as_ref().expect("a state").momentum;
            assert_eq!(ours.time, burns.time);
            assert_eq!(
                ours.moment_1.to_data(),
                burns.moment_1.to_data(),
                "first moment"
            );
            assert_eq!(
                ours.moment_2.to_data(),
                burns.moment_2.to_data(),
                "second moment"
            );
        }
    }

    #[test]
    fn steps_match_burns_adam_bit_for_bit_in_one_chunk() {
        check([3, 5]);
    }

    #[test]
    fn steps_match_burns_adam_bit_for_bit_in_parallel_chunks() {
        check([3, CHUNK]);
    }
}
