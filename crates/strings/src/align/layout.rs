//! Where the hidden units of a network live in its flat parameter vector: for every layer
//! whose units can be permuted without changing the function, the parameter axes indexed by
//! those units.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use levelset_models::Architecture;

/// An axis of one parameter tensor that runs over a group's units, each unit owning a
/// contiguous block of that axis (one entry, or a channel's `h * w` block of a flattened
/// feature map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Use {
    pub param: usize,
    pub axis: usize,
}

/// The units of one hidden layer (or the channels of one convolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub size: usize,
    pub uses: Vec<Use>,
}

/// The permutable groups of `architecture`, checked against the parameter shapes of a module
/// built for it.
pub(crate) fn groups(
    architecture: &Architecture,
    shapes: &[Vec<usize>],
) -> Result<Vec<Group>, String> {
    let groups = match architecture {
        Architecture::Mlp(config) => {
            // Per layer: weight [d_in, d_out], then its bias [d_out] when there is one.
            let per_layer = if config.bias { 2 } else { 1 };
            let weight = |l: usize| l * per_layer;
            (1..config.widths.len() - 1)
                .map(|h| {
                    let (incoming, outgoing) = (weight(h - 1), weight(h));
                    let uses: &[(usize, usize)] = if config.bias {
                        &[(incoming, 1), (incoming + 1, 0), (outgoing, 0)]
                    } else {
                        &[(incoming, 1), (outgoing, 0)]
                    };
                    group(config.widths[h], uses)
                })
                .collect()
        }
        // conv1 weight [c1, 1, k, k] and bias, conv2 weight [c2, c1, k, k] and bias, fc1
        // weight [c2 * 7 * 7, hidden] (rows channel-major, as the feature map is flattened)
        // and bias, fc2 weight [hidden, 10] and bias.
        Architecture::MnistConv(config) => vec![
            group(config.conv1, &[(0, 0), (1, 0), (2, 1)]),
            group(config.conv2, &[(2, 0), (3, 0), (4, 0)]),
            group(config.hidden, &[(4, 1), (5, 0), (6, 0)]),
        ],
        Architecture::CifarConv(_) => {
            return Err(
                "weight matching does not support cifar_conv: its local response \
                        normalization mixes neighbouring channels, so channels cannot be \
                        permuted freely"
                    .into(),
            );
        }
        Architecture::LstmLm(_) => {
            return Err("weight matching supports mlp and mnist_conv networks, not lstm_lm".into());
        }
    };
    for group in &groups {
        for u in &group.uses {
            let fits = shapes
                .get(u.param)
                .and_then(|dims| dims.get(u.axis))
                .is_some_and(|&len| group.size > 0 && len % group.size == 0);
            if !fits {
                return Err(format!(
                    "the parameters (shapes {shapes:?}) do not have the layout of {architecture:?}"
                ));
            }
        }
    }
    Ok(groups)
}

/// A group of `size` units found along the `(parameter, axis)` pairs of `uses`.
fn group(size: usize, uses: &[(usize, usize)]) -> Group {
    Group {
        size,
        uses: uses
            .iter()
            .map(|&(param, axis)| Use { param, axis })
            .collect(),
    }
}

/// The shape of every float parameter of `module`, in flat-vector order.
pub(crate) fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    let mut visitor = Shapes(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

struct Shapes(Vec<Vec<usize>>);

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.shape().to_vec());
    }
}
