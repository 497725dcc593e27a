//! The names levelset's tensors have in a PyTorch state_dict, from one table read both ways:
//! `levelset import` renames a file's tensors by it and records what it applied, `levelset
//! export` writes the recorded names back, or the table's first name for a net never
//! imported. The table is the description's ([`Architecture::pytorch_names`]); a language
//! model keeps levelset's names, which import also reads under PyTorch's word_language_model
//! example's names ([`LANGUAGE_MODEL_ALIASES`]).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use burn_store::KeyRemapper;
use levelset_models::Architecture;
use levelset_models::checkpoint::ImportedFrom;

/// BatchNorm's step counter: a buffer of PyTorch's (an int64 scalar) that no levelset tensor
/// holds, which `load_state_dict` asks for in strict mode.
pub const COUNTER: &str = "num_batches_tracked";

/// The names a language model's parts are also read under (PyTorch's word_language_model
/// example's), and levelset's.
pub const LANGUAGE_MODEL_ALIASES: [(&str, &str); 3] = [
    ("encoder", "embedding"),
    ("rnn", "lstm"),
    ("decoder", "output"),
];

/// `OLD=NEW` rules (`import --map`, `export --names`: `flag` names which in errors) as a
/// remapper, each a regex and its replacement, applied in order.
pub fn rules(flag: &str, map: &[String]) -> Result<KeyRemapper> {
    let mut remapper = KeyRemapper::new();
    for rule in map {
        let Some((from, to)) = rule.split_once('=') else {
            bail!("{flag} {rule:?}: expected OLD=NEW (a regex and its replacement)");
        };
        remapper = remapper
            .add_pattern(from, to)
            .with_context(|| format!("{flag} {rule:?}: {from:?} is not a valid regex"))?;
    }
    Ok(remapper)
}

/// One parameter tensor's PyTorch names (an export writes the first) and its full path in
/// levelset's module.
struct TensorNames {
    pytorch: Vec<String>,
    levelset: String,
}

/// Every parameter tensor of a feed-forward net, from its layers' names; none for a language
/// model.
fn tensor_names(architecture: &Architecture) -> Vec<TensorNames> {
    let layers = architecture.pytorch_names().unwrap_or_default();
    layers
        .iter()
        .flat_map(|layer| {
            layer
                .tensors()
                .iter()
                .map(move |(pytorch, levelset)| TensorNames {
                    pytorch: layer
                        .pytorch
                        .iter()
                        .map(|name| format!("{name}.{pytorch}"))
                        .collect(),
                    levelset: format!("{}.{levelset}", layer.levelset),
                })
        })
        .collect()
}

/// The renaming an import applies after `--map` (and a language model's aliases): every
/// PyTorch name of a tensor to levelset's, whole names only, so that each is renamed once
/// (levelset's names never match one of PyTorch's again).
pub fn import_names(architecture: &Architecture) -> KeyRemapper {
    let mut names = KeyRemapper::new();
    for tensor in tensor_names(architecture) {
        for name in &tensor.pytorch {
            names = names
                .add_pattern(
                    format!("^{}$", name.replace('.', r"\.")),
                    tensor.levelset.clone(),
                )
                .expect("a fixed pattern");
        }
    }
    names
}

/// How an export names a checkpoint's tensors (levelset's names, an LSTM's gates packed) and
/// which BatchNorm counters it adds.
pub struct ExportNames {
    /// levelset's name to the file's; `None`: levelset's own (a language model's).
    names: Option<HashMap<String, String>>,
    /// Whether the names are an imported file's, every one of which a tensor must take (the
    /// table also names tensors a net may lack, a BatchNorm's scale without `affine`).
    recorded: bool,
    /// The counters, by their names in the file, and their values.
    pub counters: Vec<(String, i64)>,
    /// Where the names come from, for messages.
    pub source: String,
}

impl ExportNames {
    /// The names of the file a checkpoint was imported from (`imported`, where it recorded
    /// them), else the table's: the paper's convnets' field names, a CIFAR ResNet's PyTorch
    /// names, other feed-forward nets' Sequential positions, a language model's own, and a
    /// counter of 0 for each BatchNorm.
    pub fn new(architecture: &Architecture, imported: Option<&ImportedFrom>) -> Self {
        if let Some(from) = imported.filter(|from| !from.names.is_empty()) {
            return ExportNames {
                names: Some(
                    from.names
                        .iter()
                        .map(|n| (n.levelset.clone(), n.file.clone()))
                        .collect(),
                ),
                counters: from
                    .counters
                    .iter()
                    .map(|c| (c.file.clone(), c.value))
                    .collect(),
                recorded: true,
                source: format!(
                    "the names of {}, which it was imported from",
                    from.path.display()
                ),
            };
        }
        let layers = architecture.pytorch_names().unwrap_or_default();
        let counters = layers
            .iter()
            .filter(|layer| layer.levelset.ends_with(".BatchNorm"))
            .map(|layer| (format!("{}.{COUNTER}", layer.pytorch[0]), 0))
            .collect();
        let names: Option<HashMap<String, String>> = architecture.described().map(|_| {
            tensor_names(architecture)
                .into_iter()
                .map(|t| (t.levelset, t.pytorch[0].clone()))
                .collect()
        });
        let source = match (imported, &names) {
            (Some(from), _) => format!(
                "levelset's PyTorch names: the checkpoint was imported from {} before imports \
                 recorded the file's names",
                from.path.display()
            ),
            (None, Some(_)) => "the names of the net's description".to_string(),
            (None, None) => "levelset's names for a language model's parts".to_string(),
        };
        ExportNames {
            names,
            recorded: false,
            counters,
            source,
        }
    }

    /// The counters all 0: a point that no training counted steps for (a bead between two
    /// imported endpoints), under the same names.
    pub fn uncounted(mut self) -> Self {
        for counter in &mut self.counters {
            counter.1 = 0;
        }
        self
    }

    /// The recorded names of levelset's tensors that are not among `named`.
    pub fn unused(&self, named: &[String]) -> Vec<String> {
        let (Some(names), true) = (&self.names, self.recorded) else {
            return Vec::new();
        };
        let mut unused: Vec<String> = names
            .keys()
            .filter(|name| !named.contains(*name))
            .cloned()
            .collect();
        unused.sort();
        unused
    }

    /// The file's name for levelset's tensor `levelset`, if the names give it one.
    pub fn name<'a>(&'a self, levelset: &'a str) -> Option<&'a str> {
        match &self.names {
            Some(names) => names.get(levelset).map(String::as_str),
            None => Some(levelset),
        }
    }
}
