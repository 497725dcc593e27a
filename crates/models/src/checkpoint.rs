//! Checkpoints: a directory holding the model's parameters (`model.mpk`, Burn's full-precision
//! named MessagePack record) and a JSON sidecar (`model.json`) saying what the model is.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::checkpoint_fields;
use crate::landscape::{Architecture, Energy};

const PARAMS: &str = "model.mpk";
const SIDECAR: &str = "model.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub levelset_version: String,
    pub architecture: Architecture,
    /// The experiment config the model was trained under (free-form, for provenance).
    pub config: serde_json::Value,
    pub seed: u64,
    pub energy_kind: Energy,
    pub energy: f64,
    /// The level the training aimed for, if any.
    pub level: Option<f64>,
    pub steps: usize,
    pub backend: String,
    pub num_params: usize,
    /// The file the weights were imported from (`levelset import`); absent for models
    /// levelset trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<ImportedFrom>,
}

/// Where imported weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedFrom {
    pub path: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// The `--map` rules applied to its tensor names, in order.
    pub map: Vec<String>,
    /// The key of a PyTorch checkpoint's dictionary the state_dict was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Every tensor's name in the file and the name the import gave it, in the file's order,
    /// so that `levelset export` writes the file's own names back. Empty in checkpoints
    /// imported before the names were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<ImportedName>,
    /// The file's BatchNorm step counters (`num_batches_tracked`), which no levelset tensor
    /// holds, by their names in the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<ImportedCounter>,
}

/// A tensor's name in an imported file and in levelset's module: levelset's path after the
/// import's renaming (`layers.3.Linear.weight`), an LSTM's packed tensors before their gates
/// are split (`lstm.weight_ih_l0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedName {
    pub file: String,
    pub levelset: String,
}

/// A BatchNorm step counter of an imported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedCounter {
    pub file: String,
    pub value: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid checkpoint sidecar: {source}")]
    Sidecar {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Record { path: PathBuf, message: String },
    #[error(
        "{path}: checkpoint holds a {found} network but this experiment builds a {expected} network"
    )]
    Architecture {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// Writes `model` and `meta` into the directory `dir` (created if needed).
pub fn save<B: Backend, M: Module<B>>(
    model: M,
    meta: &CheckpointMeta,
    dir: &Path,
) -> Result<(), CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // The record is encoded in memory and written by `write_atomic`, which checks every write
    // and syncs before the rename: Burn's file recorder writes through a buffer whose errors
    // it drops, so a full disk left an empty `model.mpk` in place of a good one. The bytes
    // are the file recorder's (the same named MessagePack), so `load` reads either.
    let params = dir.join(PARAMS);
    let bytes = Recorder::<B>::record(
        &NamedMpkBytesRecorder::<FullPrecisionSettings>::new(),
        model.into_record(),
        (),
    )
    .map_err(|e| CheckpointError::Record {
        path: params.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&params, &bytes).map_err(io(&params))?;
    let sidecar = dir.join(SIDECAR);
    let json = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    write_atomic(&sidecar, &json).map_err(io(&sidecar))
}

/// Whether `dir` holds a checkpoint (either of its two files).
pub fn exists(dir: &Path) -> bool {
    dir.join(PARAMS).exists() || dir.join(SIDECAR).exists()
}

/// Reads a checkpoint's sidecar.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let path = dir.join(SIDECAR);
    let text = std::fs::read(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| CheckpointError::Sidecar { path, source })
}

/// Loads a checkpoint into a model shaped like `template`, after checking that it was saved
/// from the same network ([`Architecture::same_net`]).
pub fn load<B: Backend, M: Module<B>>(
    template: M,
    expected: &Architecture,
    dir: &Path,
    device: &B::Device,
) -> Result<(M, CheckpointMeta), CheckpointError> {
    let meta = read_meta(dir)?;
    if !meta.architecture.same_net(expected) {
        return Err(CheckpointError::Architecture {
            path: dir.join(SIDECAR),
            expected: describe(expected),
            found: describe(&meta.architecture),
        });
    }
    let path = dir.join(PARAMS);
    let record: Result<M::Record, _> = recorder().load(path.clone(), device);
    let model = match record {
        Ok(record) => fit(template, record).map_err(|message| CheckpointError::Record {
            path: path.clone(),
            message: format!(
                "holds the parameters of another network than its sidecar's {}: {message}",
                describe(expected)
            ),
        })?,
        // The paper's nets named their parameters after their fields until they were
        // built from their descriptions: a checkpoint of that time loads by those names.
        Err(error) => match checkpoint_fields::load(template, expected, &path, device) {
            Some(Ok(model)) => model,
            _ => {
                return Err(CheckpointError::Record {
                    path,
                    message: error.to_string(),
                });
            }
        },
    };
    Ok((model, meta))
}

/// `template` with `record` loaded, if the record fits it. Burn's `load_record` asserts
/// (panics) when a record holds another number of layers: that becomes an error here, and
/// the loaded tensors' shapes are compared with the template's, so that a record of the
/// same structure but other sizes is an error too.
fn fit<B: Backend, M: Module<B>>(template: M, record: M::Record) -> Result<M, String> {
    let expected = shapes(&template);
    let hook = std::panic::take_hook();
    // The panic is the error reported below; its default message would only repeat it.
    std::panic::set_hook(Box::new(|_| {}));
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        template.load_record(record)
    }));
    std::panic::set_hook(hook);
    let loaded = loaded.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("the record does not fit the network");
        // Burn's message spans lines of advice; its first line says what did not fit.
        message.lines().next().unwrap_or(message).trim().to_string()
    })?;
    let found = shapes(&loaded);
    if found != expected {
        return Err(format!(
            "its tensors have shapes {found:?}, the network's have {expected:?}"
        ));
    }
    Ok(loaded)
}

/// The shape of every float tensor of `module`, in traversal order.
fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.shape().iter().copied().collect());
        }
    }
    let mut visitor = Shapes(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

fn describe(arch: &Architecture) -> String {
    serde_json::to_string(arch).expect("architecture serializes")
}
