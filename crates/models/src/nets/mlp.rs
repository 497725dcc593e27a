//! Fully connected networks: the paper's 1-4-4-1 polynomial nets, deep linear nets,
//! one-hidden-layer ReLU nets and Appendix E's bias-free 2-3-2 net are all this one config with
//! different widths, activations and bias settings, each a named preset of a layer-by-layer
//! description with flat inputs, built as every described net is.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::described::{Described, DescribedConfig, LayerSpec, NetDescription, Shape};
use crate::init::Init;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Sigmoid,
}

impl Activation {
    /// The activation as a described layer; none for the identity.
    fn layer(self) -> Option<LayerSpec> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(LayerSpec::Relu),
            Activation::Sigmoid => Some(LayerSpec::Sigmoid),
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

    /// The net layer by layer: a `linear` layer per pair of widths, each followed by the
    /// hidden activation (the output activation after the last). The net's `weights` and
    /// `biases` draw every layer's, except that with `fan_in_scaled` each layer draws its own
    /// weights, divided by sqrt(its fan-in).
    pub fn description(&self) -> NetDescription {
        let last = self.widths.len().saturating_sub(2);
        let layers = self
            .widths
            .windows(2)
            .enumerate()
            .flat_map(|(i, w)| {
                let linear = LayerSpec::Linear {
                    features: w[1],
                    bias: self.bias,
                    weights: self
                        .fan_in_scaled
                        .then(|| self.weight_init.scaled(1.0 / (w[0] as f32).sqrt())),
                    biases: None,
                    weight_decay: 0.0,
                };
                let activation = if i == last { self.output } else { self.hidden };
                std::iter::once(linear).chain(activation.layer())
            })
            .collect();
        NetDescription {
            layers,
            weights: (!self.fan_in_scaled).then_some(self.weight_init),
            biases: self.bias.then_some(self.bias_init),
        }
    }

    /// The description for inputs of `widths[0]` features and `widths[last]` outputs.
    pub fn described(&self) -> Result<DescribedConfig, String> {
        self.validate()?;
        let outputs = *self.widths.last().expect("validated: two widths at least");
        DescribedConfig::new(self.description(), Shape::Flat(self.widths[0]), outputs)
    }

    /// The net, its parameters drawn from `seed`; the config must have passed
    /// [`MlpConfig::validate`].
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
        self.described()
            .expect("validated: the MLP's description fits its widths")
            .init(seed, device)
    }
}
