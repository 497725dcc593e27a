//! What lets `connect --resume` finish an interrupted run without computing its path again:
//! the path, saved atomically as soon as it is computed and before any bead checkpoint or the
//! report is written (`string.json` with the report and the run's settings, `string.f32` with
//! the beads' parameters), and removed once the report is in place.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use levelset_models::atomic::write_atomic;
use levelset_strings::PathReport;
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;

/// The settings a resumed run must share with the run that computed the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub config: ExperimentConfig,
    pub endpoints: Option<(PathBuf, PathBuf)>,
    pub level: Option<f64>,
    pub seed: u64,
    pub method: String,
    pub align: bool,
}

/// A computed path: the level it was computed at, its report, and its beads (parameters and
/// energies) as the report describes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedString {
    pub settings: RunSettings,
    pub level: f64,
    pub report: PathReport,
    pub bead_energies: Vec<f64>,
    /// Parameters per bead; `string.f32` holds `bead_energies.len()` rows of it.
    pub num_params: usize,
    #[serde(skip)]
    pub beads: Vec<Vec<f32>>,
}

pub fn json_path(out: &Path) -> PathBuf {
    out.join("string.json")
}

fn params_path(out: &Path) -> PathBuf {
    out.join("string.f32")
}

/// Whether `out` holds a saved path.
pub fn exists(out: &Path) -> bool {
    json_path(out).exists()
}

impl SavedString {
    /// Writes the beads first and the JSON last, each atomically, so that `string.json`
    /// present means both are complete.
    pub fn save(&self, out: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(self.beads.len() * self.num_params * 4);
        for bead in &self.beads {
            for v in bead {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        let params = params_path(out);
        write_atomic(&params, &bytes).with_context(|| format!("writing {}", params.display()))?;
        let json = json_path(out);
        write_atomic(&json, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", json.display()))
    }

    /// The path saved in `out`, after checking that it was computed with `settings` and
    /// that its files hold what a run of this config writes: `num_params` parameters per bead
    /// (none when the method saves no beads), every value finite. Its energies are measured
    /// again by the caller ([`levelset_strings::recertify`]) before anything is reported.
    pub fn load(
        out: &Path,
        settings: &RunSettings,
        num_params: usize,
        saves_beads: bool,
    ) -> Result<Self> {
        let json = json_path(out);
        let text = std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
        let again = format!(
            "remove {} and string.f32 to compute the path again",
            json.display()
        );
        let mut saved: SavedString = serde_json::from_slice(&text)
            .with_context(|| format!("{} is damaged; {again}", json.display()))?;
        let differs = saved.settings.differences(settings);
        if !differs.is_empty() {
            bail!(
                "cannot resume in {}: its path was computed with other settings ({}); rerun with \
                 the same ones, or choose another --out",
                out.display(),
                differs.join(", ")
            );
        }
        let rows = saved.bead_energies.len();
        let expected = if saves_beads { num_params } else { 0 };
        if saved.num_params != expected {
            bail!(
                "{}: num_params is {}, but config '{}' has {num_params} parameters per bead{}; \
                 {again}",
                json.display(),
                saved.num_params,
                settings.config.name,
                if saves_beads {
                    ""
                } else {
                    " and this method saves none"
                }
            );
        }
        if !saves_beads && rows != 0 {
            bail!(
                "{}: {rows} bead energies, but this method saves no beads; {again}",
                json.display()
            );
        }
        if let Some((k, e)) = saved
            .bead_energies
            .iter()
            .enumerate()
            .find(|(_, e)| e.is_nan())
        {
            bail!("{}: bead {k}'s energy is {e}; {again}", json.display());
        }
        let params = params_path(out);
        let expected_bytes = rows
            .checked_mul(saved.num_params)
            .and_then(|n| n.checked_mul(4))
            .with_context(|| {
                format!(
                    "{}: {rows} beads of {} parameters",
                    json.display(),
                    saved.num_params
                )
            })?;
        // The size is checked before the file is read: it is the file's claim to check.
        let len = std::fs::metadata(&params)
            .with_context(|| format!("reading {}", params.display()))?
            .len();
        if len != expected_bytes as u64 {
            bail!(
                "{} holds {len} bytes, expected {rows} beads of {} parameters ({expected_bytes} \
                 bytes); {again}",
                params.display(),
                saved.num_params
            );
        }
        let bytes =
            std::fs::read(&params).with_context(|| format!("reading {}", params.display()))?;
        saved.beads = bytes
            .chunks_exact(saved.num_params.max(1) * 4)
            .take(rows)
            .map(|row| {
                row.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            })
            .collect();
        for (k, bead) in saved.beads.iter().enumerate() {
            if let Some(i) = bead.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{}: bead {k}'s parameter {i} is {}; {again}",
                    params.display(),
                    bead[i]
                );
            }
        }
        Ok(saved)
    }

    /// Removes the saved path once the report is written (best effort: the run has succeeded).
    pub fn remove(out: &Path) {
        let _ = std::fs::remove_file(json_path(out));
        let _ = std::fs::remove_file(params_path(out));
    }
}

impl RunSettings {
    /// The names of the settings that differ from `other` (config keys dotted).
    fn differences(&self, other: &RunSettings) -> Vec<String> {
        let mut out: Vec<String> = self
            .config
            .differences(&other.config)
            .into_iter()
            .map(|k| format!("config {k}"))
            .collect();
        if self.endpoints != other.endpoints {
            out.push("--a/--b".into());
        }
        // A level derived from the checkpoints (None) matches whatever the first run used.
        if other.level.is_some() && self.level != other.level {
            out.push("--level".into());
        }
        for (differs, name) in [
            (self.seed != other.seed, "--seed"),
            (self.method != other.method, "--method"),
            (self.align != other.align, "--align"),
        ] {
            if differs {
                out.push(name.into());
            }
        }
        out
    }
}
