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
        #[cfg(feature = "flex")]
        let x = match crate::flex::try_lrn(self, x) {
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
