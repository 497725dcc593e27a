//! Sigmoid on flex, eight lanes at a time.
//!
//! flex computes sigmoid one element at a time through libm's `expf`: two thirds of the
//! polynomial net's evaluation time in a profile. Here `wide`'s vectorized exp does it; its
//! values differ from libm's in the last bits (the tests bound by how much).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::ops::ActivationOps;
use burn::tensor::{TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;
use wide::f32x8;

use super::{CHUNK, try_unary, values};

/// `sigmoid(x)` when `B` is flex, with or without autodiff, and `x` is f32; otherwise `x`
/// back untouched.
pub fn try_sigmoid<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    try_unary(x, SigmoidBackward, |x| {
        let y = sigmoid(x);
        (y.clone(), y)
    })
}

#[derive(Debug)]
struct SigmoidBackward;

impl Backward<Flex, 1> for SigmoidBackward {
    /// The output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            grads.register::<Flex>(node.id, Flex::sigmoid_backward(ops.state, grad));
        }
    }
}

fn sigmoid(x: &FlexTensor) -> FlexTensor {
    let x = x.to_contiguous();
    let mut ys = values(&x).to_vec();
    if ys.len() <= CHUNK {
        map_lanes(&mut ys, sigmoid8);
    } else {
        ys.par_chunks_mut(CHUNK)
            .for_each(|ys| map_lanes(ys, sigmoid8));
    }
    FlexTensor::from_data(TensorData::new(ys, x.shape()))
}

/// `values` mapped in place by `f`, eight lanes at a time.
pub(super) fn map_lanes(values: &mut [f32], f: impl Fn(f32x8) -> f32x8) {
    let (lanes, tail) = values.as_chunks_mut::<8>();
    for x in lanes {
        *x = f(f32x8::from(*x)).to_array();
    }
    // The tail goes through the same lanes, so every element gets the same arithmetic.
    let mut last = [0f32; 8];
    last[..tail.len()].copy_from_slice(tail);
    let n = tail.len();
    tail.copy_from_slice(&f(f32x8::from(last)).to_array()[..n]);
}

pub(super) fn sigmoid8(x: f32x8) -> f32x8 {
    // wide's exp saturates to infinity and zero and keeps NaN, so the extremes need no care.
    f32x8::ONE / (f32x8::ONE + (-x).exp())
}

/// tanh(x) = 2 sigmoid(2x) - 1: within 2e-7 of tanh over [-20, 20] (tested), which near
/// zero is large relative to x but negligible against the LSTM's other terms.
pub(super) fn tanh8(x: f32x8) -> f32x8 {
    let two = f32x8::splat(2.0);
    two * sigmoid8(two * x) - f32x8::ONE
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::super::FlexTrain;
    use super::*;

    fn reference(x: f32) -> f32 {
        (1.0 / (1.0 + (-f64::from(x)).exp())) as f32
    }

    #[test]
    fn values_match_the_logistic_function_at_every_length() {
        // Lengths around the 8 lanes and past one parallel chunk.
        for len in [1, 7, 8, 9, 23, CHUNK + 13] {
            let xs: Vec<f32> = (0..len)
                .map(|i| -110.0 + 220.0 * i as f32 / len as f32)
                .collect();
            let x = Tensor::<Flex, 1>::from_floats(xs.as_slice(), &Default::default());
            let ys = try_sigmoid(x)
                .expect("flex")
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            for (x, y) in xs.iter().zip(&ys) {
                let want = reference(*x);
                assert!(
                    (y - want).abs() <= 2e-7 * want.max(1e-30),
                    "sigmoid({x}) = {y}, not {want}"
                );
            }
        }
    }

    #[test]
    fn tanh_is_within_2e_7_of_libms() {
        let xs: Vec<f32> = (0..40_001).map(|i| -20.0 + i as f32 * 1e-3).collect();
        let mut ys = xs.clone();
        map_lanes(&mut ys, tanh8);
        let worst = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (f64::from(*y) - f64::from(*x).tanh()).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 2e-7, "|tanh8 - tanh| reaches {worst:e}");
    }

    #[test]
    fn nan_stays_nan() {
        let x = Tensor::<Flex, 1>::from_floats([0.0, f32::NAN, 1.0], &Default::default());
        let ys = try_sigmoid(x).unwrap().into_data().to_vec::<f32>().unwrap();
        assert!(ys[1].is_nan(), "sigmoid(NaN) = {}", ys[1]);
    }

    #[test]
    fn gradient_matches_burns() {
        let device = Default::default();
        let x = Tensor::<FlexTrain, 2>::random([37, 5], Distribution::Normal(0.0, 3.0), &device);
        let r = Tensor::<FlexTrain, 2>::random([37, 5], Distribution::Normal(0.0, 1.0), &device);
        let grad = |sigmoid: fn(Tensor<FlexTrain, 2>) -> Tensor<FlexTrain, 2>| {
            let x = x.clone().require_grad();
            let grads = (sigmoid(x.clone()) * r.clone()).sum().backward();
            x.grad(&grads).expect("tracked").into_data()
        };
        let ours = grad(|x| try_sigmoid(x).expect("flex training backend"));
        let burns = grad(burn::tensor::activation::sigmoid);
        ours.assert_approx_eq::<f32>(&burns, Tolerance::rel_abs(1e-5, 1e-7));
    }
}
