//! `torch.save` files written byte by byte, for tests: well-formed ones as PyTorch writes
//! them (strided views, offsets into shared storages, legacy streams) and crafted ones that
//! lie about their storages, so that every check of `super::torch` has a file that trips
//! it. The pickle is protocol 2, as `torch.save` writes it.

use std::io::Write;
use std::path::Path;

/// A storage: its pickled type (`FloatStorage`, ...), the element count the pickle declares
/// and the bytes the file holds (which a crafted file makes disagree).
#[derive(Debug, Clone)]
pub struct Storage {
    pub key: String,
    pub type_name: String,
    pub elements: i64,
    pub bytes: Vec<u8>,
}

/// A tensor: a view of storage `storage` by offset, shape and strides.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub storage: String,
    pub offset: i64,
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
}

/// A state_dict to write, optionally nested under `wrap` keys of a checkpoint dict.
#[derive(Debug, Clone, Default)]
pub struct TorchFile {
    pub storages: Vec<Storage>,
    pub tensors: Vec<Tensor>,
    /// Writes `{wrap[0]: state_dict, ..., "epoch": 3, "best_prec1": 91.5}`, as released
    /// checkpoints are, instead of the bare state_dict.
    pub wrap: Vec<String>,
    /// Members of the zip archive left out (`archive/data/0`, ...).
    pub omit: Vec<String>,
    /// Storages compressed with deflate (torch.save stores them uncompressed).
    pub deflate: bool,
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

impl TorchFile {
    /// Adds a float32 tensor stored contiguously in a storage of its own.
    pub fn float(mut self, name: &str, values: &[f32], shape: &[i64]) -> Self {
        let key = self.storages.len().to_string();
        self.storages.push(Storage {
            key: key.clone(),
            type_name: "FloatStorage".into(),
            elements: values.len() as i64,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        self.tensors.push(Tensor {
            name: name.into(),
            storage: key,
            offset: 0,
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
        });
        self
    }

    /// Adds a storage of `type_name` holding `bytes` (`elements` of them) and a view of it.
    pub fn view(mut self, storage: Storage, tensor: Tensor) -> Self {
        if !self.storages.iter().any(|s| s.key == storage.key) {
            self.storages.push(storage);
        }
        self.tensors.push(tensor);
        self
    }

    /// The pickle of the state_dict (or the checkpoint around it).
    pub fn pickle(&self) -> Vec<u8> {
        let mut p = Pickle(vec![0x80, 2]);
        if self.wrap.is_empty() {
            self.state_dict(&mut p);
        } else {
            p.0.extend(b"}(");
            for key in &self.wrap {
                p.string(key);
                self.state_dict(&mut p);
            }
            p.string("epoch");
            p.int(3);
            p.string("best_prec1");
            p.0.push(b'G');
            p.0.extend(91.5f64.to_be_bytes());
            p.0.push(b'u');
        }
        p.0.push(b'.');
        p.0
    }

    /// The opcodes of the state_dict: an `OrderedDict` of rebuilt tensors.
    fn state_dict(&self, p: &mut Pickle) {
        p.global("collections", "OrderedDict");
        p.0.extend(b")R(");
        for tensor in &self.tensors {
            let storage = self
                .storages
                .iter()
                .find(|s| s.key == tensor.storage)
                .expect("the tensor's storage is added");
            p.string(&tensor.name);
            p.global("torch._utils", "_rebuild_tensor_v2");
            p.0.push(b'(');
            // The persistent id: ('storage', torch.FloatStorage, key, 'cpu', elements).
            p.0.push(b'(');
            p.string("storage");
            p.global("torch", &storage.type_name);
            p.string(&storage.key);
            p.string("cpu");
            p.int(storage.elements);
            p.0.extend(b"tQ");
            p.int(tensor.offset);
            p.ints(&tensor.shape);
            p.ints(&tensor.strides);
            p.0.push(0x89);
            p.global("collections", "OrderedDict");
            p.0.extend(b")Rt");
            p.0.push(b'R');
        }
        p.0.push(b'u');
    }

    /// Writes the zip archive `torch.save` writes (`archive/data.pkl`, `archive/byteorder`,
    /// `archive/data/<key>`).
    pub fn write_zip(&self, path: &Path) {
        let file = std::fs::File::create(path).expect("a writable test folder");
        let mut zip = zip::ZipWriter::new(file);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let storage_options = if self.deflate {
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
        } else {
            stored
        };
        let mut members: Vec<(String, Vec<u8>, bool)> = vec![
            ("archive/data.pkl".into(), self.pickle(), false),
            ("archive/byteorder".into(), b"little".to_vec(), false),
        ];
        for storage in &self.storages {
            members.push((
                format!("archive/data/{}", storage.key),
                storage.bytes.clone(),
                true,
            ));
        }
        members.push(("archive/version".into(), b"3\n".to_vec(), false));
        for (name, bytes, is_storage) in members {
            if self.omit.contains(&name) {
                continue;
            }
            let options = if is_storage { storage_options } else { stored };
            zip.start_file(name, options).expect("a zip member");
            zip.write_all(&bytes).expect("a zip member's bytes");
        }
        zip.finish().expect("a complete zip archive");
    }

    /// Writes the legacy stream (`_use_new_zipfile_serialization=False`): magic number,
    /// protocol, system info, the pickle, the storage keys, then each storage's element
    /// count and bytes.
    pub fn write_legacy(&self, path: &Path) {
        let mut out = Vec::new();
        let mut magic = Pickle(vec![0x80, 2]);
        magic.0.extend([0x8a, 0x0a]);
        magic
            .0
            .extend(&0x1950a86a20f9469cfc6c_u128.to_le_bytes()[..10]);
        magic.0.push(b'.');
        out.extend(magic.0);
        let mut protocol = Pickle(vec![0x80, 2]);
        protocol.int(1001);
        protocol.0.push(b'.');
        out.extend(protocol.0);
        let mut info = Pickle(vec![0x80, 2, b'}', b'(']);
        info.string("protocol_version");
        info.int(1001);
        info.string("little_endian");
        info.0.push(0x88);
        info.0.extend(b"u.");
        out.extend(info.0);
        out.extend(self.pickle());
        let mut keys = Pickle(vec![0x80, 2, b']', b'(']);
        for storage in &self.storages {
            keys.string(&storage.key);
        }
        keys.0.extend(b"e.");
        out.extend(keys.0);
        for storage in &self.storages {
            out.extend((storage.elements as u64).to_le_bytes());
            out.extend(&storage.bytes);
        }
        std::fs::write(path, out).expect("a writable test folder");
    }
}

/// Pickle opcodes, protocol 2.
struct Pickle(Vec<u8>);

impl Pickle {
    fn string(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }

    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend(module.as_bytes());
        self.0.push(b'\n');
        self.0.extend(name.as_bytes());
        self.0.push(b'\n');
    }

    fn int(&mut self, v: i64) {
        self.0.push(0x8a);
        self.0.push(8);
        self.0.extend(v.to_le_bytes());
    }

    fn ints(&mut self, values: &[i64]) {
        self.0.push(b'(');
        for &v in values {
            self.int(v);
        }
        self.0.push(b't');
    }
}
