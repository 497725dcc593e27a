//! Building a described net's module from its checked description.

use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{GroupNormConfig, LayerNormConfig, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use super::net::{Described, Layer, Op};
use super::norm::BatchNorm;
use super::shapes::{next_shape, pool_pads, pytorch_uniform};
use super::spec::{LayerSpec, NamedPadding, Padding};
use super::{NetDescription, Shape};
use crate::init::{Init, reinit};
use crate::nets::lrn::Lrn;

impl NetDescription {
    /// The net for inputs of `input` shape, its parameters drawn from `seed`. The description
    /// must have passed [`NetDescription::shapes`].
    pub fn init<B: Backend>(
        &self,
        input: impl Into<Shape>,
        seed: u64,
        device: &B::Device,
    ) -> Described<B> {
        // One rule per parameter tensor, in the module's traversal order.
        let mut draws = Vec::new();
        let mut net = Described {
            layers: Vec::new(),
            ops: Vec::new(),
            weight_decay: Vec::new(),
        };
        self.build(&self.layers, input.into(), &mut net, &mut draws, device);
        reinit(net, seed, |index, _| draws[index])
    }

    /// Appends the entries of `specs` (the net's layers, or a block's branch) for inputs of
    /// `input` shape to `net`, blocks written out in place (see [`Op::Residual`]), each
    /// parameter tensor's draw pushed to `draws` in traversal order; the values are
    /// placeholders until [`reinit`] draws them.
    fn build<B: Backend>(
        &self,
        specs: &[LayerSpec],
        input: Shape,
        net: &mut Described<B>,
        draws: &mut Vec<Init>,
        device: &B::Device,
    ) {
        let mut shape = input;
        for spec in specs {
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
                LayerSpec::BatchNorm {
                    momentum,
                    epsilon,
                    affine,
                } => {
                    let channels = match shape {
                        Shape::Image([c, _, _]) => c,
                        Shape::Flat(d) => d,
                    };
                    if affine {
                        draws.push(Init::Constant { value: 1.0 });
                        draws.push(Init::Constant { value: 0.0 });
                    }
                    let layer = BatchNorm::new(channels, momentum, epsilon, affine, device);
                    (Some(Layer::BatchNorm(layer)), Op::BatchNorm)
                }
                LayerSpec::GroupNorm {
                    groups,
                    epsilon,
                    affine,
                } => {
                    let Shape::Image([c, _, _]) = shape else {
                        unreachable!("validated")
                    };
                    if affine {
                        draws.push(Init::Constant { value: 1.0 });
                        draws.push(Init::Constant { value: 0.0 });
                    }
                    let layer = GroupNormConfig::new(groups, c)
                        .with_epsilon(epsilon)
                        .with_affine(affine)
                        .init(device);
                    (Some(Layer::GroupNorm(layer)), Op::GroupNorm)
                }
                LayerSpec::GlobalAvgPool => (None, Op::GlobalAvgPool),
                LayerSpec::Subsample { stride } => (None, Op::Subsample(stride)),
                LayerSpec::PadChannels { before, after } => (None, Op::PadChannels(before, after)),
                LayerSpec::Residual {
                    ref body,
                    ref shortcut,
                } => {
                    let at = net.ops.len();
                    net.layers.push(None);
                    net.ops.push(Op::Residual {
                        body: 0,
                        shortcut: 0,
                    });
                    net.weight_decay.push(0.0);
                    self.build(body, shape, net, draws, device);
                    let body = net.ops.len() - at - 1;
                    self.build(shortcut, shape, net, draws, device);
                    let shortcut = net.ops.len() - at - 1 - body;
                    net.ops[at] = Op::Residual { body, shortcut };
                    shape = next_shape(spec, shape).expect("validated");
                    continue;
                }
                LayerSpec::Lstm { .. } | LayerSpec::Embedding { .. } => unreachable!("validated"),
            };
            shape = next_shape(spec, shape).expect("validated");
            net.layers.push(layer);
            net.ops.push(op);
            net.weight_decay.push(spec.weight_decay());
        }
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
