//! The stacked forward of a described net: the evaluation logits of `k` described nets of one
//! architecture in one pass (see [`Stacked`]), layer kind by layer kind, for DSS's segment
//! checks where a backend runs it faster than one point at a time.

use burn::prelude::*;
use burn::tensor::activation::{gelu, relu, tanh};

use super::net::{Described, Layer, Op};
use crate::flat::Stacked;
use crate::nets::layers::{conv2d, max_pool2d, sigmoid};
use crate::nets::stacked;

/// A batch between layers, for all `k` nets at once.
enum Batch<B: Backend> {
    /// The same images for every net (the input, until the first layer with parameters):
    /// [b, c, h, w].
    Shared(Tensor<B, 4>),
    /// Net `j`'s images in channels `j * c .. (j + 1) * c`: [b, k * c, h, w], the layout of a
    /// grouped convolution with `k` groups.
    Images(Tensor<B, 4>),
    /// Net `j`'s features in row `j` (a single row is shared by all nets): [k | 1, b, f].
    Features(Tensor<B, 3>),
}

impl<B: Backend> Batch<B> {
    /// An elementwise function, whatever the layout.
    fn map(
        self,
        f4: impl FnOnce(Tensor<B, 4>) -> Tensor<B, 4>,
        f3: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Self {
        match self {
            Batch::Shared(x) => Batch::Shared(f4(x)),
            Batch::Images(x) => Batch::Images(f4(x)),
            Batch::Features(x) => Batch::Features(f3(x)),
        }
    }

    /// A function of one net's images [b', c, h, w], applied to every net's.
    fn per_net_image(self, k: usize, f: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>) -> Self {
        match self {
            Batch::Shared(x) => Batch::Shared(f(x)),
            Batch::Images(x) => {
                // [b, k * c, h, w] and [b * k, c, h, w] are the same memory.
                let [b, kc, h, w] = x.dims();
                let y = f(x.reshape([b * k, kc / k, h, w]));
                let [_, c, h, w] = y.dims();
                Batch::Images(y.reshape([b, k * c, h, w]))
            }
            Batch::Features(_) => unreachable!("validated: an image layer gets images"),
        }
    }
}

impl<B: Backend> Stacked<Described<B>> {
    /// Evaluation logits of all `k` nets on the same images [batch, c, h, w]:
    /// [k, batch, classes]. Dropout is off, as in evaluation.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        self.forward_batch(Batch::Shared(x))
    }

    /// Outputs of all `k` nets with flat inputs on the same rows [batch, features]:
    /// [k, batch, outputs].
    pub fn forward_flat(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        self.forward_batch(Batch::Features(x.unsqueeze()))
    }

    fn forward_batch(&self, mut x: Batch<B>) -> Tensor<B, 3> {
        let (net, k) = (&self.module, self.k);
        for (op, layer) in net.ops.iter().zip(&net.layers) {
            x = match (op, layer) {
                (Op::Conv2d, Some(Layer::Conv2d(conv))) => match x {
                    // One convolution with all nets' filters reads the shared images; with
                    // groups, the filters of one group must read only that group's channels,
                    // which the stacked layout gives once the images are repeated per net.
                    Batch::Shared(x) if conv.groups == 1 => Batch::Images(conv2d(conv, x)),
                    Batch::Shared(x) => Batch::Images(stacked::conv2d(conv, x.repeat_dim(1, k), k)),
                    Batch::Images(x) => Batch::Images(stacked::conv2d(conv, x, k)),
                    Batch::Features(_) => unreachable!("validated: conv2d gets images"),
                },
                (Op::Linear, Some(Layer::Linear(layer))) => match x {
                    Batch::Features(x) => Batch::Features(stacked::linear(layer, x, k)),
                    _ => unreachable!("validated: linear gets features"),
                },
                (Op::LayerNorm(epsilon), Some(Layer::LayerNorm(norm))) => match x {
                    Batch::Features(x) => Batch::Features(layer_norm(norm, x, k, *epsilon)),
                    _ => unreachable!("validated: layer_norm gets features"),
                },
                (Op::MaxPool2d(pool), None) => x.per_net_image(k, |x| max_pool2d(pool, x)),
                (Op::AvgPool2d(pool), None) => x.per_net_image(k, |x| pool.forward(x)),
                (Op::Lrn(lrn), None) => x.per_net_image(k, |x| lrn.forward(x)),
                (Op::Relu, None) => x.map(relu, relu),
                (Op::Sigmoid, None) => x.map(sigmoid, sigmoid),
                (Op::Tanh, None) => x.map(tanh, tanh),
                (Op::Gelu, None) => x.map(gelu, gelu),
                (Op::Dropout(_), None) => x,
                (Op::Flatten, None) => match x {
                    Batch::Shared(x) => Batch::Features(x.flatten::<2>(1, 3).unsqueeze()),
                    Batch::Images(x) => {
                        // Net j's [c, h, w] are contiguous: [b, k, c * h * w] -> [k, b, ...].
                        let [b, kc, h, w] = x.dims();
                        Batch::Features(x.reshape([b, k, kc / k * h * w]).swap_dims(0, 1))
                    }
                    Batch::Features(_) => unreachable!("validated: flatten gets images"),
                },
                _ => unreachable!(
                    "an op has parameters exactly when it is linear, conv2d or layer_norm"
                ),
            };
        }
        match x {
            Batch::Features(x) => {
                let [rows, b, f] = x.dims();
                if rows == k { x } else { x.expand([k, b, f]) }
            }
            _ => unreachable!("validated: a described net ends in features"),
        }
    }
}

/// Layer normalization of each net's features [k | 1, b, f] with its own scale and shift
/// (stacked as [k * f]), as Burn's `LayerNorm`: biased variance, epsilon inside the root.
fn layer_norm<B: Backend>(
    norm: &burn::nn::LayerNorm<B>,
    x: Tensor<B, 3>,
    k: usize,
    epsilon: f64,
) -> Tensor<B, 3> {
    let [rows, b, f] = x.dims();
    let x = if rows == k { x } else { x.expand([k, b, f]) };
    let mean = x.clone().mean_dim(2);
    let centered = x - mean;
    let variance = centered.clone().powi_scalar(2).mean_dim(2);
    let y = centered / variance.add_scalar(epsilon).sqrt();
    let y = y * norm.gamma.val().reshape([k, 1, f]);
    match &norm.beta {
        Some(beta) => y + beta.val().reshape([k, 1, f]),
        None => y,
    }
}
