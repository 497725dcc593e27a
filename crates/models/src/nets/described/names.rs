//! The names a PyTorch module gives a described net's parameter layers: one table, read by
//! `levelset import` (PyTorch name to levelset's) and the other way by `levelset export`, so
//! that a round trip is exact by construction.

use super::NetDescription;
use super::spec::LayerSpec;

/// A parameter layer's PyTorch names (each a module path, the tensor's own name after it:
/// `layer1.0.conv1` + `.weight`) and its path in levelset's module (`layers.5.Conv2d`). An
/// import reads any of the PyTorch names; an export writes the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNames {
    pub pytorch: Vec<String>,
    pub levelset: String,
}

impl LayerNames {
    /// The layer's tensors: (PyTorch's name, levelset's), for the module kind at the end of
    /// `levelset`. Normalization layers' scale and shift are PyTorch's `weight` and `bias`.
    pub fn tensors(&self) -> &'static [(&'static str, &'static str)] {
        match self.levelset.rsplit('.').next() {
            Some("BatchNorm") => &[
                ("weight", "gamma"),
                ("bias", "beta"),
                ("running_mean", "running_mean"),
                ("running_var", "running_var"),
            ],
            Some("LayerNorm" | "GroupNorm") => &[("weight", "gamma"), ("bias", "beta")],
            _ => &[("weight", "weight"), ("bias", "bias")],
        }
    }
}

impl NetDescription {
    /// Every parameter layer's names, in the module's order, the CIFAR ResNet names (where
    /// the net has them) before the positions:
    /// - by position, as nested `nn.Sequential`s name them: `3` for the fourth layer, and in a
    ///   residual block at position 3, `3.body.0`, `3.shortcut.1` (a block a module with
    ///   `body` and `shortcut` Sequentials); the same with a `layers.` prefix (a module
    ///   holding the Sequential as `layers`);
    /// - for a net shaped as the CIFAR ResNets (a stem of convolution and batch
    ///   normalization, residual blocks, a linear layer), as their common PyTorch
    ///   implementations name them: `conv1`, `bn1`, `layer{s}.{b}.conv1` .. `bn2`,
    ///   `layer{s}.{b}.shortcut.{j}`, and `linear` (or `fc`), a new stage starting at each
    ///   block whose shortcut is not the identity (after the first).
    pub fn pytorch_names(&self) -> Vec<LayerNames> {
        let mut names = Vec::new();
        let mut flat = 0;
        positions(&self.layers, "", &mut flat, &mut names);
        for (layer, alias) in names.iter_mut().zip(resnet_names(&self.layers)) {
            layer.pytorch.splice(0..0, alias);
        }
        names
    }
}

/// The parameter layers' kinds as levelset's module names them (the variant of its `Layer`).
pub(super) fn module_kind(layer: &LayerSpec) -> Option<&'static str> {
    Some(match layer {
        LayerSpec::Linear { .. } => "Linear",
        LayerSpec::Conv2d { .. } => "Conv2d",
        LayerSpec::LayerNorm { .. } => "LayerNorm",
        LayerSpec::BatchNorm { affine: _, .. } => "BatchNorm",
        LayerSpec::GroupNorm { .. } => "GroupNorm",
        _ => return None,
    })
}

/// Names by position of `layers` (a list at `prefix`), counting the module's flat entries in
/// `flat`.
fn positions(layers: &[LayerSpec], prefix: &str, flat: &mut usize, out: &mut Vec<LayerNames>) {
    for (i, layer) in layers.iter().enumerate() {
        let here = format!("{prefix}{i}");
        let at = *flat;
        *flat += 1;
        if let Some(kind) = module_kind(layer) {
            out.push(LayerNames {
                pytorch: vec![here.clone(), format!("layers.{here}")],
                levelset: format!("layers.{at}.{kind}"),
            });
        }
        if let LayerSpec::Residual { body, shortcut } = layer {
            positions(body, &format!("{here}.body."), flat, out);
            positions(shortcut, &format!("{here}.shortcut."), flat, out);
        }
    }
}

/// The CIFAR ResNet names of every parameter layer, in the module's order (none for a net
/// without residual blocks, empty lists for layers where the net is not shaped as one).
fn resnet_names(layers: &[LayerSpec]) -> Vec<Vec<String>> {
    let mut names = Vec::new();
    let mut stage = 0;
    let mut block = 0;
    let (mut stem_convs, mut stem_norms) = (0, 0);
    let mut seen_block = false;
    for layer in layers {
        match layer {
            LayerSpec::Residual { body, shortcut } => {
                if !seen_block || !shortcut.is_empty() {
                    stage += 1;
                    block = 0;
                }
                seen_block = true;
                let at = format!("layer{stage}.{block}");
                let (mut convs, mut norms) = (0, 0);
                for layer in body {
                    names.push(match layer {
                        LayerSpec::Conv2d { .. } => {
                            convs += 1;
                            vec![format!("{at}.conv{convs}")]
                        }
                        LayerSpec::BatchNorm { .. } => {
                            norms += 1;
                            vec![format!("{at}.bn{norms}")]
                        }
                        other if module_kind(other).is_some() => Vec::new(),
                        LayerSpec::Residual { .. } => return Vec::new(),
                        _ => continue,
                    });
                }
                for (j, layer) in shortcut.iter().enumerate() {
                    if module_kind(layer).is_some() {
                        names.push(vec![format!("{at}.shortcut.{j}")]);
                    }
                }
                block += 1;
            }
            LayerSpec::Conv2d { .. } if !seen_block => {
                stem_convs += 1;
                names.push(vec![format!("conv{stem_convs}")]);
            }
            LayerSpec::BatchNorm { .. } if !seen_block => {
                stem_norms += 1;
                names.push(vec![format!("bn{stem_norms}")]);
            }
            LayerSpec::Linear { .. } if seen_block => {
                names.push(vec!["linear".into(), "fc".into()]);
            }
            other if module_kind(other).is_some() => names.push(Vec::new()),
            _ => {}
        }
    }
    // A net without residual blocks is not shaped as a ResNet: its first convolutions are not
    // a stem's `conv1`, and an export names them by position.
    if !seen_block {
        return Vec::new();
    }
    names
}
