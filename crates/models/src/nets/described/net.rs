//! A described net's module and its forward pass.

use std::ops::Range;

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{GroupNorm, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu, tanh};
use burn::tensor::module::adaptive_avg_pool2d;
use rand_chacha::ChaCha8Rng;

use crate::nets::dropout::dropout;
use crate::nets::layers::{
    conv2d, conv2d_relu, conv2d_relu_max_pool2d, linear, max_pool2d, relu_max_pool2d, sigmoid,
};
use crate::nets::lrn::Lrn;
use crate::pattern::Pattern;

use super::norm::{BatchNorm, NormMode};

/// A described layer's parameters; the variant names are part of the parameters' names
/// ([`NetDescription::parameter_layers`](super::NetDescription::parameter_layers)).
#[derive(Module, Debug)]
pub enum Layer<B: Backend> {
    Linear(Linear<B>),
    Conv2d(Conv2d<B>),
    LayerNorm(LayerNorm<B>),
    BatchNorm(BatchNorm<B>),
    GroupNorm(GroupNorm<B>),
}

/// What a described layer computes.
#[derive(Debug, Clone)]
pub enum Op {
    /// The layer's parameters are in `layers` at the same position.
    Linear,
    Conv2d,
    /// Layer normalization with this epsilon.
    LayerNorm(f64),
    MaxPool2d(MaxPool2d),
    AvgPool2d(AvgPool2d),
    Relu,
    Sigmoid,
    Tanh,
    Gelu,
    Dropout(f64),
    Flatten,
    Lrn(Lrn),
    BatchNorm,
    GroupNorm,
    GlobalAvgPool,
    /// A residual block: its body is the next `body` entries of `layers` and `ops` (blocks
    /// inside it counted with their own entries), its shortcut the `shortcut` after those
    /// (none: the identity), and it computes their sum. Blocks are written out in place, so
    /// the module is one flat list whatever the nesting (Burn's records cannot recurse).
    Residual {
        body: usize,
        shortcut: usize,
    },
    Subsample(usize),
    /// Zero channels before and after.
    PadChannels(usize, usize),
}

/// A described net: `layers[i]` holds the parameters of the i-th described layer (none for
/// activations, pools, dropout and flatten), `ops[i]` what it computes, `weight_decay[i]` the
/// L2 penalty on its weights (0 for none).
#[derive(Module, Debug)]
pub struct Described<B: Backend> {
    pub layers: Vec<Option<Layer<B>>>,
    #[module(skip)]
    pub ops: Vec<Op>,
    #[module(skip)]
    pub weight_decay: Vec<f64>,
}

impl Op {
    /// The name of the layer kind in a description.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Linear => "linear",
            Op::Conv2d => "conv2d",
            Op::LayerNorm(_) => "layer_norm",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::AvgPool2d(_) => "avg_pool2d",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Gelu => "gelu",
            Op::Dropout(_) => "dropout",
            Op::Flatten => "flatten",
            Op::Lrn(_) => "lrn",
            Op::BatchNorm => "batch_norm",
            Op::GroupNorm => "group_norm",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Residual { .. } => "residual",
            Op::Subsample(_) => "subsample",
            Op::PadChannels(..) => "pad_channels",
        }
    }
}

/// An example batch between layers: images [batch, c, h, w] before `flatten`, features
/// [batch, d] after.
#[derive(Debug, Clone)]
pub enum Activations<B: Backend> {
    Image(Tensor<B, 4>),
    Flat(Tensor<B, 2>),
}

impl<B: Backend> Activations<B> {
    fn image(self) -> Tensor<B, 4> {
        match self {
            Activations::Image(x) => x,
            Activations::Flat(_) => unreachable!("validated: an image layer gets an image"),
        }
    }

    fn flat(self) -> Tensor<B, 2> {
        match self {
            Activations::Flat(x) => x,
            Activations::Image(_) => unreachable!("validated: a feature layer gets features"),
        }
    }

    fn map(
        self,
        image: impl FnOnce(Tensor<B, 4>) -> Tensor<B, 4>,
        flat: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
    ) -> Self {
        match self {
            Activations::Image(x) => Activations::Image(image(x)),
            Activations::Flat(x) => Activations::Flat(flat(x)),
        }
    }

    /// The same values cut from the autodiff graph, as a leaf that tracks its gradient.
    pub fn leaf(self) -> Self {
        self.map(Tensor::detach, Tensor::detach)
            .map(Tensor::require_grad, Tensor::require_grad)
    }

    /// The sum of all values, \[1\].
    pub fn sum(self) -> Tensor<B, 1> {
        match self {
            Activations::Image(x) => x.sum(),
            Activations::Flat(x) => x.sum(),
        }
    }
}

impl<B: Backend> Described<B> {
    /// The training loss's L2 penalty, `None` when no layer has a weight decay: each decay
    /// times half the sum of the squares of its layers' weights. Layers sharing a decay are
    /// summed before it multiplies them (one product per decay, in the order of the paper's
    /// CIFAR-10 net).
    pub fn weight_penalty(&self) -> Option<Tensor<B, 1>> {
        let mut groups: Vec<(f64, Tensor<B, 1>)> = Vec::new();
        self.penalty_terms(&mut groups);
        groups
            .into_iter()
            .map(|(decay, sum)| sum.mul_scalar(decay))
            .reduce(|a, b| a + b)
    }

    /// Adds the net's half sums of squared weights to their decay's group.
    fn penalty_terms(&self, groups: &mut Vec<(f64, Tensor<B, 1>)>) {
        for (layer, &decay) in self.layers.iter().zip(&self.weight_decay) {
            if decay == 0.0 {
                continue;
            }
            let half_squares = match layer {
                Some(Layer::Linear(layer)) => half_sum_of_squares(layer.weight.val()),
                Some(Layer::Conv2d(conv)) => half_sum_of_squares(conv.weight.val()),
                _ => unreachable!("validated: only linear and conv2d layers take a weight decay"),
            };
            match groups.iter_mut().find(|(d, _)| *d == decay) {
                Some((_, sum)) => *sum = sum.clone() + half_squares,
                None => groups.push((decay, half_squares)),
            }
        }
    }

    /// The same net with running statistics of its own in every batch normalization, reset
    /// (see [`BatchNorm::with_fresh_statistics`]).
    pub fn with_fresh_statistics(self) -> Self {
        self.map_batch_norms(&mut |bn| bn.with_fresh_statistics())
    }

    /// The same net with `f` applied to every batch normalization, in the order of
    /// `layers`.
    pub fn map_batch_norms(mut self, f: &mut impl FnMut(BatchNorm<B>) -> BatchNorm<B>) -> Self {
        self.layers = self
            .layers
            .into_iter()
            .map(|layer| match layer {
                Some(Layer::BatchNorm(bn)) => Some(Layer::BatchNorm(f(bn))),
                other => other,
            })
            .collect();
        self
    }

    /// Every batch normalization, in the order of `layers`.
    pub fn batch_norms(&self) -> Vec<&BatchNorm<B>> {
        self.layers
            .iter()
            .filter_map(|layer| match layer {
                Some(Layer::BatchNorm(bn)) => Some(bn),
                _ => None,
            })
            .collect()
    }

    fn conv(&self, i: usize) -> &Conv2d<B> {
        match &self.layers[i] {
            Some(Layer::Conv2d(conv)) => conv,
            _ => unreachable!("a conv2d op has its convolution"),
        }
    }

    /// The layer operations the forward pass runs, in order, each a range of `ops`: a
    /// convolution followed by ReLU and max pooling, a convolution followed by ReLU, and ReLU
    /// followed by max pooling run as one fused layer operation where the backend has one, as
    /// in the paper's nets, which they reproduce bit for bit; every other op alone.
    /// A residual block is one operation.
    pub fn operations(&self) -> Vec<Range<usize>> {
        self.operations_in(0..self.ops.len(), true)
    }

    /// [`Described::operations`] of the ops in `range` (the net's, or a block's branch);
    /// without `fuse`, every op alone but a residual block.
    fn operations_in(&self, range: Range<usize>, fuse: bool) -> Vec<Range<usize>> {
        let mut operations = Vec::new();
        let mut i = range.start;
        let op = |j: usize| (fuse && j < range.end).then(|| &self.ops[j]);
        while i < range.end {
            let taken = match (&self.ops[i], op(i + 1), op(i + 2)) {
                (Op::Residual { body, shortcut }, _, _) => 1 + body + shortcut,
                (Op::Conv2d, Some(Op::Relu), Some(Op::MaxPool2d(_))) => 3,
                (Op::Conv2d, Some(Op::Relu), _) | (Op::Relu, Some(Op::MaxPool2d(_)), _) => 2,
                _ => 1,
            };
            operations.push(i..i + taken);
            i += taken;
        }
        operations
    }

    /// The ops of `range` on the activations before them; with a `pattern`, each op alone,
    /// ReLU and max pooling recording or holding it.
    fn forward_range(
        &self,
        range: Range<usize>,
        x: Activations<B>,
        mut rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
        mut pattern: Option<&mut Pattern<B>>,
    ) -> Activations<B> {
        self.operations_in(range, pattern.is_none())
            .into_iter()
            .fold(x, |x, ops| {
                self.operation(ops, x, rng.as_deref_mut(), norm, pattern.as_deref_mut())
            })
    }

    /// An operation's name: its ops' names joined by `+` (`conv2d+relu+max_pool2d`); a
    /// residual block's is `residual`.
    pub fn operation_name(&self, ops: Range<usize>) -> String {
        if let Op::Residual { .. } = self.ops[ops.start] {
            return "residual".into();
        }
        self.ops[ops]
            .iter()
            .map(Op::name)
            .collect::<Vec<_>>()
            .join("+")
    }

    /// One of [`Described::operations`] on the activations before it; dropout only when an
    /// RNG is given (training).
    pub fn forward_operation(
        &self,
        ops: Range<usize>,
        x: Activations<B>,
        rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
    ) -> Activations<B> {
        self.operation(ops, x, rng, norm, None)
    }

    /// [`Described::forward_operation`], with ReLU and max pooling taken by `pattern` when
    /// one is given (the operation is then a single op or a residual block).
    fn operation(
        &self,
        ops: Range<usize>,
        x: Activations<B>,
        rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
        pattern: Option<&mut Pattern<B>>,
    ) -> Activations<B> {
        let i = ops.start;
        if let Some(pattern) = pattern {
            match (&self.ops[i], x) {
                (Op::Relu, Activations::Image(x)) => return Activations::Image(pattern.relu(x)),
                (Op::Relu, Activations::Flat(x)) => return Activations::Flat(pattern.relu(x)),
                (Op::MaxPool2d(pool), x) => {
                    return Activations::Image(pattern.max_pool2d(pool, x.image()));
                }
                (&Op::Residual { body, shortcut }, x) => {
                    return self.residual(i, body, shortcut, x, rng, norm, Some(pattern));
                }
                (_, x) => return self.operation(ops, x, rng, norm, None),
            }
        }
        match (&self.ops[i], ops.len()) {
            (Op::Conv2d, 3) => match &self.ops[i + 2] {
                Op::MaxPool2d(pool) => {
                    Activations::Image(conv2d_relu_max_pool2d(self.conv(i), pool, x.image()))
                }
                _ => unreachable!("a fused convolution ends in its pool"),
            },
            (Op::Conv2d, 2) => Activations::Image(conv2d_relu(self.conv(i), x.image())),
            (Op::Relu, 2) => match &self.ops[i + 1] {
                Op::MaxPool2d(pool) => Activations::Image(relu_max_pool2d(pool, x.image())),
                _ => unreachable!("a fused ReLU ends in its pool"),
            },
            (Op::Conv2d, _) => Activations::Image(conv2d(self.conv(i), x.image())),
            (Op::Linear, _) => match &self.layers[i] {
                Some(Layer::Linear(layer)) => Activations::Flat(linear(layer, x.flat())),
                _ => unreachable!("a linear op has its layer"),
            },
            (Op::LayerNorm(_), _) => match &self.layers[i] {
                Some(Layer::LayerNorm(norm)) => Activations::Flat(norm.forward(x.flat())),
                _ => unreachable!("a layer_norm op has its layer"),
            },
            (Op::MaxPool2d(pool), _) => Activations::Image(max_pool2d(pool, x.image())),
            (Op::AvgPool2d(pool), _) => Activations::Image(pool.forward(x.image())),
            (Op::Relu, _) => x.map(relu, relu),
            (Op::Sigmoid, _) => x.map(sigmoid, sigmoid),
            (Op::Tanh, _) => x.map(tanh, tanh),
            (Op::Gelu, _) => x.map(gelu, gelu),
            (Op::Dropout(p), _) => match (rng, x) {
                (Some(rng), Activations::Image(x)) => Activations::Image(dropout(x, *p, rng)),
                (Some(rng), Activations::Flat(x)) => Activations::Flat(dropout(x, *p, rng)),
                (None, x) => x,
            },
            (Op::Flatten, _) => Activations::Flat(x.image().flatten(1, 3)),
            (Op::Lrn(lrn), _) => Activations::Image(lrn.forward(x.image())),
            (Op::BatchNorm, _) => match &self.layers[i] {
                Some(Layer::BatchNorm(bn)) => {
                    x.map(|x| bn.forward(x, norm), |x| bn.forward(x, norm))
                }
                _ => unreachable!("a batch_norm op has its layer"),
            },
            (Op::GroupNorm, _) => match &self.layers[i] {
                Some(Layer::GroupNorm(gn)) => Activations::Image(gn.forward(x.image())),
                _ => unreachable!("a group_norm op has its layer"),
            },
            (Op::GlobalAvgPool, _) => {
                let x = x.image();
                let [n, c, _, _] = x.dims();
                Activations::Flat(adaptive_avg_pool2d(x, [1, 1]).reshape([n, c]))
            }
            (&Op::Residual { body, shortcut }, _) => {
                self.residual(i, body, shortcut, x, rng, norm, None)
            }
            (Op::Subsample(stride), _) => Activations::Image(subsample(x.image(), *stride)),
            (Op::PadChannels(before, after), _) => {
                Activations::Image(pad_channels(x.image(), *before, *after))
            }
        }
    }

    /// The residual block at op `i`: its body's and its shortcut's sum.
    #[allow(clippy::too_many_arguments)]
    fn residual(
        &self,
        i: usize,
        body: usize,
        shortcut: usize,
        x: Activations<B>,
        mut rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
        mut pattern: Option<&mut Pattern<B>>,
    ) -> Activations<B> {
        let body_end = i + 1 + body;
        let sum = self.forward_range(
            i + 1..body_end,
            x.clone(),
            rng.as_deref_mut(),
            norm,
            pattern.as_deref_mut(),
        );
        let shortcut = self.forward_range(body_end..body_end + shortcut, x, rng, norm, pattern);
        match (sum, shortcut) {
            (Activations::Image(a), Activations::Image(b)) => Activations::Image(a + b),
            (Activations::Flat(a), Activations::Flat(b)) => Activations::Flat(a + b),
            _ => unreachable!("validated: a block's branches give the same shape"),
        }
    }

    /// Logits [batch, classes] for images [batch, c, h, w]. With an RNG (training): dropout,
    /// and batch normalization with each batch's statistics, moving the running ones; without
    /// (evaluation): no dropout, and the running statistics.
    pub fn forward(&self, x: Tensor<B, 4>, rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        let norm = training_norm(&rng);
        self.forward_activations(Activations::Image(x), rng, norm)
            .flat()
    }

    /// [`Described::forward`] with the batch normalization mode given.
    pub fn forward_with(
        &self,
        x: Tensor<B, 4>,
        rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
    ) -> Tensor<B, 2> {
        self.forward_activations(Activations::Image(x), rng, norm)
            .flat()
    }

    /// Outputs [batch, outputs] of a net with flat inputs [batch, features] (a regression
    /// net), as [`Described::forward`] for images.
    pub fn forward_flat(&self, x: Tensor<B, 2>, rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        let norm = training_norm(&rng);
        self.forward_activations(Activations::Flat(x), rng, norm)
            .flat()
    }

    /// [`Described::forward_flat`] with the batch normalization mode given.
    pub fn forward_flat_with(
        &self,
        x: Tensor<B, 2>,
        rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
    ) -> Tensor<B, 2> {
        self.forward_activations(Activations::Flat(x), rng, norm)
            .flat()
    }

    /// The activations after every operation, from `x`.
    pub fn forward_activations(
        &self,
        x: Activations<B>,
        rng: Option<&mut ChaCha8Rng>,
        norm: NormMode,
    ) -> Activations<B> {
        self.forward_range(0..self.ops.len(), x, rng, norm, None)
    }

    /// Outputs [batch, outputs] without dropout, batch normalization in `norm` mode, ReLU
    /// and max pooling recording `pattern` or holding it (see [`Pattern`]).
    pub fn forward_patterned(
        &self,
        x: Activations<B>,
        norm: NormMode,
        pattern: &mut Pattern<B>,
    ) -> Tensor<B, 2> {
        self.forward_range(0..self.ops.len(), x, None, norm, Some(pattern))
            .flat()
    }
}

/// Batch normalization's mode for a forward with or without a training RNG.
fn training_norm(rng: &Option<&mut ChaCha8Rng>) -> NormMode {
    if rng.is_some() {
        NormMode::Train
    } else {
        NormMode::Running
    }
}

/// `x[:, :, ::stride, ::stride]` of images [n, c, h, w]: padded with zeros up to a multiple of
/// the stride (the padding is never taken), then every `stride`-th row and column by
/// reshapes and narrows, which every backend differentiates.
fn subsample<B: Backend>(x: Tensor<B, 4>, stride: usize) -> Tensor<B, 4> {
    if stride == 1 {
        return x;
    }
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
    let x = if oh * stride != h || ow * stride != w {
        x.pad((0, ow * stride - w, 0, oh * stride - h), 0.0)
    } else {
        x
    };
    x.reshape([n, c, oh, stride, ow, stride])
        .narrow(3, 0, 1)
        .narrow(5, 0, 1)
        .reshape([n, c, oh, ow])
}

/// Images [n, c, h, w] with `before` and `after` channels of zeros around theirs.
fn pad_channels<B: Backend>(x: Tensor<B, 4>, before: usize, after: usize) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    let device = x.device();
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(Tensor::zeros([n, before, h, w], &device));
    }
    parts.push(x);
    if after > 0 {
        parts.push(Tensor::zeros([n, after, h, w], &device));
    }
    Tensor::cat(parts, 1)
}

/// `sum(w^2) / 2`, TensorFlow's `l2_loss`: [1].
fn half_sum_of_squares<B: Backend, const D: usize>(w: Tensor<B, D>) -> Tensor<B, 1> {
    w.powi_scalar(2).sum().div_scalar(2.0)
}
