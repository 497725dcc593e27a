//! A net's activation pattern at one point, held while its weights move.
//!
//! A ReLU net with max pooling is piecewise smooth in its weights: which units pass and which
//! input each pool takes (the pattern) switch across thin sheets of weight space. Between
//! switches it is a polynomial, whose Hessian is the one autograd computes almost everywhere.
//! A difference of gradients across a step that crosses switches measures jumps of the
//! gradient instead, an error that does not shrink with the step. Holding the pattern of the
//! base point on both sides of the difference keeps the net on that point's piece: ReLU becomes
//! a product with the point's mask, max pooling a gather of the point's choices.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::module::max_pool2d_with_indices;
use burn::tensor::ops::PadMode;

/// One switching layer's choices at the recorded point.
#[derive(Debug, Clone)]
enum Choice<B: Backend> {
    /// Which units a ReLU passes (1) or zeroes (0), flattened.
    Mask(Tensor<B, 1>),
    /// For each pooled output, the input it takes: an index into its channel's (padded) rows
    /// times columns, [batch, channels, out_h, out_w].
    Argmax(Tensor<B, 4, Int>),
}

/// The activation pattern of one forward pass: recorded by the first pass it is given to,
/// then held by every pass after [`Pattern::held`].
#[derive(Debug, Clone)]
pub struct Pattern<B: Backend> {
    choices: Vec<Choice<B>>,
    holding: bool,
    next: usize,
}

impl<B: Backend> Pattern<B> {
    /// An empty pattern that records the choices of the pass it is given to.
    pub fn recording() -> Self {
        Self {
            choices: Vec::new(),
            holding: false,
            next: 0,
        }
    }

    /// The recorded pattern, to be held by one more pass from its first layer on.
    pub fn held(&self) -> Self {
        Self {
            choices: self.choices.clone(),
            holding: true,
            next: 0,
        }
    }

    /// The switching layers (ReLU, max pooling) recorded: none for a smooth net.
    pub fn switching_layers(&self) -> usize {
        self.choices.len()
    }

    /// The recorded choice of the next switching layer, checked against its kind.
    fn take(&mut self, what: &str) -> &Choice<B> {
        let Some(choice) = self.choices.get(self.next) else {
            panic!(
                "a held activation pattern of {} switching layers was asked for a {what} \
                 beyond them: it was recorded on another net",
                self.choices.len()
            );
        };
        self.next += 1;
        choice
    }

    /// ReLU of `x`, with the recorded units passing when held.
    pub fn relu<const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let mask = if self.holding {
            match self.take("relu") {
                Choice::Mask(mask) => mask.clone().reshape(dims),
                Choice::Argmax(_) => panic!("a held pattern has a max pool where a relu is"),
            }
        } else {
            let mask = x.clone().greater_elem(0.0).float().detach();
            let units = mask.shape().num_elements();
            self.choices
                .push(Choice::Mask(mask.clone().reshape([units])));
            mask
        };
        x * mask
    }

    /// `pool` of images `x`, each output taking the recorded input when held.
    pub fn max_pool2d(&mut self, pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (top, left, bottom, right) = match pool.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
            PaddingConfig2d::Valid => (0, 0, 0, 0),
            PaddingConfig2d::Same => {
                unreachable!("described pools carry explicit padding (build::pool_window)")
            }
        };
        // Burn's pooling takes symmetric padding only; a pool with more on one side pads
        // first, with -inf so that padding is never the maximum (as `MaxPool2d::forward`).
        let (x, padding) = if top != bottom || left != right {
            let padded = x.pad(
                (left, right, top, bottom),
                PadMode::Constant(f32::NEG_INFINITY),
            );
            (padded, [0, 0])
        } else {
            (x, [top, left])
        };
        let [n, c, ph, pw] = x.dims();
        let indices = if self.holding {
            match self.take("max pool") {
                Choice::Argmax(indices) => indices.clone(),
                Choice::Mask(_) => panic!("a held pattern has a relu where a max pool is"),
            }
        } else {
            let (_, indices) = max_pool2d_with_indices(
                x.clone(),
                pool.kernel_size,
                pool.stride,
                padding,
                pool.dilation,
                pool.ceil_mode,
            );
            self.choices.push(Choice::Argmax(indices.clone()));
            indices
        };
        let [_, _, oh, ow] = indices.dims();
        // Indices count over the unpadded rows and columns of `x` (PyTorch's convention,
        // which Burn's backends follow).
        x.reshape([n, c, ph * pw])
            .gather(2, indices.reshape([n, c, oh * ow]))
            .reshape([n, c, oh, ow])
    }
}
