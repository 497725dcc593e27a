//! The TensorFlow CIFAR-10 tutorial convnet the paper used (24x24 crops, LRN).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::described::{LayerSpec, NamedPadding, NetDescription, Padding};
use super::layers::{conv2d_relu, linear, max_pool2d};
use super::lrn::Lrn;
use crate::init::{Init, reinit};

/// Side of the crops the network sees.
pub const CIFAR_CROP: usize = 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CifarConvConfig {
    pub conv1: usize,
    pub conv2: usize,
    pub fc1: usize,
    pub fc2: usize,
    /// L2 penalty on the two hidden fully connected layers' weights (tutorial: 0.004).
    pub weight_decay: f64,
    pub lrn: Lrn,
}

impl Default for CifarConvConfig {
    fn default() -> Self {
        Self {
            conv1: 64,
            conv2: 64,
            fc1: 384,
            fc2: 192,
            weight_decay: 0.004,
            lrn: Lrn::tf_cifar10(),
        }
    }
}

impl CifarConvConfig {
    pub fn validate(&self) -> Result<(), String> {
        if [self.conv1, self.conv2, self.fc1, self.fc2].contains(&0) {
            return Err("conv1, conv2, fc1 and fc2 must be positive".into());
        }
        if self.weight_decay < 0.0 {
            return Err(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        Ok(())
    }

    /// The net as a layer-by-layer description: the described net it builds is this net,
    /// bit for bit (parameters, logits, training with its weight penalty).
    pub fn description(&self) -> NetDescription {
        let draws = |std, bias| {
            [
                Init::TruncatedNormal { std },
                Init::Constant { value: bias },
            ]
        };
        let conv = |channels, bias| {
            LayerSpec::conv2d(channels, 5, Padding::Named(NamedPadding::Same))
                .with_params(draws(5e-2, bias), 0.0)
        };
        // TF's SAME pooling: 24 -> 12 -> 6, padding the bottom row and right column.
        let pool = || LayerSpec::MaxPool2d {
            kernel: 3,
            stride: Some(2),
            padding: Padding::Named(NamedPadding::Same),
        };
        let linear = |features, std, bias, decay| {
            LayerSpec::linear(features).with_params(draws(std, bias), decay)
        };
        let Lrn {
            depth_radius,
            bias,
            alpha,
            beta,
        } = self.lrn;
        let lrn = || LayerSpec::Lrn {
            depth_radius,
            bias,
            alpha,
            beta,
        };
        NetDescription {
            layers: vec![
                conv(self.conv1, 0.0),
                LayerSpec::Relu,
                pool(),
                lrn(),
                conv(self.conv2, 0.1),
                LayerSpec::Relu,
                lrn(),
                pool(),
                LayerSpec::Flatten,
                linear(self.fc1, 0.04, 0.1, self.weight_decay),
                LayerSpec::Relu,
                linear(self.fc2, 0.04, 0.1, self.weight_decay),
                LayerSpec::Relu,
                linear(10, 1.0 / 192.0, 0.0, 0.0),
            ],
            weights: None,
            biases: None,
        }
    }

    /// The tutorial's initialization, parameter by parameter (weights, then bias, per layer).
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> CifarConv<B> {
        let conv = |c_in, c_out| {
            Conv2dConfig::new([c_in, c_out], [5, 5])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        // TF's SAME pooling of 24 (then 12) with window 3, stride 2 pads one row/column at
        // the bottom/right only.
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
            .init();
        let side = CIFAR_CROP / 4;
        let net = CifarConv {
            conv1: conv(3, self.conv1),
            conv2: conv(self.conv1, self.conv2),
            pool,
            fc1: LinearConfig::new(side * side * self.conv2, self.fc1).init(device),
            fc2: LinearConfig::new(self.fc1, self.fc2).init(device),
            fc3: LinearConfig::new(self.fc2, 10).init(device),
            lrn: self.lrn,
            weight_decay: self.weight_decay,
        };
        let tn = |std| Init::TruncatedNormal { std };
        let c = |value| Init::Constant { value };
        let table = [
            tn(5e-2),
            c(0.0),
            tn(5e-2),
            c(0.1),
            tn(0.04),
            c(0.1),
            tn(0.04),
            c(0.1),
            tn(1.0 / 192.0),
            c(0.0),
        ];
        reinit(net, seed, |i, _| table[i])
    }
}

#[derive(Module, Debug)]
pub struct CifarConv<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub pool: MaxPool2d,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub fc3: Linear<B>,
    #[module(skip)]
    pub lrn: Lrn,
    #[module(skip)]
    pub weight_decay: f64,
}

impl<B: Backend> CifarConv<B> {
    /// Logits for crops [batch, 3, 24, 24].
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self
            .lrn
            .forward(max_pool2d(&self.pool, conv2d_relu(&self.conv1, x))); // [b, 64, 12, 12]
        let x = max_pool2d(&self.pool, self.lrn.forward(conv2d_relu(&self.conv2, x))); // [b, 64, 6, 6]
        let x = relu(linear(&self.fc1, x.flatten(1, 3))); // [b, 384]
        let x = relu(linear(&self.fc2, x)); // [b, 192]
        linear(&self.fc3, x) // [b, 10]
    }

    /// `weight_decay * l2_loss` of the hidden fc weights, added to the training loss.
    pub fn weight_penalty(&self) -> Tensor<B, 1> {
        let l2 = |w: Tensor<B, 2>| w.powi_scalar(2).sum().div_scalar(2.0);
        (l2(self.fc1.weight.val()) + l2(self.fc2.weight.val())).mul_scalar(self.weight_decay)
    }
}
