//! Where levelset's data lives. One resolution order for every command:
//! `--data-dir` > `$LEVELSET_DATA_DIR` > the config's `data_dir` > the per-user default
//! (`$XDG_DATA_HOME/levelset`, usually `~/.local/share/levelset`), which is also where
//! `levelset data fetch` writes unless told otherwise.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::catalog::Dataset;

/// The environment variable that names the data directory.
pub const DATA_DIR_ENV: &str = "LEVELSET_DATA_DIR";

/// Which rule of the resolution order chose the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirSource {
    Flag,
    Environment,
    Config,
    UserDefault,
}

impl fmt::Display for DataDirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataDirSource::Flag => "the command line",
            DataDirSource::Environment => DATA_DIR_ENV,
            DataDirSource::Config => "the config's data_dir",
            DataDirSource::UserDefault => "the per-user default",
        })
    }
}

/// `$LEVELSET_DATA_DIR`, when set and not empty.
pub fn env_data_dir() -> Option<PathBuf> {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The per-user default data directory, when the platform has one.
pub fn user_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("levelset"))
}

/// The data directory by the resolution order, and which rule chose it.
pub fn resolve_data_dir(
    flag: Option<&Path>,
    config: Option<&Path>,
) -> Result<(PathBuf, DataDirSource), String> {
    if let Some(dir) = flag {
        return Ok((dir.to_path_buf(), DataDirSource::Flag));
    }
    if let Some(dir) = env_data_dir() {
        return Ok((dir, DataDirSource::Environment));
    }
    if let Some(dir) = config {
        return Ok((dir.to_path_buf(), DataDirSource::Config));
    }
    user_data_dir()
        .map(|dir| (dir, DataDirSource::UserDefault))
        .ok_or_else(|| {
            format!(
                "no data directory: this platform has no per-user data folder; pass --data-dir \
                 or set {DATA_DIR_ENV}"
            )
        })
}

/// What to tell a user whose data set is missing from `dir`: the command that fetches it.
pub fn fetch_hint(dataset: Dataset, dir: &Path) -> String {
    let default = user_data_dir();
    let dir_arg = if default.as_deref() == Some(dir) {
        String::new()
    } else {
        format!(" --dir {}", dir.display())
    };
    format!(
        "the {dataset} files are not in {}; `levelset data fetch {dataset}{dir_arg}` downloads \
         them (or point --data-dir / {DATA_DIR_ENV} at a folder holding {dataset}/)",
        dir.join(dataset.name()).display()
    )
}
