//! Feed-forward image classifiers described layer by layer in the config (`[task.net]`), so
//! that a network trained elsewhere (a PyTorch `nn.Sequential`, say) can be rebuilt, imported
//! and connected. The description is checked against the input's shape before any tensor is
//! made; the net keeps one entry per described layer, so its parameter names follow the
//! description's positions (`layers.3.Linear.weight` for the fourth layer), as PyTorch's
//! `Sequential` numbers its children.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use std::ops::Range;

use burn::prelude::*;
use burn::tensor::activation::{gelu, relu, tanh};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::dropout::dropout;
use super::layers::{
    conv2d, conv2d_relu, conv2d_relu_max_pool2d, linear, max_pool2d, relu_max_pool2d, sigmoid,
};
use super::lrn::Lrn;
use crate::init::{Init, reinit};

/// A layer's padding: a number of pixels on every side, or `"same"` (a convolution's output as
/// large as its input, for stride 1 and an odd kernel; a max pool's as TensorFlow's SAME).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Padding {
    Pixels(usize),
    Named(NamedPadding),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedPadding {
    Same,
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Pixels(0)
    }
}

pub(super) fn yes() -> bool {
    true
}

fn tf_lrn_bias() -> f64 {
    1.0
}

fn tf_lrn_alpha() -> f64 {
    1.0
}

fn tf_lrn_beta() -> f64 {
    0.5
}

/// One layer of a described net, as written in the config (`{ kind = "conv2d", ... }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Linear {
        features: usize,
        #[serde(default = "yes")]
        bias: bool,
        /// How this layer's weights are drawn; absent: the net's `weights`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<Init>,
        /// How this layer's bias is drawn; absent: the net's `biases`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        biases: Option<Init>,
        /// An L2 penalty `weight_decay * sum(w^2) / 2` on this layer's weights (TensorFlow's
        /// `l2_loss`; the gradient of PyTorch's SGD `weight_decay`), added to the training
        /// loss and not to the energy.
        #[serde(default, skip_serializing_if = "is_zero")]
        weight_decay: f64,
    },
    Conv2d {
        channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: Padding,
        #[serde(default = "one")]
        groups: usize,
        #[serde(default = "yes")]
        bias: bool,
        /// As for `linear`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<Init>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        biases: Option<Init>,
        #[serde(default, skip_serializing_if = "is_zero")]
        weight_decay: f64,
    },
    MaxPool2d {
        kernel: usize,
        /// Absent: the kernel size, as PyTorch's default.
        #[serde(default)]
        stride: Option<usize>,
        /// Pixels on every side, or `"same"`: TensorFlow's SAME, an output of
        /// ceil(input / stride) with the padding's odd pixel at the bottom and right.
        #[serde(default)]
        padding: Padding,
    },
    AvgPool2d {
        kernel: usize,
        #[serde(default)]
        stride: Option<usize>,
        /// Zero padding, counted in the average as PyTorch's default `count_include_pad`.
        #[serde(default)]
        padding: Padding,
    },
    Relu,
    Sigmoid,
    Tanh,
    Gelu,
    Dropout {
        p: f64,
    },
    Flatten,
    /// Local response normalization across channels, as `tf.nn.lrn` (and its defaults).
    Lrn {
        depth_radius: usize,
        #[serde(default = "tf_lrn_bias")]
        bias: f64,
        #[serde(default = "tf_lrn_alpha")]
        alpha: f64,
        #[serde(default = "tf_lrn_beta")]
        beta: f64,
    },
    /// Normalization over the features of a flat input, with a learned scale and shift.
    LayerNorm {
        #[serde(default = "layer_norm_epsilon")]
        epsilon: f64,
    },
    /// A token's learned vector of `features` numbers: the first layer of a language model
    /// (`nets::described_lm`).
    Embedding {
        features: usize,
        /// How the table is drawn; absent: the net's `weights`, else PyTorch's N(0, 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<Init>,
    },
    /// An LSTM layer of `hidden` units over a language model's sequence (PyTorch's `nn.LSTM`,
    /// one layer of it).
    Lstm {
        hidden: usize,
        #[serde(default = "yes")]
        bias: bool,
        /// Absent: the net's `weights` and `biases`, else PyTorch's U(±1/sqrt(hidden)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<Init>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        biases: Option<Init>,
    },
    /// Rejected with the reason (see `LayerSpec::unsupported`).
    BatchNorm,
    BatchNorm2d,
}

fn one() -> usize {
    1
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn layer_norm_epsilon() -> f64 {
    1e-5
}

impl LayerSpec {
    pub fn name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::Relu => "relu",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Gelu => "gelu",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Lrn { .. } => "lrn",
            LayerSpec::LayerNorm { .. } => "layer_norm",
            LayerSpec::BatchNorm => "batch_norm",
            LayerSpec::BatchNorm2d => "batch_norm2d",
            LayerSpec::Lstm { .. } => "lstm",
            LayerSpec::Embedding { .. } => "embedding",
        }
    }

    /// A `linear` layer with a bias, drawn as the net says, without weight decay.
    pub fn linear(features: usize) -> Self {
        LayerSpec::Linear {
            features,
            bias: true,
            weights: None,
            biases: None,
            weight_decay: 0.0,
        }
    }

    /// A square `conv2d` layer of stride 1 with a bias, drawn as the net says, without weight
    /// decay.
    pub fn conv2d(channels: usize, kernel: usize, padding: Padding) -> Self {
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride: 1,
            padding,
            groups: 1,
            bias: true,
            weights: None,
            biases: None,
            weight_decay: 0.0,
        }
    }

    /// This `linear` or `conv2d` layer with its own draws and weight decay (other layers are
    /// returned as they are).
    pub fn with_params(mut self, draws: [Init; 2], decay: f64) -> Self {
        if let LayerSpec::Linear {
            weights,
            biases,
            weight_decay,
            ..
        }
        | LayerSpec::Conv2d {
            weights,
            biases,
            weight_decay,
            ..
        } = &mut self
        {
            (*weights, *biases, *weight_decay) = (Some(draws[0]), Some(draws[1]), decay);
        }
        self
    }

    /// The layer's weight decay (0 for a layer without weights).
    fn weight_decay(&self) -> f64 {
        match *self {
            LayerSpec::Linear { weight_decay, .. } | LayerSpec::Conv2d { weight_decay, .. } => {
                weight_decay
            }
            _ => 0.0,
        }
    }

    /// Why a layer kind that parses is not built.
    pub(super) fn unsupported(&self) -> Option<&'static str> {
        match self {
            LayerSpec::BatchNorm | LayerSpec::BatchNorm2d => Some(
                "BatchNorm is not supported: its running statistics are not parameters of the \
                 landscape, so a point between two nets has no statistics of its own (Garipov \
                 et al. recompute them at every point of a curve); describe the net without it",
            ),
            LayerSpec::Lstm { .. } | LayerSpec::Embedding { .. } => Some(
                "embedding and lstm layers make language models, described in a ptb task's \
                 [task.net] (task.kind = \"ptb\"); an image task's net is feed-forward",
            ),
            _ => None,
        }
    }
}

/// The shape of one example between layers, and of a net's input: written `[c, h, w]` for
/// images and as a number of features for flat inputs (a regression net's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    /// [channels, height, width]
    Image([usize; 3]),
    /// features
    Flat(usize),
}

impl From<[usize; 3]> for Shape {
    fn from(dims: [usize; 3]) -> Self {
        Shape::Image(dims)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image([c, h, w]) => write!(f, "[{c}, {h}, {w}] image"),
            Shape::Flat(n) => write!(f, "{n} features"),
        }
    }
}

/// Layer sizes and feature counts are capped: each sizes an allocation.
const MAX_SIZE: usize = 1 << 20;

/// The pixels a window layer adds before and after each axis: ((top, bottom), (left, right)).
type Pads = ((usize, usize), (usize, usize));

/// The output side of a convolution or pooling window over `side` pixels padded with
/// `before` and `after`.
fn window_out(
    side: usize,
    kernel: usize,
    stride: usize,
    (before, after): (usize, usize),
) -> Option<usize> {
    let padded = side + before + after;
    (kernel <= padded).then(|| (padded - kernel) / stride + 1)
}

/// TensorFlow's SAME padding of one axis of `side` pixels: an output of ceil(side / stride),
/// the odd pixel of the padding after.
fn tf_same(side: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let total = ((side.div_ceil(stride) - 1) * stride + kernel).saturating_sub(side);
    (total / 2, total - total / 2)
}

/// A pooling layer's padding of an `h` x `w` input (kernel and stride positive).
fn pool_pads(padding: Padding, kernel: usize, stride: usize, [h, w]: [usize; 2]) -> Pads {
    match padding {
        Padding::Pixels(p) => ((p, p), (p, p)),
        Padding::Named(NamedPadding::Same) => {
            (tf_same(h, kernel, stride), tf_same(w, kernel, stride))
        }
    }
}

/// A net's layers and how its weights and biases are first drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetDescription {
    pub layers: Vec<LayerSpec>,
    /// How weight tensors are drawn; absent: as PyTorch's default, uniform in
    /// ±1/sqrt(fan_in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Init>,
    /// How bias tensors are drawn; absent: as PyTorch's default, uniform in ±1/sqrt(fan_in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biases: Option<Init>,
}

impl NetDescription {
    /// The shape after every layer, for inputs of `input` shape (images, or features); the
    /// net must end in `classes` features (a regression net's outputs). Errors name the layer
    /// (`layers[3] (linear): ...`).
    pub fn shapes(&self, input: impl Into<Shape>, classes: usize) -> Result<Vec<Shape>, String> {
        if self.layers.is_empty() {
            return Err("layers: a net needs at least one layer".into());
        }
        check_draws(self.weights, self.biases)?;
        let input = input.into();
        if let Shape::Flat(n) = input {
            check_size("the input's features", n)?;
        }
        let mut shape = input;
        let mut shapes = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            shape = next_shape(layer, shape)
                .map_err(|e| format!("layers[{i}] ({}): {e}", layer.name()))?;
            shapes.push(shape);
        }
        if shape != Shape::Flat(classes) {
            let outputs = match input {
                Shape::Image(_) => "classes",
                Shape::Flat(_) => "outputs",
            };
            return Err(format!(
                "layers: the net ends in a {shape}, but the task has {classes} {outputs}: the \
                 last layer must give {classes} features"
            ));
        }
        Ok(shapes)
    }

    /// The positions of the layers with parameters, each with the name its parameters are
    /// stored under (`layers.{position}.{name}.weight`).
    pub fn parameter_layers(&self) -> Vec<(usize, &'static str)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, layer)| {
                let name = match layer {
                    LayerSpec::Linear { .. } => "Linear",
                    LayerSpec::Conv2d { .. } => "Conv2d",
                    LayerSpec::LayerNorm { .. } => "LayerNorm",
                    _ => return None,
                };
                Some((i, name))
            })
            .collect()
    }

    /// The net for inputs of `input` shape, its parameters drawn from `seed`. The description
    /// must have passed [`NetDescription::shapes`].
    pub fn init<B: Backend>(
        &self,
        input: impl Into<Shape>,
        seed: u64,
        device: &B::Device,
    ) -> Described<B> {
        let mut shape = input.into();
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut ops = Vec::with_capacity(self.layers.len());
        // One rule per parameter tensor, in the module's traversal order.
        let mut draws = Vec::new();
        for spec in &self.layers {
            let (layer, op) = match *spec {
                LayerSpec::Linear {
                    features,
                    bias,
                    weights,
                    biases,
                    ..
                } => {
                    let Shape::Flat(d) = shape else {
                        unreachable!("validated")
                    };
                    draws.push(weights.or(self.weights).unwrap_or(pytorch_uniform(d)));
                    if bias {
                        draws.push(biases.or(self.biases).unwrap_or(pytorch_uniform(d)));
                    }
                    let layer = LinearConfig::new(d, features).with_bias(bias).init(device);
                    (Some(Layer::Linear(layer)), Op::Linear)
                }
                LayerSpec::Conv2d {
                    channels,
                    kernel,
                    stride,
                    padding,
                    groups,
                    bias,
                    weights,
                    biases,
                    ..
                } => {
                    let Shape::Image([c, _, _]) = shape else {
                        unreachable!("validated")
                    };
                    let fan_in = c / groups * kernel * kernel;
                    draws.push(weights.or(self.weights).unwrap_or(pytorch_uniform(fan_in)));
                    if bias {
                        draws.push(biases.or(self.biases).unwrap_or(pytorch_uniform(fan_in)));
                    }
                    let padding = match padding {
                        Padding::Pixels(p) => PaddingConfig2d::Explicit(p, p, p, p),
                        Padding::Named(NamedPadding::Same) => PaddingConfig2d::Same,
                    };
                    let layer = Conv2dConfig::new([c, channels], [kernel, kernel])
                        .with_stride([stride, stride])
                        .with_padding(padding)
                        .with_groups(groups)
                        .with_bias(bias)
                        .init(device);
                    (Some(Layer::Conv2d(layer)), Op::Conv2d)
                }
                LayerSpec::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => {
                    let (kernel, strides, padding) = pool_window(kernel, stride, padding, shape);
                    let pool = MaxPool2dConfig::new(kernel)
                        .with_strides(strides)
                        .with_padding(padding)
                        .init();
                    (None, Op::MaxPool2d(pool))
                }
                LayerSpec::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                } => {
                    let (kernel, strides, padding) = pool_window(kernel, stride, padding, shape);
                    let pool = AvgPool2dConfig::new(kernel)
                        .with_strides(strides)
                        .with_padding(padding)
                        .init();
                    (None, Op::AvgPool2d(pool))
                }
                LayerSpec::Relu => (None, Op::Relu),
                LayerSpec::Sigmoid => (None, Op::Sigmoid),
                LayerSpec::Tanh => (None, Op::Tanh),
                LayerSpec::Gelu => (None, Op::Gelu),
                LayerSpec::Dropout { p } => (None, Op::Dropout(p)),
                LayerSpec::Flatten => (None, Op::Flatten),
                LayerSpec::Lrn {
                    depth_radius,
                    bias,
                    alpha,
                    beta,
                } => (
                    None,
                    Op::Lrn(Lrn {
                        depth_radius,
                        bias,
                        alpha,
                        beta,
                    }),
                ),
                LayerSpec::LayerNorm { epsilon } => {
                    let Shape::Flat(d) = shape else {
                        unreachable!("validated")
                    };
                    draws.push(Init::Constant { value: 1.0 });
                    draws.push(Init::Constant { value: 0.0 });
                    let layer = LayerNormConfig::new(d).with_epsilon(epsilon).init(device);
                    (Some(Layer::LayerNorm(layer)), Op::LayerNorm(epsilon))
                }
                LayerSpec::BatchNorm
                | LayerSpec::BatchNorm2d
                | LayerSpec::Lstm { .. }
                | LayerSpec::Embedding { .. } => unreachable!("validated"),
            };
            shape = next_shape(spec, shape).expect("validated");
            layers.push(layer);
            ops.push(op);
        }
        let weight_decay = self.layers.iter().map(LayerSpec::weight_decay).collect();
        let net = Described {
            layers,
            ops,
            weight_decay,
        };
        reinit(net, seed, |index, _| draws[index])
    }
}

/// A pooling layer's square window, strides (the kernel's size when absent, as PyTorch) and
/// padding of its `input`, as Burn's pooling configs take them.
fn pool_window(
    kernel: usize,
    stride: Option<usize>,
    padding: Padding,
    input: Shape,
) -> ([usize; 2], [usize; 2], PaddingConfig2d) {
    let Shape::Image([_, h, w]) = input else {
        unreachable!("validated: a pool gets images")
    };
    let stride = stride.unwrap_or(kernel);
    let ((top, bottom), (left, right)) = pool_pads(padding, kernel, stride, [h, w]);
    (
        [kernel, kernel],
        [stride, stride],
        PaddingConfig2d::Explicit(top, left, bottom, right),
    )
}

/// What is wrong with a net's or a layer's weight and bias draws, if anything.
pub(super) fn check_draws(weights: Option<Init>, biases: Option<Init>) -> Result<(), String> {
    for (key, init) in [("weights", weights), ("biases", biases)] {
        if let Some(init) = init {
            init.validate().map_err(|e| format!("{key}: {e}"))?;
        }
    }
    Ok(())
}

/// What is wrong with a layer's parameter draws and weight decay, if anything.
pub(super) fn check_params(
    weights: Option<Init>,
    biases: Option<Init>,
    weight_decay: f64,
) -> Result<(), String> {
    check_draws(weights, biases)?;
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(format!(
            "weight_decay must be a finite number >= 0, got {weight_decay}"
        ));
    }
    Ok(())
}

/// PyTorch's default draw of a linear or convolution layer's parameters (and of an LSTM's):
/// uniform in ±1/sqrt(n), n the fan-in (the hidden size).
pub(super) fn pytorch_uniform(n: usize) -> Init {
    let bound = 1.0 / (n.max(1) as f32).sqrt();
    Init::Uniform {
        low: -bound,
        high: bound,
    }
}

/// `v`, if it is a usable size for `key` (a layer size or feature count; each sizes an
/// allocation).
pub(super) fn check_size(key: &str, v: usize) -> Result<usize, String> {
    if v == 0 || v > MAX_SIZE {
        Err(format!("{key} must be in 1..={MAX_SIZE}, got {v}"))
    } else {
        Ok(v)
    }
}

/// The shape after `layer` for an input of shape `shape`, or what is wrong.
fn next_shape(layer: &LayerSpec, shape: Shape) -> Result<Shape, String> {
    if let Some(reason) = layer.unsupported() {
        return Err(reason.into());
    }
    let image = || match shape {
        Shape::Image(dims) => Ok(dims),
        Shape::Flat(_) => Err(format!(
            "takes an image, but its input is {shape} (put it before `flatten`)"
        )),
    };
    let flat = || match shape {
        Shape::Flat(n) => Ok(n),
        Shape::Image(_) => Err(format!(
            "takes features, but its input is a {shape} (add a `flatten` layer before it)"
        )),
    };
    let size = check_size;
    // PyTorch's pools take at most half the kernel as padding; a convolution's padding of a
    // kernel or more would only add outputs that see no input.
    let window = |kernel: usize, stride: usize, pads: Pads, [c, h, w]: [usize; 3], pool| {
        let ((top, bottom), (left, right)) = pads;
        let padding = top.max(bottom).max(left).max(right);
        if pool && padding > kernel / 2 {
            return Err(format!(
                "padding {padding} is more than half the kernel ({kernel})"
            ));
        }
        if padding >= kernel {
            return Err(format!(
                "padding {padding} is not less than the kernel ({kernel})"
            ));
        }
        match (
            window_out(h, kernel, stride, (top, bottom)),
            window_out(w, kernel, stride, (left, right)),
        ) {
            (Some(oh), Some(ow)) => Ok(Shape::Image([c, oh, ow])),
            _ => Err(format!(
                "a {kernel}x{kernel} window with padding {padding} does not fit its {h}x{w} input"
            )),
        }
    };
    match *layer {
        LayerSpec::Linear {
            features,
            weights,
            biases,
            weight_decay,
            ..
        } => {
            flat()?;
            check_params(weights, biases, weight_decay)?;
            Ok(Shape::Flat(size("features", features)?))
        }
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
            groups,
            weights,
            biases,
            weight_decay,
            ..
        } => {
            let [c, h, w] = image()?;
            check_params(weights, biases, weight_decay)?;
            size("channels", channels)?;
            size("kernel", kernel)?;
            size("stride", stride)?;
            size("groups", groups)?;
            if c % groups != 0 || channels % groups != 0 {
                return Err(format!(
                    "groups ({groups}) must divide the input channels ({c}) and the output \
                     channels ({channels})"
                ));
            }
            let pixels = match padding {
                Padding::Pixels(p) => p,
                Padding::Named(NamedPadding::Same) => {
                    if stride != 1 || kernel % 2 == 0 {
                        return Err(format!(
                            "padding \"same\" needs stride 1 and an odd kernel, got stride \
                             {stride} and kernel {kernel}"
                        ));
                    }
                    kernel / 2
                }
            };
            let pads = ((pixels, pixels), (pixels, pixels));
            match window(kernel, stride, pads, [channels, h, w], false)? {
                Shape::Image(dims) if dims.iter().product::<usize>() <= MAX_SIZE * 16 => {
                    Ok(Shape::Image(dims))
                }
                shape => Err(format!("its output, a {shape}, is too large")),
            }
        }
        LayerSpec::MaxPool2d {
            kernel,
            stride,
            padding,
        }
        | LayerSpec::AvgPool2d {
            kernel,
            stride,
            padding,
        } => {
            let [c, h, w] = image()?;
            if matches!(layer, LayerSpec::AvgPool2d { .. })
                && padding == Padding::Named(NamedPadding::Same)
            {
                return Err(
                    "padding \"same\" (TensorFlow's) is taken by max_pool2d only: an \
                            average pool would count the padding in its averages, which \
                            TensorFlow's does not; give the padding in pixels"
                        .into(),
                );
            }
            let stride = size("stride", stride.unwrap_or(kernel))?;
            let pads = pool_pads(padding, size("kernel", kernel)?, stride, [h, w]);
            window(kernel, stride, pads, [c, h, w], true)
        }
        LayerSpec::Relu | LayerSpec::Sigmoid | LayerSpec::Tanh | LayerSpec::Gelu => Ok(shape),
        LayerSpec::Dropout { p } => {
            if (0.0..1.0).contains(&p) {
                Ok(shape)
            } else {
                Err(format!("p must be in [0, 1), got {p}"))
            }
        }
        LayerSpec::Flatten => {
            let [c, h, w] = image()?;
            Ok(Shape::Flat(c * h * w))
        }
        LayerSpec::Lrn {
            depth_radius,
            bias,
            alpha,
            beta,
        } => {
            image()?;
            size("depth_radius", depth_radius)?;
            if !(bias.is_finite() && alpha.is_finite() && beta.is_finite()) || bias <= 0.0 {
                return Err(format!(
                    "bias must be > 0 and alpha, beta finite, got bias {bias}, alpha {alpha}, \
                     beta {beta}"
                ));
            }
            Ok(shape)
        }
        LayerSpec::LayerNorm { epsilon } => {
            flat()?;
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return Err(format!("epsilon must be > 0, got {epsilon}"));
            }
            Ok(shape)
        }
        LayerSpec::BatchNorm
        | LayerSpec::BatchNorm2d
        | LayerSpec::Lstm { .. }
        | LayerSpec::Embedding { .. } => unreachable!("rejected above"),
    }
}

/// A described layer's parameters; the variant names are part of the parameters' names
/// ([`NetDescription::parameter_layers`]).
#[derive(Module, Debug)]
pub enum Layer<B: Backend> {
    Linear(Linear<B>),
    Conv2d(Conv2d<B>),
    LayerNorm(LayerNorm<B>),
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
        groups
            .into_iter()
            .map(|(decay, sum)| sum.mul_scalar(decay))
            .reduce(|a, b| a + b)
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
    pub fn operations(&self) -> Vec<Range<usize>> {
        let mut operations = Vec::new();
        let mut i = 0;
        while i < self.ops.len() {
            let taken = match (&self.ops[i], self.ops.get(i + 1), self.ops.get(i + 2)) {
                (Op::Conv2d, Some(Op::Relu), Some(Op::MaxPool2d(_))) => 3,
                (Op::Conv2d, Some(Op::Relu), _) | (Op::Relu, Some(Op::MaxPool2d(_)), _) => 2,
                _ => 1,
            };
            operations.push(i..i + taken);
            i += taken;
        }
        operations
    }

    /// An operation's name: its ops' names joined by `+` (`conv2d+relu+max_pool2d`).
    pub fn operation_name(&self, ops: Range<usize>) -> String {
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
    ) -> Activations<B> {
        let i = ops.start;
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
        }
    }

    /// Logits [batch, classes] for images [batch, c, h, w]; dropout only when an RNG is given
    /// (training).
    pub fn forward(&self, x: Tensor<B, 4>, rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        self.forward_activations(Activations::Image(x), rng)
    }

    /// Outputs [batch, outputs] of a net with flat inputs [batch, features] (a regression
    /// net); dropout only when an RNG is given (training).
    pub fn forward_flat(&self, x: Tensor<B, 2>, rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        self.forward_activations(Activations::Flat(x), rng)
    }

    fn forward_activations(
        &self,
        x: Activations<B>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Tensor<B, 2> {
        self.operations()
            .into_iter()
            .fold(x, |x, ops| {
                self.forward_operation(ops, x, rng.as_deref_mut())
            })
            .flat()
    }
}

/// `sum(w^2) / 2`, TensorFlow's `l2_loss`: [1].
fn half_sum_of_squares<B: Backend, const D: usize>(w: Tensor<B, D>) -> Tensor<B, 1> {
    w.powi_scalar(2).sum().div_scalar(2.0)
}

/// A described net and the inputs it takes: what a checkpoint of it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribedConfig {
    /// `[channels, height, width]` images, or a number of features.
    pub input: Shape,
    /// The features the net ends in: an image classifier's classes, a regression net's
    /// outputs.
    pub classes: usize,
    pub net: NetDescription,
}

impl DescribedConfig {
    /// `net` for `input` (images or features) and `classes` outputs, once its shapes check
    /// out.
    pub fn new(
        net: NetDescription,
        input: impl Into<Shape>,
        classes: usize,
    ) -> Result<Self, String> {
        let input = input.into();
        net.shapes(input, classes)?;
        Ok(Self {
            input,
            classes,
            net,
        })
    }

    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
        self.net.init(self.input, seed, device)
    }
}
