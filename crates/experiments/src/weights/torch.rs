//! `torch.save` files: the zip archive PyTorch writes since 1.6 and the legacy stream before
//! it. The pickle is read by [`super::pickle`]; each tensor is a view of a storage (dtype,
//! element count, where its bytes are) by offset, shape and strides, all of which are
//! checked against the storage before a byte of it is read, and honoured as PyTorch does.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use burn::tensor::{DType, TensorData};

use super::pickle::{self, Value};
use super::{ForeignTensor, Loader, Tree};

/// The largest pickle read from an archive: a state_dict's pickle is kilobytes, its tensors'
/// bytes live in the archive's other members.
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// The magic number a legacy `torch.save` stream opens with, 0x1950a86a20f9469cfc6c, as the
/// pickle's little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// A storage as the pickle declares it.
#[derive(Debug, Clone, PartialEq)]
struct Storage {
    dtype: DType,
    /// `FloatStorage`, ..., for errors.
    type_name: String,
    key: String,
    elements: u64,
}

/// Where a file's storages are.
#[derive(Debug, Clone)]
enum Layout {
    /// A zip archive: storage `key` is member `{prefix}data/{key}`.
    Zip { prefix: String },
    /// A legacy stream: each storage's bytes at an offset in the file, by key.
    Legacy { offsets: Vec<(String, u64)> },
}

/// The tree of a `torch.save` file at `path` (a zip archive if `zip`, else a legacy
/// stream), its tensors checked against their storages and read when asked for.
pub fn read(path: &Path, zip: bool) -> Result<Tree> {
    let (pickle, layout) = if zip {
        read_zip(path)?
    } else {
        read_legacy(path)?
    };
    let file = Rc::new(StorageFile {
        path: path.to_path_buf(),
        layout,
    });
    super::tree_of(pickle, &mut |callable, args| rebuild(callable, args, &file))
}

/// The pickle of a zip archive, and the prefix of its members.
fn read_zip(path: &Path) -> Result<(Value, Layout)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{}: not a readable zip archive", path.display()))?;
    let pickles: Vec<String> = archive
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(str::to_string)
        .collect();
    let name = match pickles.as_slice() {
        [one] => one.clone(),
        [] => bail!(
            "{}: a zip archive without a data.pkl member; torch.save writes one",
            path.display()
        ),
        many => bail!(
            "{}: several data.pkl members ({}); torch.save writes one",
            path.display(),
            many.join(", ")
        ),
    };
    let prefix = name.trim_end_matches("data.pkl").to_string();
    if let Ok(mut order) = archive.by_name(&format!("{prefix}byteorder")) {
        let mut text = String::new();
        order
            .by_ref()
            .take(16)
            .read_to_string(&mut text)
            .with_context(|| format!("{}: reading {prefix}byteorder", path.display()))?;
        if text.trim() != "little" {
            bail!(
                "{}: its tensors are stored {:?}-endian; levelset reads little-endian files \
                 (load and re-save it on a little-endian machine)",
                path.display(),
                text.trim()
            );
        }
    }
    let mut member = archive
        .by_name(&name)
        .with_context(|| format!("{}: reading {name}", path.display()))?;
    let mut bytes = Vec::new();
    member
        .by_ref()
        .take(MAX_PICKLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: reading {name}", path.display()))?;
    if bytes.len() as u64 > MAX_PICKLE_BYTES {
        bail!(
            "{}: {name} is larger than {} MiB; a state_dict's pickle is far smaller",
            path.display(),
            MAX_PICKLE_BYTES >> 20
        );
    }
    let (value, _) = pickle::read(&bytes).with_context(|| format!("{}: {name}", path.display()))?;
    Ok((value, Layout::Zip { prefix }))
}

/// A legacy stream: five pickles (magic number, protocol, system info, the object, the
/// storage keys) and then each storage's element count and bytes, in the keys' order.
fn read_legacy(path: &Path) -> Result<(Value, Layout)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut at = 0usize;
    let mut next = |what: &str| -> Result<Value> {
        let (value, used) = pickle::read(&bytes[at..])
            .with_context(|| format!("{}: the legacy stream's {what}", path.display()))?;
        at += used;
        Ok(value)
    };
    if next("magic number")? != Value::Long(LEGACY_MAGIC.to_vec()) {
        bail!(
            "{}: neither a zip archive, a safetensors file nor a torch.save stream",
            path.display()
        );
    }
    let protocol = next("protocol version")?;
    if protocol != Value::Int(1001) {
        bail!(
            "{}: legacy torch.save protocol {protocol:?}; levelset reads protocol 1001",
            path.display()
        );
    }
    if let Value::Dict(info) = next("system info")? {
        let little = info
            .iter()
            .find(|(k, _)| *k == Value::Str("little_endian".into()))
            .map(|(_, v)| v.clone());
        if little == Some(Value::Bool(false)) {
            bail!(
                "{}: its tensors are stored big-endian; levelset reads little-endian files",
                path.display()
            );
        }
    }
    let value = next("object")?;
    let keys = match next("storage keys")? {
        Value::List(keys) => keys,
        other => bail!(
            "{}: the legacy stream's storage keys are {other:?}, not a list",
            path.display()
        ),
    };
    let declared = storages(&value);
    let mut offsets = Vec::with_capacity(keys.len());
    let mut pos = at as u64;
    for key in keys {
        let Value::Str(key) = key else {
            bail!(
                "{}: a storage key {key:?} that is not a string",
                path.display()
            );
        };
        let Some(storage) = declared.iter().find(|s| s.key == key) else {
            bail!(
                "{}: storage {key} has bytes but no tensor declares it",
                path.display()
            );
        };
        let count_at = usize::try_from(pos).ok().filter(|&p| p + 8 <= bytes.len());
        let Some(count_at) = count_at else {
            bail!(
                "{}: the file ends before storage {key}'s element count",
                path.display()
            );
        };
        let count = u64::from_le_bytes(bytes[count_at..count_at + 8].try_into().expect("8 bytes"));
        if count != storage.elements {
            bail!(
                "{}: storage {key} holds {count} elements, but the pickle declares {}",
                path.display(),
                storage.elements
            );
        }
        let len = storage_bytes(storage, path)?;
        offsets.push((key.clone(), pos + 8));
        pos = pos
            .checked_add(8 + len)
            .filter(|&end| end <= bytes.len() as u64)
            .with_context(|| {
                format!(
                    "{}: storage {key} needs {len} bytes, past the end of the file",
                    path.display()
                )
            })?;
    }
    Ok((value, Layout::Legacy { offsets }))
}

/// Every storage the pickle's persistent ids declare.
fn storages(value: &Value) -> Vec<Storage> {
    let mut out = Vec::new();
    visit(value, &mut |v| {
        if let Value::Persistent(pid) = v
            && let Ok(storage) = storage_of(pid)
        {
            out.push(storage);
        }
    });
    out
}

fn visit(value: &Value, f: &mut dyn FnMut(&Value)) {
    f(value);
    match value {
        Value::Tuple(items) | Value::List(items) => items.iter().for_each(|v| visit(v, f)),
        Value::Dict(entries) => entries.iter().for_each(|(k, v)| {
            visit(k, f);
            visit(v, f)
        }),
        Value::Persistent(v) => visit(v, f),
        Value::Object {
            callable,
            args,
            state,
        } => {
            visit(callable, f);
            visit(args, f);
            if let Some(s) = state {
                visit(s, f)
            }
        }
        _ => {}
    }
}

/// The storage a persistent id `('storage', torch.FloatStorage, key, location, elements)`
/// names.
fn storage_of(pid: &Value) -> Result<Storage> {
    let Value::Tuple(items) = pid else {
        bail!("a persistent id {pid:?} that is not a tuple");
    };
    let [tag, class, key, _location, elements, ..] = items.as_slice() else {
        bail!(
            "a persistent id of {} items; torch.save writes 5",
            items.len()
        );
    };
    if *tag != Value::Str("storage".into()) {
        bail!("a persistent id tagged {tag:?}, not 'storage'");
    }
    if let Some(view) = items.get(5)
        && *view != Value::None
    {
        bail!("a view of a storage (written by PyTorch before 0.4); load and re-save the file");
    }
    let type_name = match class {
        Value::Global { name, .. } => name.clone(),
        Value::Str(name) => name.clone(),
        other => bail!("a storage type {other:?}"),
    };
    let dtype = match type_name.as_str() {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool(burn::tensor::BoolStore::Native),
        other => bail!("a storage of type {other}, which levelset does not read"),
    };
    let key = match key {
        Value::Str(k) => k.clone(),
        Value::Int(k) => k.to_string(),
        other => bail!("a storage key {other:?}"),
    };
    let elements = match elements {
        Value::Int(n) if *n >= 0 => *n as u64,
        other => bail!("storage {key}: an element count {other:?}"),
    };
    Ok(Storage {
        dtype,
        type_name,
        key,
        elements,
    })
}

/// A storage's size in bytes, checked for overflow.
fn storage_bytes(storage: &Storage, path: &Path) -> Result<u64> {
    storage
        .elements
        .checked_mul(storage.dtype.size() as u64)
        .with_context(|| {
            format!(
                "{}: storage {} declares {} elements, more than a file can hold",
                path.display(),
                storage.key,
                storage.elements
            )
        })
}

/// The file a tensor's storage lies in.
struct StorageFile {
    path: PathBuf,
    layout: Layout,
}

/// A tensor as `_rebuild_tensor_v2(storage, offset, shape, strides, ...)` describes it.
#[derive(Debug, Clone)]
struct View {
    storage: Storage,
    offset: u64,
    shape: Vec<usize>,
    strides: Vec<u64>,
}

/// The tensor that `callable(*args)` rebuilds, if it is one of PyTorch's tensor rebuilders,
/// checked against its storage.
fn rebuild(
    callable: &Value,
    args: &Value,
    file: &Rc<StorageFile>,
) -> Result<Option<ForeignTensor>> {
    let name = callable.global_name().unwrap_or_default();
    let items = match args {
        Value::Tuple(items) => items.as_slice(),
        _ => &[],
    };
    match (name.as_str(), items) {
        ("torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor", _) => {
            let view = view_of(items)
                .with_context(|| format!("{}: a tensor rebuilt by {name}", file.path.display()))?;
            check_extent(&view).with_context(|| file.path.display().to_string())?;
            Ok(Some(tensor(view, file)))
        }
        // Parameter(tensor, requires_grad, hooks), and a tensor subclass rebuilt as
        // func(*args): the tensor is the inner call's.
        (
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state",
            [Value::Object { callable, args, .. }, ..],
        ) => inner(&name, callable, args, file),
        ("torch._tensor._rebuild_from_type_v2", [callable, _, args, ..]) => {
            inner(&name, callable, args, file)
        }
        _ if name.starts_with("torch._utils._rebuild")
            || name.starts_with("torch._tensor._rebuild") =>
        {
            bail!(
                "{}: a tensor rebuilt by {name} (quantized, sparse, nested or on a device \
                 levelset cannot read); save it as dense float tensors",
                file.path.display()
            )
        }
        _ => Ok(None),
    }
}

/// The tensor inside a wrapper that `name` rebuilds (a Parameter, a tensor subclass).
fn inner(
    name: &str,
    callable: &Value,
    args: &Value,
    file: &Rc<StorageFile>,
) -> Result<Option<ForeignTensor>> {
    match rebuild(callable, args, file)? {
        Some(tensor) => Ok(Some(tensor)),
        None => bail!(
            "{}: {name} of something that is not a tensor",
            file.path.display()
        ),
    }
}

fn view_of(items: &[Value]) -> Result<View> {
    let [storage, offset, shape, strides, ..] = items else {
        bail!("{} arguments, expected at least 4", items.len());
    };
    let Value::Persistent(pid) = storage else {
        bail!("a storage {storage:?} that is not a persistent id");
    };
    let storage = storage_of(pid)?;
    let ints = |v: &Value, what: &str| -> Result<Vec<i64>> {
        match v {
            Value::Tuple(items) | Value::List(items) => items
                .iter()
                .map(|i| match i {
                    Value::Int(n) => Ok(*n),
                    other => bail!("a {what} of {other:?}"),
                })
                .collect(),
            other => bail!("a {what} {other:?}"),
        }
    };
    let shape = ints(shape, "shape")?;
    let strides = ints(strides, "stride")?;
    let Value::Int(offset) = offset else {
        bail!("a storage offset {offset:?}");
    };
    if *offset < 0 || shape.iter().any(|&d| d < 0) || strides.iter().any(|&s| s < 0) {
        bail!(
            "a negative offset, size or stride (offset {offset}, shape {shape:?}, strides {strides:?})"
        );
    }
    if shape.len() != strides.len() {
        bail!("shape {shape:?} and strides {strides:?} of different ranks");
    }
    Ok(View {
        storage,
        offset: *offset as u64,
        shape: shape.iter().map(|&d| d as usize).collect(),
        strides: strides.iter().map(|&s| s as u64).collect(),
    })
}

/// Checks that every element of `view` lies inside its storage: the last element's index,
/// `offset + sum((size - 1) * stride)`, below the storage's element count.
fn check_extent(view: &View) -> Result<()> {
    let elements = view
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    let Some(elements) = elements else {
        bail!(
            "shape {:?} has more elements than memory can hold",
            view.shape
        );
    };
    if elements == 0 {
        return Ok(());
    }
    let last = view
        .shape
        .iter()
        .zip(&view.strides)
        .try_fold(view.offset, |at, (&d, &s)| {
            at.checked_add((d as u64 - 1).checked_mul(s)?)
        });
    match last {
        Some(last) if last < view.storage.elements => Ok(()),
        _ => bail!(
            "a tensor of shape {:?}, strides {:?} at offset {} reaches past the end of its \
             storage {} ({} elements of {})",
            view.shape,
            view.strides,
            view.offset,
            view.storage.key,
            view.storage.elements,
            view.storage.type_name
        ),
    }
}

fn tensor(view: View, file: &Rc<StorageFile>) -> ForeignTensor {
    let file = Rc::clone(file);
    let shape = view.shape.clone();
    let dtype = view.storage.dtype;
    let loader: Loader = Rc::new(move || gather(&view, &file));
    ForeignTensor {
        dtype,
        shape,
        loader,
    }
}

/// The elements of `view`, in row-major order of its shape, read from its storage: only the
/// bytes up to its last element are read, in one pass, whatever its strides.
fn gather(view: &View, file: &StorageFile) -> Result<TensorData> {
    let size = view.storage.dtype.size();
    let numel: usize = view.shape.iter().product();
    // Storage index of each element, in the tensor's row-major order.
    let mut positions = Vec::with_capacity(numel);
    if numel > 0 {
        let mut index = vec![0usize; view.shape.len()];
        'elements: loop {
            let at = view.offset
                + index
                    .iter()
                    .zip(&view.strides)
                    .map(|(&i, &s)| i as u64 * s)
                    .sum::<u64>();
            positions.push(at);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < view.shape[axis] {
                    continue 'elements;
                }
                index[axis] = 0;
            }
            break;
        }
    }
    let mut order: Vec<usize> = (0..numel).collect();
    order.sort_by_key(|&i| positions[i]);
    let mut out = vec![0u8; numel * size];
    file.read_storage(&view.storage, |reader| {
        let mut element = vec![0u8; size];
        // The storage element `element` holds, and the next one the reader gives.
        let mut current = None;
        let mut next = 0u64;
        for i in order {
            let at = positions[i];
            if current != Some(at) {
                let gap = (at - next) * size as u64;
                let skipped = std::io::copy(&mut reader.take(gap), &mut std::io::sink())?;
                if skipped < gap {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                reader.read_exact(&mut element)?;
                current = Some(at);
                next = at + 1;
            }
            out[i * size..(i + 1) * size].copy_from_slice(&element);
        }
        Ok(())
    })?;
    Ok(TensorData::from_bytes_vec(
        out,
        view.shape.clone(),
        view.storage.dtype,
    ))
}

impl StorageFile {
    /// Runs `read` on a reader of `storage`'s bytes, which ends where the storage ends.
    fn read_storage(
        &self,
        storage: &Storage,
        read: impl FnOnce(&mut dyn Read) -> std::io::Result<()>,
    ) -> Result<()> {
        let len = storage_bytes(storage, &self.path)?;
        let short = || {
            format!(
                "{}: storage {} ends before the tensor's last element",
                self.path.display(),
                storage.key
            )
        };
        let file = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        match &self.layout {
            Layout::Zip { prefix } => {
                let name = format!("{prefix}data/{}", storage.key);
                let mut archive = zip::ZipArchive::new(BufReader::new(file))
                    .with_context(|| format!("{}: reopening the archive", self.path.display()))?;
                let Ok(member) = archive.by_name(&name) else {
                    bail!(
                        "{}: storage {} has no member {name} in the archive",
                        self.path.display(),
                        storage.key
                    );
                };
                // What the member declares must be the storage: a member declaring less is
                // truncated, and one declaring more is not this storage.
                if member.size() != len {
                    bail!(
                        "{}: member {name} holds {} bytes, but storage {} is {} elements of \
                         {} ({len} bytes)",
                        self.path.display(),
                        member.size(),
                        storage.key,
                        storage.elements,
                        storage.type_name
                    );
                }
                read(&mut member.take(len)).with_context(short)
            }
            Layout::Legacy { offsets } => {
                let Some((_, at)) = offsets.iter().find(|(k, _)| *k == storage.key) else {
                    bail!(
                        "{}: storage {} is declared but its bytes are not in the file",
                        self.path.display(),
                        storage.key
                    );
                };
                let mut file = BufReader::new(file);
                file.seek(SeekFrom::Start(*at))?;
                read(&mut file.take(len)).with_context(short)
            }
        }
    }
}
