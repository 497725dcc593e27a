//! Local response normalization across channels, as TensorFlow's `tf.nn.lrn` (Burn has none):
//! `x / (bias + alpha * sum over 2r+1 neighbouring channels of x^2)^beta`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lrn {
    pub depth_radius: usize,
    pub bias: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Lrn {
    /// The TF CIFAR-10 tutorial's `lrn(x, 4, bias=1.0, alpha=0.001/9, beta=0.75)`.
    pub fn tf_cifar10() -> Self {
        Self {
            depth_radius: 4,
            bias: 1.0,
            alpha: 0.001 / 9.0,
            beta: 0.75,
        }
    }

    /// [b, c, h, w] -> [b, c, h, w]
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let constants = [self.bias, self.alpha, self.beta];
        let x = match crate::kernels::try_lrn(self.depth_radius, constants, x) {
            Ok(y) => return y,
            Err(x) => x,
        };
        self.generic(x)
    }

    /// [`Self::forward`] from Burn's tensor operations, for every backend but flex.
    pub(crate) fn generic<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let r = self.depth_radius;
        let pad = Tensor::<B, 4>::zeros([b, r, h, w], &x.device());
        let squares = Tensor::cat(vec![pad.clone(), x.clone().powi_scalar(2), pad], 1);
        let window_sum = (0..2 * r + 1)
            .map(|k| squares.clone().narrow(1, k, c))
            .reduce(|acc, s| acc + s)
            .expect("window has at least one channel");
        let denom =
            (window_sum.mul_scalar(self.alpha).add_scalar(self.bias)).powf_scalar(self.beta);
        x / denom
    }
}

/// flex's kernel against the generic layer, which is its reference (Burn has no LRN).
#[cfg(all(test, feature = "flex"))]
mod tests {
    use crate::kernels::try_lrn;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{DType, Distribution, Tolerance};

    use super::*;

    type FlexTrain = Autodiff<Flex>;

    #[test]
    fn values_and_gradients_match_the_generic_layer() {
        let device = Default::default();
        let lrn = Lrn::tf_cifar10();
        // Large values, so that the normalization is far from the identity; 7 channels, so
        // that windows are cut at both edges and one covers them all.
        let dims = [3, 7, 4, 5];
        let x = Tensor::<FlexTrain, 4>::random(dims, Distribution::Normal(0.0, 30.0), &device);
        let r = Tensor::<FlexTrain, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |forward: &dyn Fn(Tensor<FlexTrain, 4>) -> Tensor<FlexTrain, 4>| {
            let x = x.clone().require_grad();
            let y = forward(x.clone());
            let grads = (y.clone() * r.clone()).sum().backward();
            (y.into_data(), x.grad(&grads).expect("tracked").into_data())
        };
        let (y_ours, dx_ours) = run(&|x| {
            let constants = [lrn.bias, lrn.alpha, lrn.beta];
            try_lrn(lrn.depth_radius, constants, x).expect("flex training backend")
        });
        let (y_generic, dx_generic) = run(&|x| lrn.generic(x));
        assert_eq!(y_ours, y_generic, "same operations in the same order");
        dx_ours.assert_approx_eq::<f32>(&dx_generic, Tolerance::rel_abs(1e-4, 1e-6));
    }

    #[test]
    fn other_dtypes_are_left_to_the_generic_layer() {
        let x = Tensor::<Flex, 4>::zeros([1, 2, 2, 2], &Default::default()).cast(DType::F64);
        let lrn = Lrn::tf_cifar10();
        let constants = [lrn.bias, lrn.alpha, lrn.beta];
        assert!(try_lrn(lrn.depth_radius, constants, x).is_err());
    }
}
