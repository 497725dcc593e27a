//! Checkpoints of the paper's convnets and MLPs written before the nets were built from their
//! descriptions: their parameters are named after the nets' fields (`conv1.weight`,
//! `fc2.bias`; an MLP's `layers.1.weight` for its second linear layer), where a described net
//! names them by layer position (`layers.0.Conv2d.weight`, `layers.2.Linear.weight`).
//! The parameters are the same and in the same order, so such a checkpoint loads through a
//! module with those fields and is copied over, parameter by parameter.

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, RecorderError};

use crate::flat::{flatten, unflatten};
use crate::landscape::Architecture;
use crate::nets::DescribedConfig;
use crate::nets::described::Layer;

/// The paper's MNIST convnet's parameter layers, as it named them.
#[derive(Module, Debug)]
struct MnistFields<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// The paper's CIFAR-10 convnet's parameter layers, as it named them.
#[derive(Module, Debug)]
struct CifarFields<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    fc3: Linear<B>,
}

/// An MLP's linear layers, as it named them.
#[derive(Module, Debug)]
struct MlpFields<B: Backend> {
    layers: Vec<Linear<B>>,
}

/// The parameter layers of `config`'s net, in order (their values are overwritten).
fn parameter_layers<B: Backend>(config: &DescribedConfig, device: &B::Device) -> Vec<Layer<B>> {
    let mut net = config.init::<B>(0, device);
    config
        .net
        .parameter_layers()
        .into_iter()
        .map(|(i, _)| net.layers[i].take().expect("a parameter layer"))
        .collect()
}

fn conv<B: Backend>(layer: Layer<B>) -> Conv2d<B> {
    match layer {
        Layer::Conv2d(conv) => conv,
        _ => unreachable!("the preset's description has a convolution here"),
    }
}

fn linear<B: Backend>(layer: Layer<B>) -> Linear<B> {
    match layer {
        Layer::Linear(linear) => linear,
        _ => unreachable!("the preset's description has a linear layer here"),
    }
}

/// Loads the parameter file `path`, written with the paper's nets' field names, into
/// `template`; `None` when `architecture` is not one of those nets.
pub(crate) fn load<B: Backend, M: Module<B>>(
    template: M,
    architecture: &Architecture,
    path: &Path,
    device: &B::Device,
) -> Option<Result<M, RecorderError>> {
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let path = path.to_path_buf();
    let flat = match architecture {
        Architecture::MnistConv(config) => {
            let mut layers = parameter_layers::<B>(&config.described(), device).into_iter();
            let fields = MnistFields {
                conv1: conv(layers.next()?),
                conv2: conv(layers.next()?),
                fc1: linear(layers.next()?),
                fc2: linear(layers.next()?),
            };
            fields
                .load_file(path, &recorder, device)
                .map(|f| flatten(&f))
        }
        Architecture::CifarConv(config) => {
            let mut layers = parameter_layers::<B>(&config.described(), device).into_iter();
            let fields = CifarFields {
                conv1: conv(layers.next()?),
                conv2: conv(layers.next()?),
                fc1: linear(layers.next()?),
                fc2: linear(layers.next()?),
                fc3: linear(layers.next()?),
            };
            fields
                .load_file(path, &recorder, device)
                .map(|f| flatten(&f))
        }
        Architecture::Mlp(config) => {
            let layers = parameter_layers::<B>(&config.described().ok()?, device);
            let fields = MlpFields {
                layers: layers.into_iter().map(linear).collect(),
            };
            fields
                .load_file(path, &recorder, device)
                .map(|f| flatten(&f))
        }
        _ => return None,
    };
    Some(flat.map(|flat| unflatten(template, flat)))
}
