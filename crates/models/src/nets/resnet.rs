//! He et al. (2016)'s CIFAR ResNets (section 4.2) as a preset of a layer-by-layer
//! description: a 3x3 convolution of 16 channels, batch normalization and ReLU; three stages
//! of `n` basic blocks at 16, 32 and 64 channels (times `width`), the first block of stages 2
//! and 3 striding 2; global average pooling; a linear layer. `depth = 6n + 2`.
//!
//! The shortcut of a block that changes the shape is option A (parameter-free: every second
//! row and column, zero channels padded half before and half after, as He et al. and the
//! most used PyTorch implementation) or option B (a 1x1 convolution of stride 2 and batch
//! normalization: the "projection shortcut" of Garipov et al.'s and Ainsworth et al.'s
//! ResNet-20).

use serde::{Deserialize, Serialize};

use super::described::{LayerSpec, NetDescription, Padding};
use crate::init::Init;

/// A residual block's shortcut when the block changes the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shortcut {
    /// Subsample and pad channels with zeros: no parameters.
    A,
    /// A 1x1 convolution of stride 2 and batch normalization.
    B,
}

/// `[task.net]` of a CIFAR ResNet: `preset = "resnet"` with its depth, or `preset =
/// "resnet20"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResnetConfig {
    pub preset: ResnetPreset,
    /// 6n + 2: 20, 32, 44, 56, 110, ... (absent: the preset's name says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// Channel multiplier: stages of 16, 32 and 64 times `width` channels.
    #[serde(default = "one")]
    pub width: usize,
    #[serde(default = "projection")]
    pub shortcut: Shortcut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResnetPreset {
    Resnet,
    Resnet20,
}

fn one() -> usize {
    1
}

fn projection() -> Shortcut {
    Shortcut::B
}

/// The deepest and widest nets a preset builds: each sizes an allocation.
const MAX_DEPTH: usize = 1202;
const MAX_WIDTH: usize = 64;

impl ResnetConfig {
    /// He et al.'s ResNet of `depth` layers with the given shortcut, width 1.
    pub fn new(depth: usize, shortcut: Shortcut) -> Self {
        Self {
            preset: ResnetPreset::Resnet,
            depth: Some(depth),
            width: 1,
            shortcut,
        }
    }

    /// The depth, checked: 6n + 2 with n >= 1.
    pub fn depth(&self) -> Result<usize, String> {
        let depth = match (self.preset, self.depth) {
            (ResnetPreset::Resnet20, None | Some(20)) => 20,
            (ResnetPreset::Resnet20, Some(other)) => {
                return Err(format!(
                    "depth: preset \"resnet20\" has depth 20, got depth = {other} (write \
                     preset = \"resnet\" for another depth)"
                ));
            }
            (ResnetPreset::Resnet, Some(depth)) => depth,
            (ResnetPreset::Resnet, None) => {
                return Err(
                    "depth: preset \"resnet\" needs a depth (6n + 2: 20, 32, 44, 56, 110)".into(),
                );
            }
        };
        if depth < 8 || (depth - 2) % 6 != 0 || depth > MAX_DEPTH {
            return Err(format!(
                "depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ... up to \
                 {MAX_DEPTH}), got {depth}"
            ));
        }
        Ok(depth)
    }

    /// The net layer by layer, for `classes` outputs.
    pub fn description(&self, classes: usize) -> Result<NetDescription, String> {
        let blocks = (self.depth()? - 2) / 6;
        if self.width == 0 || self.width > MAX_WIDTH {
            return Err(format!(
                "width must be in 1..={MAX_WIDTH}, got {}",
                self.width
            ));
        }
        let bn = || LayerSpec::BatchNorm {
            momentum: 0.1,
            epsilon: 1e-5,
            affine: true,
        };
        let mut layers = vec![conv(16 * self.width, 3, 1, 3), bn(), LayerSpec::Relu];
        let mut channels = 16 * self.width;
        for stage in 0..3 {
            let planes = (16 << stage) * self.width;
            for block in 0..blocks {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                let body = vec![
                    conv(planes, 3, stride, channels),
                    bn(),
                    LayerSpec::Relu,
                    conv(planes, 3, 1, planes),
                    bn(),
                ];
                let shortcut = if stride == 1 && channels == planes {
                    Vec::new()
                } else {
                    match self.shortcut {
                        Shortcut::A => {
                            let pad = (planes - channels) / 2;
                            vec![
                                LayerSpec::Subsample { stride },
                                LayerSpec::PadChannels {
                                    before: pad,
                                    after: planes - channels - pad,
                                },
                            ]
                        }
                        Shortcut::B => vec![conv(planes, 1, stride, channels), bn()],
                    }
                };
                layers.push(LayerSpec::Residual { body, shortcut });
                layers.push(LayerSpec::Relu);
                channels = planes;
            }
        }
        layers.push(LayerSpec::GlobalAvgPool);
        layers.push(LayerSpec::Linear {
            features: classes,
            bias: true,
            weights: Some(he_normal(channels)),
            biases: None,
            weight_decay: 0.0,
        });
        Ok(NetDescription {
            layers,
            weights: None,
            biases: None,
        })
    }
}

/// He et al.'s initialization (`kaiming_normal_`, fan in), as the PyTorch implementations
/// draw every convolution and the last layer.
fn he_normal(fan_in: usize) -> Init {
    Init::Normal {
        std: (2.0 / fan_in as f64).sqrt() as f32,
    }
}

/// A square convolution without bias (batch normalization follows), padded to keep the
/// side at stride 1, over `inputs` channels.
fn conv(channels: usize, kernel: usize, stride: usize, inputs: usize) -> LayerSpec {
    LayerSpec::Conv2d {
        channels,
        kernel,
        stride,
        padding: Padding::Pixels(kernel / 2),
        groups: 1,
        bias: false,
        weights: Some(he_normal(inputs * kernel * kernel)),
        biases: None,
        weight_decay: 0.0,
    }
}
