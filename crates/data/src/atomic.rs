//! Atomic file writes: a result file is either the old complete one or the new complete one,
//! never a torn write from a killed run or a full disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a new temporary file beside `path` (made by [`create_new`]), checks every
/// write, syncs the file, renames it over `path` and syncs the folder, so that the rename
/// itself survives a crash. On any failure the temporary file is removed and `path` keeps its
/// old content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| {
        let mut file = create_new(&tmp)?;
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the write's own error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_parent(path)
}

/// Creates `path` as a new, empty file for writing. Whatever is already there (a leftover of a
/// killed run, or a link someone planted) is removed first, and the file is then opened with
/// `create_new`, which fails rather than follows a link, so that a write never lands in a file
/// outside the folder. Removing a link removes the link, not its target.
pub fn create_new(path: &Path) -> std::io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Syncs the folder holding `path`, which makes a rename or a new file in it durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

/// A hidden sibling name for `path` that a rename can move into place.
pub fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}
