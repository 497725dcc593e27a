//! Weights written by other programs: `torch.save` files (zip archives and legacy streams)
//! and safetensors files, read into named tensors without trusting anything the file says.
//! The format comes from the file's first bytes, never its name. Every tensor is checked
//! against the bytes that hold it before it is read, read only when the network asks for it,
//! converted to float32 when it is another float type, and refused when it is an integer
//! tensor or holds a NaN or an infinity.

mod pickle;
mod safetensors;
pub mod testing;
#[cfg(test)]
mod tests;
mod torch;

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use burn::module::ParamId;
use burn::tensor::{DType, TensorData};
use burn_store::{TensorSnapshot, TensorSnapshotError};

pub use pickle::Value;

/// Reads a tensor's values (in the file's dtype) when called.
pub type Loader = Rc<dyn Fn() -> Result<TensorData>>;

/// Tensors by their dotted names, in the file's order.
pub type Named = Vec<(String, ForeignTensor)>;

/// A tensor of a foreign file, not yet read.
#[derive(Clone)]
pub struct ForeignTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub loader: Loader,
}

impl fmt::Debug for ForeignTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} tensor {:?}", self.dtype, self.shape)
    }
}

/// The file formats `import` reads, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.save`'s zip archive (PyTorch 1.6 and later).
    TorchZip,
    /// `torch.save`'s stream of pickles (`_use_new_zipfile_serialization=False`, or
    /// PyTorch before 1.6).
    TorchLegacy,
    Safetensors,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::TorchZip => "a torch.save zip archive",
            Format::TorchLegacy => "a legacy torch.save stream",
            Format::Safetensors => "a safetensors file",
        })
    }
}

/// The format of the file at `path`, from its first bytes.
pub fn format_of(path: &Path) -> Result<Format> {
    use std::io::Read;
    let mut head = [0u8; 9];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = file
        .read(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    let head = &head[..n];
    // A safetensors file opens with its header's length (8 bytes, little-endian) and the
    // header's `{`; a legacy stream with a pickle's PROTO opcode (0x80, protocol 2 to 5).
    // The length's first byte can be 0x80, so safetensors is recognized first.
    if head.starts_with(b"PK\x03\x04") {
        Ok(Format::TorchZip)
    } else if head.len() == 9 && head[8] == b'{' {
        Ok(Format::Safetensors)
    } else if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        Ok(Format::TorchLegacy)
    } else {
        bail!(
            "{}: neither a torch.save file (a zip archive or a pickle stream) nor a \
             safetensors file, by its first bytes",
            path.display()
        )
    }
}

/// A file's tree of named values, down to its tensors.
#[derive(Debug, Clone)]
pub enum Tree {
    Tensor(ForeignTensor),
    /// A dict with string keys, in the file's order.
    Dict(Vec<(String, Tree)>),
    /// Anything else: a number, a list, an object the pickle would construct.
    Other(String),
}

/// The tree of the file at `path`, in `format`.
pub fn read_tree(path: &Path, format: Format) -> Result<Tree> {
    match format {
        Format::TorchZip | Format::TorchLegacy => torch::read(path, format == Format::TorchZip),
        Format::Safetensors => safetensors::read(path),
    }
}

/// `value` as a tree, each object that `rebuild` recognizes as a tensor replaced by it.
fn tree_of(
    value: Value,
    rebuild: &mut dyn FnMut(&Value, &Value) -> Result<Option<ForeignTensor>>,
) -> Result<Tree> {
    Ok(match value {
        Value::Object { callable, args, .. } => match rebuild(&callable, &args)? {
            Some(tensor) => Tree::Tensor(tensor),
            None => Tree::Other(format!(
                "an object of {}",
                callable.global_name().unwrap_or_else(|| "a call".into())
            )),
        },
        Value::Dict(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let key = match key {
                    Value::Str(s) => s,
                    Value::Int(i) => i.to_string(),
                    other => bail!("a dict key {other:?} that is not a string"),
                };
                out.push((key, tree_of(value, rebuild)?));
            }
            Tree::Dict(out)
        }
        Value::None => Tree::Other("None".into()),
        Value::Bool(b) => Tree::Other(format!("{b}")),
        Value::Int(i) => Tree::Other(format!("{i}")),
        Value::Long(_) => Tree::Other("a wide integer".into()),
        Value::Float(x) => Tree::Other(format!("{x}")),
        Value::Str(s) => Tree::Other(format!("{s:?}")),
        Value::Bytes(b) => Tree::Other(format!("{} bytes", b.len())),
        Value::Tuple(items) | Value::List(items) => {
            Tree::Other(format!("a list of {}", items.len()))
        }
        Value::Global { module, name } => Tree::Other(format!("{module}.{name}")),
        Value::Persistent(_) => Tree::Other("a storage".into()),
    })
}

impl Tree {
    /// Every tensor under this tree, named by its dotted path (`layer1.0.conv1.weight`), as
    /// a state_dict names them. A name that two entries give is an error.
    pub fn tensors(&self) -> Result<Named> {
        let mut out = Vec::new();
        self.collect("", &mut out);
        let mut names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("tensor {} appears twice in the file", w[0]);
        }
        Ok(out)
    }

    fn collect(&self, prefix: &str, out: &mut Named) {
        match self {
            Tree::Tensor(t) => out.push((prefix.to_string(), t.clone())),
            Tree::Dict(entries) => {
                for (key, value) in entries {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    value.collect(&name, out);
                }
            }
            Tree::Other(_) => {}
        }
    }

    /// Whether a tensor lies anywhere under this tree.
    fn holds_tensors(&self) -> bool {
        match self {
            Tree::Tensor(_) => true,
            Tree::Dict(entries) => entries.iter().any(|(_, v)| v.holds_tensors()),
            Tree::Other(_) => false,
        }
    }

    /// The entry `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Tree::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The keys of a dict.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Tree::Dict(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The keys under which training checkpoints keep their weights (`torch.save({"state_dict":
/// model.state_dict(), "epoch": ...})` and its variants in released model zoos).
pub const WRAPPER_KEYS: [&str; 5] = ["state_dict", "model_state_dict", "model", "net", "params"];

/// The prefixes that wrappers add to every name: `DataParallel` and
/// `DistributedDataParallel` (`module.`), `torch.compile` (`_orig_mod.`).
const WRAPPER_PREFIXES: [(&str, &str); 2] = [
    ("module.", "DataParallel / DistributedDataParallel"),
    ("_orig_mod.", "torch.compile"),
];

/// A file's state_dict: its tensors, the key it was read from and what was done to find it.
pub struct StateDict {
    pub tensors: Named,
    pub key: Option<String>,
    /// Lines for the user: the key used, entries ignored, prefixes stripped.
    pub notes: Vec<String>,
}

/// The state_dict in `tree`: the entry `key` if given; else the file itself when it holds
/// tensors at its top level; else the one entry of [`WRAPPER_KEYS`] that holds tensors (two
/// such entries are an error naming both); else every tensor of the file by its dotted path.
/// A prefix every name shares from a wrapper (`WRAPPER_PREFIXES`) is stripped.
pub fn state_dict(tree: &Tree, key: Option<&str>) -> Result<StateDict> {
    let mut notes = Vec::new();
    let ignored = |used: &str| -> Option<String> {
        let others: Vec<&str> = tree.keys().into_iter().filter(|k| *k != used).collect();
        (!others.is_empty()).then(|| format!("ignoring its other entries: {}", others.join(", ")))
    };
    let (key, sub) = if let Some(key) = key {
        let Some(sub) = tree.get(key) else {
            bail!(
                "--key {key}: the file's top-level dict has no entry {key:?} (its keys: {})",
                tree.keys().join(", ")
            );
        };
        notes.extend(ignored(key));
        (Some(key.to_string()), sub)
    } else {
        let top_level_tensors = match tree {
            Tree::Dict(entries) => entries.iter().any(|(_, v)| matches!(v, Tree::Tensor(_))),
            _ => false,
        };
        let candidates: Vec<&str> = WRAPPER_KEYS
            .into_iter()
            .filter(|k| tree.get(k).is_some_and(|sub| sub.holds_tensors()))
            .collect();
        match candidates.as_slice() {
            _ if top_level_tensors => (None, tree),
            [one] => {
                notes.push(format!("reading the weights under its key {one:?}"));
                notes.extend(ignored(one));
                (Some(one.to_string()), tree.get(one).expect("a candidate"))
            }
            [] => (None, tree),
            many => bail!(
                "it holds weights under {}: choose one with --key",
                many.iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    };
    let mut tensors = sub.tensors()?;
    while let Some((prefix, from)) = WRAPPER_PREFIXES.into_iter().find(|(prefix, _)| {
        !tensors.is_empty() && tensors.iter().all(|(name, _)| name.starts_with(prefix))
    }) {
        for (name, _) in &mut tensors {
            name.drain(..prefix.len());
        }
        notes.push(format!(
            "stripping the prefix {prefix:?} ({from}) from every name"
        ));
    }
    Ok(StateDict {
        tensors,
        key,
        notes,
    })
}

/// Problems met while reading tensors for the network, kept with the tensor's name: Burn's
/// applier reports a failed read only as a debug string.
pub type ReadErrors = Rc<RefCell<Vec<String>>>;

/// `tensor` as a snapshot Burn's applier reads on demand, as float32, named `name`: a
/// tensor with more than `max_elements` elements (more than any of the network's) is
/// refused before its bytes are read, an integer tensor is refused, other floats are
/// converted, and NaN or infinite values are refused.
pub fn snapshot(
    name: &str,
    tensor: &ForeignTensor,
    max_elements: usize,
    errors: &ReadErrors,
) -> TensorSnapshot {
    let shape = burn::tensor::Shape::from(tensor.shape.clone());
    let (owned, tensor, errors) = (name.to_string(), tensor.clone(), Rc::clone(errors));
    let read = move || -> Result<TensorData, TensorSnapshotError> {
        let result = float32(&owned, &tensor, max_elements);
        result.map_err(|e| {
            let message = format!("{e:#}");
            errors.borrow_mut().push(message.clone());
            TensorSnapshotError::DataError(message)
        })
    };
    let mut snapshot = TensorSnapshot::from_closure(
        Rc::new(read),
        DType::F32,
        shape,
        name.split('.').map(str::to_string).collect(),
        Vec::new(),
        ParamId::new(),
    );
    snapshot.container_stack = None;
    snapshot.tensor_id = None;
    snapshot
}

/// Whether `dtype` is a float type `import` converts to float32.
pub fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// The values of `tensor` as float32, checked.
fn float32(name: &str, tensor: &ForeignTensor, max_elements: usize) -> Result<TensorData> {
    let elements: usize = tensor.shape.iter().product();
    if elements > max_elements {
        bail!(
            "{name}: shape {:?} ({elements} elements) is larger than any tensor of the network \
             ({max_elements} elements at most); not read",
            tensor.shape
        );
    }
    if !is_float(tensor.dtype) {
        bail!(
            "{name}: a {:?} tensor; the network's parameters are floats (levelset converts \
             float64, float16 and bfloat16 to float32, but not integers or booleans)",
            tensor.dtype
        );
    }
    let data = (tensor.loader)().with_context(|| format!("reading {name}"))?;
    let data = if data.dtype == DType::F32 {
        data
    } else {
        data.convert::<f32>()
    };
    let values = data
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let first = values.iter().position(|v| !v.is_finite()).expect("bad > 0");
        bail!(
            "{name}: {bad} of its {} values are NaN or infinite (the first at flat index \
             {first}, {}); a network with them has no finite energy",
            values.len(),
            values[first]
        );
    }
    Ok(data)
}
