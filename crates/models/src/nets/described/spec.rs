//! The layers a description is written in: what `{ kind = "...", ... }` means in `[task.net]`.

use serde::{Deserialize, Serialize};

use crate::init::Init;

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

pub(crate) fn yes() -> bool {
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
    /// Batch normalization over the channels of an image (the features of a flat input),
    /// PyTorch's `BatchNorm2d` (`BatchNorm1d`): a learned scale and shift per channel (without
    /// `affine`, none), and running statistics that are not coordinates of the landscape
    /// (which statistics an evaluation uses is the task's `[bn] stats`).
    #[serde(alias = "batch_norm2d")]
    BatchNorm {
        /// How far one training batch moves the running statistics (PyTorch's convention:
        /// `running = (1 - momentum) * running + momentum * batch`).
        #[serde(default = "batch_norm_momentum")]
        momentum: f64,
        #[serde(default = "layer_norm_epsilon")]
        epsilon: f64,
        #[serde(default = "yes")]
        affine: bool,
    },
    /// Group normalization of an image's channels in `groups` groups (PyTorch's `GroupNorm`):
    /// per example, so it has no running statistics.
    GroupNorm {
        groups: usize,
        #[serde(default = "layer_norm_epsilon")]
        epsilon: f64,
        #[serde(default = "yes")]
        affine: bool,
    },
    /// The mean of each channel over the image: `[c, h, w]` becomes `c` features.
    GlobalAvgPool,
    /// A residual block: the sum of `body` and `shortcut` applied to the same input (an
    /// empty `shortcut` is the identity). Blocks nest.
    Residual {
        body: Vec<LayerSpec>,
        #[serde(default)]
        shortcut: Vec<LayerSpec>,
    },
    /// Every `stride`-th row and column, from the first (`x[:, :, ::stride, ::stride]`): the
    /// subsampling of He et al.'s parameter-free shortcut (option A).
    Subsample {
        stride: usize,
    },
    /// `before` and `after` channels of zeros around the image's channels: the channel
    /// padding of option A.
    PadChannels {
        before: usize,
        after: usize,
    },
}

fn one() -> usize {
    1
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn batch_norm_momentum() -> f64 {
    0.1
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
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::GroupNorm { .. } => "group_norm",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::Residual { .. } => "residual",
            LayerSpec::Subsample { .. } => "subsample",
            LayerSpec::PadChannels { .. } => "pad_channels",
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
    pub(super) fn weight_decay(&self) -> f64 {
        match *self {
            LayerSpec::Linear { weight_decay, .. } | LayerSpec::Conv2d { weight_decay, .. } => {
                weight_decay
            }
            _ => 0.0,
        }
    }

    /// Whether the layer keeps running statistics (a `batch_norm`, or a block holding one).
    pub fn has_running_statistics(&self) -> bool {
        match self {
            LayerSpec::BatchNorm { .. } => true,
            LayerSpec::Residual { body, shortcut } => body
                .iter()
                .chain(shortcut)
                .any(LayerSpec::has_running_statistics),
            _ => false,
        }
    }

    /// Why a layer kind that parses is not built.
    pub(crate) fn unsupported(&self) -> Option<&'static str> {
        match self {
            LayerSpec::Lstm { .. } | LayerSpec::Embedding { .. } => Some(
                "embedding and lstm layers make language models, described in a ptb task's \
                 [task.net] (task.kind = \"ptb\"); an image task's net is feed-forward",
            ),
            _ => None,
        }
    }
}
