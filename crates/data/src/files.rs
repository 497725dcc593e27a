//! Reading data files that may or may not be gzipped, and finding them in a directory.
//!
//! Compression is detected from the gzip magic bytes rather than the file name: mirrors
//! sometimes ship decompressed files under `.gz` names (or the reverse), and the official
//! downloads must load unchanged either way.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The whole (decompressed) content of `path`. Empty content is an error because no format
/// read by this crate is meaningful without at least one item.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(DataError::format(path, "a data file", "a directory"));
    }
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        // Reading the compressed file fully first keeps disk errors (Io) apart from decode
        // errors (Gzip); the multi-member decoder accepts concatenated gzip files too.
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
        out
    } else {
        raw
    };
    if bytes.is_empty() {
        return Err(DataError::format(path, "data", "an empty file"));
    }
    Ok(bytes)
}

/// The plain and the `.gz` spelling of `name` inside `dir`, plain first so that a file the
/// user decompressed in place wins over a stale archive next to it.
fn candidates(dir: &Path, name: &str) -> [PathBuf; 2] {
    [dir.join(name), dir.join(format!("{name}.gz"))]
}

/// `dir/name` or `dir/name.gz`, whichever exists (`None` when neither does). A directory of
/// that name counts: reading it then says what it is, instead of "no such file".
pub(crate) fn find_optional(dir: &Path, name: &str) -> Option<PathBuf> {
    candidates(dir, name).into_iter().find(|p| p.exists())
}

/// Like [`find_optional`], but a missing file is an error naming both tried paths.
pub(crate) fn find_required(dir: &Path, name: &str) -> Result<PathBuf> {
    find_optional(dir, name).ok_or_else(|| DataError::NotFound {
        tried: candidates(dir, name).to_vec(),
    })
}

/// Both spellings of every name, for the error when none of several optional files exists.
pub(crate) fn all_candidates<'a>(
    dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<PathBuf> {
    names.into_iter().flat_map(|n| candidates(dir, n)).collect()
}
