//! One shard of a sweep (`sweep --shard K/N`: the pairs p with p mod N = K) and where its
//! results live under the sweep's output folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` of `count`: the pairs p with p mod count = index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
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
        Ok(Shard { index, count })
    }
}

pub fn shards_dir(out: &Path) -> PathBuf {
    out.join("shards")
}
