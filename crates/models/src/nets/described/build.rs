//! Building a described net's module from its checked description.

use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{LayerNormConfig, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use super::net::{Described, Layer, Op};
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
