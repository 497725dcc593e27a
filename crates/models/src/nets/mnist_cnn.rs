//! The paper's MNIST convnet (the TensorFlow "Deep MNIST for experts" model): a named preset
//! of a layer-by-layer description, built as every described net is.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::described::{
    Described, DescribedConfig, LayerSpec, NamedPadding, NetDescription, Padding,
};
use crate::init::Init;

/// MNIST's images: one channel, 28x28.
pub const MNIST_INPUT: [usize; 3] = [1, 28, 28];

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

    /// The net layer by layer: two 5x5 convolutions with ReLU and 2x2 max-pooling, a hidden
    /// layer with dropout, ten logits; weights truncated normal with std 0.1 and biases 0.1,
    /// as the authors' code.
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

    /// The description for MNIST's images and ten classes.
    pub fn described(&self) -> DescribedConfig {
        DescribedConfig::new(self.description(), MNIST_INPUT, 10)
            .expect("the MNIST preset's description fits MNIST's images")
    }

    /// The net, its parameters drawn from `seed`.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
        self.described().init(seed, device)
    }

    /// The names the net's parameter layers had before it was built from its description
    /// (`conv1.weight`, ...), in the order of its parameter layers; checkpoints of that time
    /// and PyTorch modules with these attributes load by them.
    pub fn field_names(&self) -> &'static [&'static str] {
        &["conv1", "conv2", "fc1", "fc2"]
    }
}
