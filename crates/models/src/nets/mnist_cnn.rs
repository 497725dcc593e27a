//! The paper's MNIST convnet (the TensorFlow "Deep MNIST for experts" model).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::described::{LayerSpec, NamedPadding, NetDescription, Padding};
use super::dropout::dropout;
use super::layers::{conv2d_relu_max_pool2d, linear, relu_max_pool2d};
use super::stacked;
use crate::flat::Stacked;
use crate::init::{Init, reinit};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MnistConvConfig {
    pub conv1: usize,
    pub conv2: usize,
    pub hidden: usize,
    pub dropout: f64,
}

impl Default for MnistConvConfig {
    fn default() -> Self {
        Self {
            conv1: 32,
            conv2: 64,
            hidden: 1024,
            dropout: 0.5,
        }
    }
}

impl MnistConvConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.conv1 == 0 || self.conv2 == 0 || self.hidden == 0 {
            return Err("conv1, conv2 and hidden must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// The net as a layer-by-layer description: the described net it builds is this net,
    /// bit for bit (parameters, logits, training).
    pub fn description(&self) -> NetDescription {
        let conv = |channels| LayerSpec::conv2d(channels, 5, Padding::Named(NamedPadding::Same));
        let pool = || LayerSpec::MaxPool2d {
            kernel: 2,
            stride: None,
            padding: Padding::Pixels(0),
        };
        let linear = LayerSpec::linear;
        NetDescription {
            layers: vec![
                conv(self.conv1),
                LayerSpec::Relu,
                pool(),
                conv(self.conv2),
                LayerSpec::Relu,
                pool(),
                LayerSpec::Flatten,
                linear(self.hidden),
                LayerSpec::Relu,
                LayerSpec::Dropout { p: self.dropout },
                linear(10),
            ],
            weights: Some(Init::TruncatedNormal { std: 0.1 }),
            biases: Some(Init::Constant { value: 0.1 }),
        }
    }

    /// Weights truncated normal with std 0.1 and biases 0.1, as the authors' code.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> MnistConv<B> {
        let conv = |c_in, c_out| {
            Conv2dConfig::new([c_in, c_out], [5, 5])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let net = MnistConv {
            conv1: conv(1, self.conv1),
            conv2: conv(self.conv1, self.conv2),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(7 * 7 * self.conv2, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, 10).init(device),
            dropout: self.dropout,
        };
        reinit(net, seed, |_, dims| {
            if dims.len() == 1 {
                Init::Constant { value: 0.1 }
            } else {
                Init::TruncatedNormal { std: 0.1 }
            }
        })
    }
}

#[derive(Module, Debug)]
pub struct MnistConv<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub pool: MaxPool2d,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    #[module(skip)]
    pub dropout: f64,
}

impl<B: Backend> MnistConv<B> {
    /// Logits for images [batch, 1, 28, 28]; dropout only when an RNG is given (training).
    pub fn forward(&self, x: Tensor<B, 4>, rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        let x = conv2d_relu_max_pool2d(&self.conv1, &self.pool, x); // [b, c1, 14, 14]
        let x = conv2d_relu_max_pool2d(&self.conv2, &self.pool, x); // [b, c2, 7, 7]
        let x = relu(linear(&self.fc1, x.flatten(1, 3))); // [b, hidden]
        let x = match rng {
            Some(rng) => dropout(x, self.dropout, rng),
            None => x,
        };
        linear(&self.fc2, x) // [b, 10]
    }
}

impl<B: Backend> Stacked<MnistConv<B>> {
    /// Evaluation logits of all `k` models on the same images [batch, 1, 28, 28]:
    /// [k, batch, 10]
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let (net, k) = (&self.module, self.k);
        // The input is shared, so the first convolution needs no groups: its k * c1 filters
        // all read the same channel.
        let x = conv2d_relu_max_pool2d(&net.conv1, &net.pool, x); // [b, k*c1, 14, 14]
        let x = relu_max_pool2d(&net.pool, stacked::conv2d(&net.conv2, x, k)); // [b, k*c2, 7, 7]
        let [b, _, h, w] = x.dims();
        let x = x
            .reshape([b, k, net.conv2.weight.dims()[0] / k * h * w])
            .swap_dims(0, 1); // [k, b, c2*7*7]
        let x = relu(stacked::linear(&net.fc1, x, k)); // [k, b, hidden]
        stacked::linear(&net.fc2, x, k) // [k, b, 10]
    }
}
