//! Where the hidden units of a network live in its flat parameter vector: for every layer
//! whose units can be permuted without changing the function, the parameter axes indexed by
//! those units.

use burn::module::Module;
use burn::prelude::*;
use levelset_models::Architecture;
use levelset_models::nets::described::LayerSpec;

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
    // The paper's MLPs and convnets are built from their descriptions, so one walk over the
    // layers finds every feed-forward net's groups.
    let groups = match architecture.described() {
        Some(config) => described(&config.net.layers)?,
        None => {
            return Err(
                "weight matching supports feed-forward networks (the paper's MLPs and convnets, \
                 described nets), not language models (an LSTM's units are not yet matched)"
                    .into(),
            );
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

/// The groups of a described net: the outputs of every linear or convolution layer but the
/// last, used by its weight (output axis) and bias, by any layer norm after it, and by the next
/// such layer's weight (input axis; after a flatten, each channel owns a block of it).
fn described(layers: &[LayerSpec]) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    let mut param = 0;
    // The units of the last linear or convolution layer, still waiting for their next use.
    let mut open: Option<Group> = None;
    for (i, layer) in layers.iter().enumerate() {
        let (size, bias, out_axis, in_axis) = match *layer {
            LayerSpec::Linear { features, bias, .. } => (features, bias, 1, 0),
            LayerSpec::Conv2d {
                channels,
                bias,
                groups: 1,
                ..
            } => (channels, bias, 0, 1),
            LayerSpec::Conv2d { .. } => {
                return Err(format!(
                    "weight matching does not support grouped convolutions (layers[{i}]): \
                     their channels cannot be permuted freely"
                ));
            }
            LayerSpec::Lrn { .. } => {
                return Err(format!(
                    "weight matching does not support local response normalization \
                     (layers[{i}]): it mixes neighbouring channels"
                ));
            }
            LayerSpec::Residual { .. }
            | LayerSpec::Subsample { .. }
            | LayerSpec::PadChannels { .. } => {
                return Err(format!(
                    "weight matching does not yet support residual nets (layers[{i}], {}): a \
                     residual stream's channels are one group across blocks",
                    layer.name()
                ));
            }
            LayerSpec::GroupNorm { .. } => {
                return Err(format!(
                    "weight matching does not support group normalization (layers[{i}]): it \
                     normalizes fixed groups of channels"
                ));
            }
            LayerSpec::BatchNorm { affine: false, .. } => continue,
            LayerSpec::LayerNorm { .. } | LayerSpec::BatchNorm { .. } => {
                // Its scale and shift [features] follow the units they normalize (a batch
                // normalization's running statistics are not in the flat vector).
                if let Some(group) = open.as_mut() {
                    group.uses.push(Use { param, axis: 0 });
                    group.uses.push(Use {
                        param: param + 1,
                        axis: 0,
                    });
                }
                param += 2;
                continue;
            }
            _ => continue,
        };
        if let Some(mut group) = open.take() {
            group.uses.push(Use {
                param,
                axis: in_axis,
            });
            groups.push(group);
        }
        let mut uses = vec![Use {
            param,
            axis: out_axis,
        }];
        if bias {
            uses.push(Use {
                param: param + 1,
                axis: 0,
            });
        }
        param += 1 + usize::from(bias);
        open = Some(Group { size, uses });
    }
    // The last layer's units are the classes, which keep their order.
    Ok(groups)
}

/// The shape of every float parameter of `module`, in flat-vector order.
pub(crate) fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    levelset_models::flat::param_shapes(module)
}
