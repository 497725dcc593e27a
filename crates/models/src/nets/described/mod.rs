//! Feed-forward image classifiers described layer by layer in the config (`[task.net]`), so
//! that a network trained elsewhere (a PyTorch `nn.Sequential`, say) can be rebuilt, imported
//! and connected. The description is checked against the input's shape before any tensor is
//! made; the net keeps one entry per described layer, so its parameter names follow the
//! description's positions (`layers.3.Linear.weight` for the fourth layer), as PyTorch's
//! `Sequential` numbers its children.

mod build;
mod names;
mod net;
mod norm;
mod shapes;
mod spec;
mod stacked;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use names::LayerNames;
pub use net::{Activations, Described, Layer, Op};
pub use norm::{BatchNorm, NormMode};
pub(crate) use shapes::{check_draws, check_size, pytorch_uniform};
pub use spec::{LayerSpec, NamedPadding, Padding};

use crate::init::Init;
use shapes::chain_shapes;

/// The shape of one example between layers, and of a net's input: written `[c, h, w]` for
/// images and as a number of features for flat inputs (a regression net's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    /// [channels, height, width]
    Image([usize; 3]),
    /// features
    Flat(usize),
}

impl From<[usize; 3]> for Shape {
    fn from(dims: [usize; 3]) -> Self {
        Shape::Image(dims)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image([c, h, w]) => write!(f, "[{c}, {h}, {w}] image"),
            Shape::Flat(n) => write!(f, "{n} features"),
        }
    }
}

/// A net's layers and how its weights and biases are first drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetDescription {
    pub layers: Vec<LayerSpec>,
    /// How weight tensors are drawn; absent: as PyTorch's default, uniform in
    /// ±1/sqrt(fan_in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Init>,
    /// How bias tensors are drawn; absent: as PyTorch's default, uniform in ±1/sqrt(fan_in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biases: Option<Init>,
}

impl NetDescription {
    /// The layers in the order of the module's entries (`Described::layers`): each residual
    /// block followed by its body's layers and then its shortcut's, written out the same way.
    pub fn flat_layers(&self) -> Vec<&LayerSpec> {
        fn push<'a>(layers: &'a [LayerSpec], out: &mut Vec<&'a LayerSpec>) {
            for layer in layers {
                out.push(layer);
                if let LayerSpec::Residual { body, shortcut } = layer {
                    push(body, out);
                    push(shortcut, out);
                }
            }
        }
        let mut out = Vec::new();
        push(&self.layers, &mut out);
        out
    }

    /// Whether every layer has a stacked form ([`crate::flat::Stacked`]): not batch
    /// normalization (its running statistics are not stacked), group normalization, residual
    /// blocks, global pooling, subsampling or channel padding.
    pub fn stacks(&self) -> bool {
        !self.flat_layers().iter().any(|layer| {
            matches!(
                layer,
                LayerSpec::BatchNorm { .. }
                    | LayerSpec::GroupNorm { .. }
                    | LayerSpec::GlobalAvgPool
                    | LayerSpec::Residual { .. }
                    | LayerSpec::Subsample { .. }
                    | LayerSpec::PadChannels { .. }
            )
        })
    }

    /// Whether a layer keeps running statistics (a `batch_norm`, here or in a block).
    pub fn has_running_statistics(&self) -> bool {
        self.layers.iter().any(LayerSpec::has_running_statistics)
    }

    /// The shape after every layer, for inputs of `input` shape (images, or features); the
    /// net must end in `classes` features (a regression net's outputs). Errors name the layer
    /// (`layers[3] (linear): ...`), inside residual blocks by their path
    /// (`layers[4].body[2] (conv2d): ...`).
    pub fn shapes(&self, input: impl Into<Shape>, classes: usize) -> Result<Vec<Shape>, String> {
        if self.layers.is_empty() {
            return Err("layers: a net needs at least one layer".into());
        }
        check_draws(self.weights, self.biases)?;
        let input = input.into();
        if let Shape::Flat(n) = input {
            check_size("the input's features", n)?;
        }
        let shapes = chain_shapes(&self.layers, "layers", input)?;
        let shape = *shapes.last().expect("at least one layer");
        if shape != Shape::Flat(classes) {
            let outputs = match input {
                Shape::Image(_) => "classes",
                Shape::Flat(_) => "outputs",
            };
            return Err(format!(
                "layers: the net ends in a {shape}, but the task has {classes} {outputs}: the \
                 last layer must give {classes} features"
            ));
        }
        Ok(shapes)
    }

    /// The positions of the layers with parameters, each with the name its parameters are
    /// stored under (`layers.{position}.{name}.weight`).
    /// Positions count the module's entries: a residual block's body and shortcut are
    /// written out after it ([`NetDescription::flat_layers`]).
    pub fn parameter_layers(&self) -> Vec<(usize, &'static str)> {
        self.flat_layers()
            .into_iter()
            .enumerate()
            .filter_map(|(i, layer)| names::module_kind(layer).map(|name| (i, name)))
            .collect()
    }
}

/// A described net and the inputs it takes: what a checkpoint of it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribedConfig {
    /// `[channels, height, width]` images, or a number of features.
    pub input: Shape,
    /// The features the net ends in: an image classifier's classes, a regression net's
    /// outputs.
    pub classes: usize,
    pub net: NetDescription,
}

impl DescribedConfig {
    /// `net` for `input` (images or features) and `classes` outputs, once its shapes check
    /// out.
    pub fn new(
        net: NetDescription,
        input: impl Into<Shape>,
        classes: usize,
    ) -> Result<Self, String> {
        let input = input.into();
        net.shapes(input, classes)?;
        Ok(Self {
            input,
            classes,
            net,
        })
    }

    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
        self.net.init(self.input, seed, device)
    }
}
