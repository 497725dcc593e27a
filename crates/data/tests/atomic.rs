//! `write_atomic`, which the whole workspace uses for results and checkpoints, against a data
//! or output folder that someone else could have written into.

use std::path::Path;

use levelset_data::atomic::{temp_beside, write_atomic};

/// Every entry of `dir`, hidden temporary files included.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A link planted at the temporary path must not redirect the write to the file it points at,
/// outside the folder: the link is replaced, not followed.
#[cfg(unix)]
#[test]
fn a_link_at_the_temporary_path_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::os::unix::fs::symlink(&victim, temp_beside(&path)).unwrap();

    write_atomic(&path, b"new results").unwrap();

    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&path).unwrap(), b"new results");
    assert_eq!(entries(dir.path()), ["results.json"], "the link is gone");
}

/// A leftover temporary file from a killed run is replaced, not appended to or reused.
#[test]
fn a_leftover_temporary_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::fs::write(temp_beside(&path), b"a longer leftover from a killed run").unwrap();
    write_atomic(&path, b"short").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"short");
    assert_eq!(entries(dir.path()), ["results.json"]);
}
