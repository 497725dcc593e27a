//! Where the hidden units of a network live in its flat parameter vector: for every layer
//! whose units can be permuted without changing the function, the parameter axes indexed by
//! those units.
//!
//! A residual stream is one group: the channels a block's body and shortcut add together
//! must be permuted alike, so every block of a stage that adds to the stream (its last
//! convolution and BatchNorm, a projection shortcut, the next blocks' first convolutions)
//! shares one order. He et al.'s parameter-free shortcut (option A) pads a stream's channels
//! with zeros into a wider one: the wider stream's middle channels are the narrower stream's
//! and follow its order ([`Tie`]); the rest permute among themselves.

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

/// Units `offset..offset + len` of a group that are another's units carried through (a
/// zero-padded shortcut): they follow group `to`'s order, or keep theirs where `to` is
/// `None` (units that cannot move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tie {
    pub to: Option<usize>,
    pub offset: usize,
    pub len: usize,
}

/// The units of one hidden layer (or the channels of one convolution, or of a residual
/// stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub size: usize,
    pub uses: Vec<Use>,
    pub tie: Option<Tie>,
}

impl Group {
    /// Whether unit `u` is one of the group's own (not carried from another group).
    pub fn free(&self, u: usize) -> bool {
        self.tie
            .is_none_or(|tie| u < tie.offset || u >= tie.offset + tie.len)
    }
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
                 described nets, residual nets), not language models (an LSTM's units are not \
                 yet matched)"
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

/// The groups of a described net, in the order their units first appear.
fn described(layers: &[LayerSpec]) -> Result<Vec<Group>, String> {
    let mut walk = Walk::default();
    let input = walk.node(None, true);
    let output = walk.layers(layers, input, "layers")?;
    // The last layer's units are the classes, which keep their order.
    let output = walk.find(output);
    walk.nodes[output].fixed = true;
    walk.groups()
}

/// A group while the walk may still merge it with others (union-find).
#[derive(Debug, Default)]
struct Node {
    parent: usize,
    size: Option<usize>,
    uses: Vec<Use>,
    /// Units carried from another node: (node, offset).
    tie: Option<(usize, usize)>,
    /// Units that cannot move: the input's features, the classes, what is added to them.
    fixed: bool,
}

/// One walk over a description, in the order the module holds its parameters (a block's
/// body, then its shortcut).
#[derive(Debug, Default)]
struct Walk {
    nodes: Vec<Node>,
    param: usize,
}

impl Walk {
    fn node(&mut self, size: Option<usize>, fixed: bool) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            parent: id,
            size,
            fixed,
            ..Node::default()
        });
        id
    }

    fn find(&mut self, mut n: usize) -> usize {
        while self.nodes[n].parent != n {
            let grand = self.nodes[self.nodes[n].parent].parent;
            self.nodes[n].parent = grand;
            n = grand;
        }
        n
    }

    fn uses(&mut self, node: usize, uses: impl IntoIterator<Item = Use>) {
        let root = self.find(node);
        self.nodes[root].uses.extend(uses);
    }

    /// The units flowing out of `layers` applied to units `input`; `path` names the list in
    /// errors (`layers[3].body`).
    fn layers(&mut self, layers: &[LayerSpec], input: usize, path: &str) -> Result<usize, String> {
        let mut units = input;
        for (i, layer) in layers.iter().enumerate() {
            let at = || format!("{path}[{i}] ({})", layer.name());
            units = match *layer {
                LayerSpec::Linear { features, bias, .. } => {
                    self.parameter_layer(units, features, bias, (1, 0))
                }
                LayerSpec::Conv2d {
                    channels,
                    bias,
                    groups: 1,
                    ..
                } => self.parameter_layer(units, channels, bias, (0, 1)),
                LayerSpec::Conv2d { .. } => {
                    return Err(format!(
                        "weight matching does not support grouped convolutions ({}): their \
                         channels cannot be permuted freely",
                        at()
                    ));
                }
                LayerSpec::Lrn { .. } => {
                    return Err(format!(
                        "weight matching does not support local response normalization ({}): \
                         it mixes neighbouring channels",
                        at()
                    ));
                }
                LayerSpec::GroupNorm { .. } => {
                    return Err(format!(
                        "weight matching does not support group normalization ({}): it \
                         normalizes fixed groups of channels",
                        at()
                    ));
                }
                LayerSpec::Lstm { .. } | LayerSpec::Embedding { .. } => {
                    return Err(format!(
                        "weight matching does not support {} layers ({})",
                        layer.name(),
                        at()
                    ));
                }
                LayerSpec::BatchNorm { affine: false, .. } => units,
                LayerSpec::LayerNorm { .. } | LayerSpec::BatchNorm { .. } => {
                    // Its scale and shift [features] follow the units they normalize (a batch
                    // normalization's running statistics are not in the flat vector: every
                    // point's are recomputed from its coordinates, or interpolated between the
                    // endpoints' recomputed ones).
                    let param = self.param;
                    self.uses(
                        units,
                        [0, 1].map(|k| Use {
                            param: param + k,
                            axis: 0,
                        }),
                    );
                    self.param += 2;
                    units
                }
                LayerSpec::Residual {
                    ref body,
                    ref shortcut,
                } => {
                    let body = self.layers(body, units, &format!("{path}[{i}].body"))?;
                    let shortcut =
                        self.layers(shortcut, units, &format!("{path}[{i}].shortcut"))?;
                    self.merge(body, shortcut)
                        .map_err(|e| format!("{}: {e}", at()))?
                }
                LayerSpec::PadChannels { before, after } => {
                    let root = self.find(units);
                    let Some(size) = self.nodes[root].size else {
                        return Err(format!(
                            "weight matching does not support padding the input's channels ({})",
                            at()
                        ));
                    };
                    let padded = self.node(Some(before + size + after), false);
                    self.nodes[padded].tie = Some((root, before));
                    padded
                }
                LayerSpec::MaxPool2d { .. }
                | LayerSpec::AvgPool2d { .. }
                | LayerSpec::Relu
                | LayerSpec::Sigmoid
                | LayerSpec::Tanh
                | LayerSpec::Gelu
                | LayerSpec::Dropout { .. }
                | LayerSpec::Flatten
                | LayerSpec::GlobalAvgPool
                | LayerSpec::Subsample { .. } => units,
            };
        }
        Ok(units)
    }

    /// A linear or convolution layer from units `input` to `size` new ones: its weight's
    /// `axes` are (output, input).
    fn parameter_layer(
        &mut self,
        input: usize,
        size: usize,
        bias: bool,
        (out_axis, in_axis): (usize, usize),
    ) -> usize {
        let param = self.param;
        self.uses(
            input,
            [Use {
                param,
                axis: in_axis,
            }],
        );
        let output = self.node(Some(size), false);
        self.uses(
            output,
            [Use {
                param,
                axis: out_axis,
            }],
        );
        if bias {
            self.uses(
                output,
                [Use {
                    param: param + 1,
                    axis: 0,
                }],
            );
        }
        self.param += 1 + usize::from(bias);
        output
    }

    /// One group for the units a residual block adds together.
    fn merge(&mut self, a: usize, b: usize) -> Result<usize, String> {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return Ok(a);
        }
        if let (Some(x), Some(y)) = (self.nodes[a].size, self.nodes[b].size)
            && x != y
        {
            return Err(format!("its body gives {x} units and its shortcut {y}"));
        }
        if self.nodes[a].tie.is_some() && self.nodes[b].tie.is_some() {
            return Err("weight matching does not support adding two zero-padded streams".into());
        }
        // The earlier node stays the root, so groups keep the order their units appear in.
        let (keep, gone) = (a.min(b), a.max(b));
        let taken = std::mem::take(&mut self.nodes[gone]);
        self.nodes[gone].parent = keep;
        let node = &mut self.nodes[keep];
        node.size = node.size.or(taken.size);
        node.uses.extend(taken.uses);
        node.tie = node.tie.or(taken.tie);
        node.fixed |= taken.fixed;
        Ok(keep)
    }

    /// The permutable groups: the walk's merged nodes that can move, with their uses sorted
    /// by parameter, numbered in order of appearance.
    fn groups(mut self) -> Result<Vec<Group>, String> {
        let roots: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.find(n) == n)
            .collect();
        let movable: Vec<usize> = roots
            .iter()
            .copied()
            .filter(|&n| !self.nodes[n].fixed && !self.nodes[n].uses.is_empty())
            .collect();
        let mut groups = Vec::with_capacity(movable.len());
        for &n in &movable {
            let size = self.nodes[n].size.expect("a parameter layer's output");
            let tie = match self.nodes[n].tie {
                None => None,
                Some((to, offset)) => {
                    let to = self.find(to);
                    if to == n {
                        return Err("a residual block adds a stream to its own zero padding: \
                                    weight matching cannot order it"
                            .into());
                    }
                    let len = self.nodes[to]
                        .size
                        .ok_or("padding of the input's channels")?;
                    Some(Tie {
                        to: movable.iter().position(|&m| m == to),
                        offset,
                        len,
                    })
                }
            };
            let mut uses = std::mem::take(&mut self.nodes[n].uses);
            uses.sort_by_key(|u| (u.param, u.axis));
            groups.push(Group { size, uses, tie });
        }
        for start in 0..groups.len() {
            let mut at = start;
            for _ in 0..=groups.len() {
                match groups[at].tie.and_then(|t| t.to) {
                    Some(next) => at = next,
                    None => break,
                }
                if at == start {
                    return Err("zero-padded streams that carry each other's channels".into());
                }
            }
        }
        Ok(groups)
    }
}

/// The shape of every float parameter of `module`, in flat-vector order.
pub(crate) fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    levelset_models::flat::param_shapes(module)
}
