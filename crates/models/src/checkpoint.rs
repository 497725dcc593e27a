//! Checkpoints: a directory holding the model's parameters (`model.mpk`, Burn's full-precision
//! named MessagePack record) and a JSON sidecar (`model.json`) saying what the model is.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use serde::{Deserialize, Serialize};

use crate::atomic::{temp_beside, write_atomic};
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
    // The recorder sets the `.mpk` extension itself, so write under a temporary stem.
    let final_params = dir.join(PARAMS);
    let stem = temp_beside(&dir.join("model"));
    model
        .save_file(stem.clone(), &recorder())
        .map_err(|e| CheckpointError::Record {
            path: final_params.clone(),
            message: e.to_string(),
        })?;
    let written = stem.with_extension("mpk");
    std::fs::rename(&written, &final_params).map_err(io(&final_params))?;
    let sidecar = dir.join(SIDECAR);
    let json = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    write_atomic(&sidecar, &json).map_err(io(&sidecar))
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
/// from the same architecture.
pub fn load<B: Backend, M: Module<B>>(
    template: M,
    expected: &Architecture,
    dir: &Path,
    device: &B::Device,
) -> Result<(M, CheckpointMeta), CheckpointError> {
    let meta = read_meta(dir)?;
    if &meta.architecture != expected {
        return Err(CheckpointError::Architecture {
            path: dir.join(SIDECAR),
            expected: describe(expected),
            found: describe(&meta.architecture),
        });
    }
    let path = dir.join(PARAMS);
    let model = template
        .load_file(path.clone(), &recorder(), device)
        .map_err(|e| CheckpointError::Record {
            path,
            message: e.to_string(),
        })?;
    Ok((model, meta))
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

fn describe(arch: &Architecture) -> String {
    serde_json::to_string(arch).expect("architecture serializes")
}
