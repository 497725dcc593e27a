//! One shard of a sweep (`sweep --shard K/N`: the pairs p with p mod N = K), where its
//! results live under the sweep's output folder, and the record of the split that every
//! shard of that folder shares.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use levelset_models::atomic::{sync_parent, write_atomic};
use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, SweepConfig};

/// At most this many shards. A count read back from a folder name or a record sizes loops
/// and listings, so it is bounded whatever the file says; a sweep with more pairs than this
/// still splits into this many shards.
pub const MAX_SHARDS: usize = 100_000;

/// The split record's name inside `out/shards`.
pub const SPLIT_FILE: &str = "split.json";

/// Shard `index` of `count`: the pairs p with p mod count = index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawShard")]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// A shard as a results file spells it, checked as the command line's is before it becomes
/// a [`Shard`] (a count of 0 would divide by zero).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    index: usize,
    count: usize,
}

impl TryFrom<RawShard> for Shard {
    type Error = String;

    fn try_from(raw: RawShard) -> Result<Self, String> {
        format!("{}/{}", raw.index, raw.count).parse()
    }
}

impl Shard {
    pub fn owns(self, pair: usize) -> bool {
        pair % self.count == self.index
    }

    /// The shard's folder under a sweep's output folder.
    pub fn dir(self, out: &Path) -> PathBuf {
        shards_dir(out).join(self.to_string())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-of-{}", self.index, self.count)
    }
}

/// `K/N` on the command line (and `K-of-N`, the folder name).
impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (k, n) = text
            .split_once('/')
            .or_else(|| text.split_once("-of-"))
            .ok_or_else(|| format!("expected K/N (shard K of N), got '{text}'"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("expected K/N with whole numbers, got '{text}'"))
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: expected 0 <= K < N"));
        }
        if count > MAX_SHARDS {
            return Err(format!(
                "shard {index}/{count}: expected N of at most {MAX_SHARDS}"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// Where a study in `out` keeps its results: `out` itself, or the folder of `shard` under it.
pub fn results_dir(out: &Path, shard: Option<Shard>) -> PathBuf {
    shard.map_or_else(|| out.to_path_buf(), |s| s.dir(out))
}

/// `shard`, or `whole` (e.g. "a whole graph") for none, as a message names it.
pub fn describe(shard: Option<Shard>, whole: &str) -> String {
    shard.map_or_else(|| whole.to_string(), |s| format!("shard {s}"))
}

pub fn shards_dir(out: &Path) -> PathBuf {
    out.join("shards")
}

pub fn split_path(out: &Path) -> PathBuf {
    shards_dir(out).join(SPLIT_FILE)
}

/// Refuses a split of `sweep` into `count` shards that leaves a shard without pairs (or
/// exceeds [`MAX_SHARDS`]).
pub fn check_count(count: usize, sweep: &SweepConfig) -> Result<(), String> {
    let most = sweep.pairs.min(MAX_SHARDS);
    if count == 0 || count > most {
        return Err(format!(
            "a split into {count} shards: expected 1 to {most} (sweep.pairs is {}, and a \
             shard needs at least one pair; at most {MAX_SHARDS} shards)",
            sweep.pairs
        ));
    }
    Ok(())
}

/// The split of a sharded sweep, recorded once in `out/shards/split.json` by `levelset
/// slurm` or by the first `sweep --shard` into `out`. Every shard's run is checked against
/// it, and `sweep --status` and `merge` take the shard count and the config from it, never
/// from the names of the folders they find.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub shards: usize,
    pub config: ExperimentConfig,
}

impl Split {
    /// The recorded sweep; a record without one is refused when read.
    pub fn sweep(&self) -> Result<&SweepConfig> {
        self.config
            .sweep
            .as_ref()
            .with_context(|| format!("config {} has no [sweep] section", self.config.name))
    }

    /// A valid config with a [sweep] that `shards` can split.
    fn check(&self) -> Result<()> {
        self.config.validate()?;
        check_count(self.shards, self.sweep()?).map_err(anyhow::Error::msg)
    }

    /// What `other` asks for that this record does not hold; `None` when they agree.
    fn difference(&self, other: &Split) -> Option<String> {
        if self.shards != other.shards {
            return Some(format!(
                "a split into {} shards, not {}",
                self.shards, other.shards
            ));
        }
        let keys = self.config.differences(&other.config);
        (!keys.is_empty()).then(|| format!("another config (differs in {})", keys.join(", ")))
    }
}

/// The split recorded under `out`, checked, if there is one.
pub fn read_split(out: &Path) -> Result<Option<Split>> {
    let path = split_path(out);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let split: Split = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a levelset split record (damaged?)",
            path.display()
        )
    })?;
    split
        .check()
        .with_context(|| format!("{} records an invalid split", path.display()))?;
    Ok(Some(split))
}

/// The entries of `out/shards` that should be shard folders: all but the split record and
/// hidden files (temporary files, locks), by name.
pub fn shard_entries(out: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = shards_dir(out);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == SPLIT_FILE {
            continue;
        }
        found.push((name, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// Records `split` in `out/shards/split.json`, or checks it against the record there: a
/// run of another shard count or config is refused, `instead` saying what to do. With
/// `replace` a different record is replaced, but only while no shard folder exists:
/// results are never orphaned.
pub fn record_split(out: &Path, split: &Split, replace: bool, instead: &str) -> Result<()> {
    split.check()?;
    let path = split_path(out);
    if let Some(recorded) = read_split(out)? {
        let Some(difference) = recorded.difference(split) else {
            return Ok(());
        };
        if !replace {
            bail!(
                "{} records {difference}: every shard under {} belongs to that split; {instead}",
                path.display(),
                out.display()
            );
        }
        let started = shard_entries(out)?;
        if !started.is_empty() {
            let names: Vec<&str> = started.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "{} records {difference}, and {} holds its shards ({}): move them aside \
                 first; replacing the record never orphans results",
                path.display(),
                shards_dir(out).display(),
                names.join(", ")
            );
        }
        return write_atomic(&path, &to_json(split)?)
            .with_context(|| format!("writing {}", path.display()));
    }
    if create_new(&path, &to_json(split)?)? {
        Ok(())
    } else {
        // Another shard's run recorded its split first: this run must agree with it.
        record_split(out, split, false, instead)
    }
}

fn to_json(split: &Split) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(split).context("serializing the split record")
}

/// Writes `bytes` to `path` whole, unless `path` exists (then false): the file is written
/// beside it and linked into place, so that runs starting together never see half of it.
fn create_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut file = tempfile::Builder::new()
        .prefix(".split")
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing into {}", dir.display()))?;
    match file.persist_noclobber(path) {
        Ok(_) => {
            sync_parent(path).with_context(|| format!("writing {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error).with_context(|| format!("writing {}", path.display())),
    }
}
