//! Fully connected networks: the paper's 1-4-4-1 polynomial nets, deep linear nets,
//! one-hidden-layer ReLU nets and Appendix E's bias-free 2-3-2 net are all this one module
//! with different widths, activations and bias settings.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::layers::{linear, sigmoid};
use super::stacked;
use crate::flat::Stacked;
use crate::init::{Init, reinit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Sigmoid,
}

impl Activation {
    fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::Sigmoid => sigmoid(x),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Layer widths, input first, output last (`[1, 4, 4, 1]` for the polynomial nets).
    pub widths: Vec<usize>,
    pub hidden: Activation,
    pub output: Activation,
    pub bias: bool,
    /// Distribution of the weights.
    pub weight_init: Init,
    /// Distribution of the biases (ignored when `bias` is false).
    pub bias_init: Init,
    /// Divide each layer's weight distribution by sqrt(fan-in) (He / LeCun scaling), so one
    /// `weight_init` keeps activations the same size through layers of any width.
    #[serde(default)]
    pub fan_in_scaled: bool,
}

impl MlpConfig {
    /// The authors' quadratic-task net: sigmoid on every layer, output included, and no
    /// biases (their script creates bias variables but never uses them); weights U(-1, 1).
    pub fn quadratic() -> Self {
        Self {
            bias: false,
            ..Self::polynomial(Activation::Sigmoid)
        }
    }

    /// [`MlpConfig::quadratic`] with biases U(-1, 1) on every layer, as the cubic net has.
    pub fn quadratic_biased() -> Self {
        Self::polynomial(Activation::Sigmoid)
    }

    /// The cubic-task net: sigmoid hidden layers with biases, linear output.
    pub fn cubic() -> Self {
        Self::polynomial(Activation::Identity)
    }

    fn polynomial(output: Activation) -> Self {
        let u = Init::Uniform {
            low: -1.0,
            high: 1.0,
        };
        Self {
            widths: vec![1, 4, 4, 1],
            hidden: Activation::Sigmoid,
            output,
            bias: true,
            weight_init: u,
            bias_init: u,
            fan_in_scaled: false,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.widths.len() < 2 {
            return Err(format!(
                "widths needs at least input and output sizes, got {:?}",
                self.widths
            ));
        }
        if self.widths.contains(&0) {
            return Err(format!("widths must be positive, got {:?}", self.widths));
        }
        Ok(())
    }

    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Mlp<B> {
        let layers = self
            .widths
            .windows(2)
            .map(|w| {
                LinearConfig::new(w[0], w[1])
                    .with_bias(self.bias)
                    .init(device)
            })
            .collect();
        let mlp = Mlp {
            layers,
            hidden: self.hidden,
            output: self.output,
        };
        reinit(mlp, seed, |_, dims| match dims {
            [_] => self.bias_init,
            // Burn's Linear weight is [d_in, d_out].
            [fan_in, _] if self.fan_in_scaled => {
                self.weight_init.scaled(1.0 / (*fan_in as f32).sqrt())
            }
            _ => self.weight_init,
        })
    }
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub layers: Vec<Linear<B>>,
    #[module(skip)]
    pub hidden: Activation,
    #[module(skip)]
    pub output: Activation,
}

impl<B: Backend> Mlp<B> {
    /// [batch, d_in] -> [batch, d_out]
    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let act = if i == last { self.output } else { self.hidden };
            x = act.apply(linear(layer, x));
        }
        x
    }
}

impl<B: Backend> Stacked<Mlp<B>> {
    /// All `k` models on the same inputs: [batch, d_in] -> [k, batch, d_out]
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        let net = &self.module;
        let last = net.layers.len() - 1;
        let mut x = x.unsqueeze::<3>(); // [1, batch, d_in], shared
        for (i, layer) in net.layers.iter().enumerate() {
            let act = if i == last { net.output } else { net.hidden };
            x = act.apply(stacked::linear(layer, x, self.k));
        }
        x
    }
}
