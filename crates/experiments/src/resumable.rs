//! Results files that a run rewrites as it goes and `--resume` continues (a sweep's
//! `results.json`, `graph.json`, a picture's JSON): the checks every reader of one makes
//! before it takes anything from it. A file is only continued when asked to, only when it
//! parses as what it claims to be, and only by a run of the same config on the same backend;
//! each study adds the checks of its own settings.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;

use crate::config::ExperimentConfig;

/// Refuses to start a run over the results file at `path` unless `resume` asks to continue
/// the `what` (a sweep, a graph) it holds.
pub fn refuse_unless_resumed(path: &Path, resume: bool, what: &str) -> Result<()> {
    if path.exists() && !resume {
        bail!(
            "{} exists: pass --resume to continue that {what}, or choose another --out",
            path.display()
        );
    }
    Ok(())
}

/// The results file at `path` read as `what` (for the error: "a levelset graph"), or `None`
/// when there is none. A file that does not parse is an error that says so, with `instead`:
/// what the user can do about it.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str, instead: &str) -> Result<Option<T>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not {what} (damaged?); {instead}", path.display()))?;
    Ok(Some(value))
}

/// Checks that the results read back from `path`, made by `recorded` (their config and
/// backend), come from `config` on `backend`: `needs` says why that matters (e.g. "resume
/// needs the same one"). Results of two backends differ in their last digits, so they never
/// mix in one file.
pub fn check_origin(
    path: &Path,
    (recorded_config, recorded_backend): (&ExperimentConfig, &str),
    config: &ExperimentConfig,
    backend: &str,
    needs: &str,
) -> Result<()> {
    let changed = recorded_config.differences(config);
    if !changed.is_empty() {
        bail!(
            "{} was produced by a different config (differs in {}); {needs}",
            path.display(),
            changed.join(", ")
        );
    }
    if recorded_backend != backend {
        bail!(
            "{} was computed on the {recorded_backend} backend, not {backend}: results of two \
             backends do not mix; run it on the {recorded_backend} backend, or choose another \
             --out",
            path.display(),
        );
    }
    Ok(())
}
