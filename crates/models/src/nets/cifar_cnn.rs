//! The TensorFlow CIFAR-10 tutorial convnet the paper used (24x24 crops, LRN): a named preset
//! of a layer-by-layer description, built as every described net is.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::described::{
    Described, DescribedConfig, LayerSpec, NamedPadding, NetDescription, Padding,
};
use super::lrn::Lrn;
use crate::init::Init;

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

    /// The net layer by layer, with the tutorial's initialization table (weights truncated
    /// normal, biases constant, per layer), its SAME pooling and its weight decay on the two
    /// hidden fully connected layers.
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

    /// The description for 24x24 crops and ten classes.
    pub fn described(&self) -> DescribedConfig {
        DescribedConfig::new(self.description(), [3, CIFAR_CROP, CIFAR_CROP], 10)
            .expect("the CIFAR-10 preset's description fits its crops")
    }

    /// The net, its parameters drawn from `seed`.
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
        self.described().init(seed, device)
    }

    /// The names the net's parameter layers had before it was built from its description,
    /// in the order of its parameter layers (see `MnistConvConfig::field_names`).
    pub fn field_names(&self) -> &'static [&'static str] {
        &["conv1", "conv2", "fc1", "fc2", "fc3"]
    }
}
