//! The networks of the paper, each a plain Burn module built from a serde config; the paper's
//! MLPs and convnets are named presets of layer-by-layer descriptions (`described`), its
//! language model of a described language model (`described_lm`).

#[cfg(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
))]
mod cast;
pub mod cifar_cnn;
pub mod described;
pub mod described_lm;
mod dropout;
mod layers;
pub mod lrn;
pub mod lstm_lm;
pub mod matmul_conv;
pub mod matmul_lstm;
pub mod mlp;
pub mod mnist_cnn;
#[cfg(test)]
mod reference;
pub mod resnet;
pub mod rule;
pub mod stacked;

pub use cifar_cnn::{CIFAR_CROP, CifarConvConfig};
pub use described::{
    Activations, Described, DescribedConfig, LayerNames, LayerSpec, NetDescription,
};
pub use described_lm::{DescribedLmConfig, LmState, LstmLm};
pub use lrn::Lrn;
pub use lstm_lm::LstmLmConfig;
pub use mlp::{Activation, MlpConfig};
pub use mnist_cnn::{MNIST_INPUT, MnistConvConfig};
pub use resnet::{ResnetConfig, Shortcut};
