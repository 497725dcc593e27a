//! Where the workspace's tests find real data, and how a test without it says so.
//!
//! CI sets `$LEVELSET_DATA_DIR` (and `.ci/run` fails without the copies), so there every test
//! runs on the real copies. On a developer's bare clone the tests that can run on the small
//! extracts committed in `fixtures/data` use those; the others report themselves skipped by
//! name on the terminal, past the test harness's output capture.

use std::io::Write;
use std::path::PathBuf;

use crate::locate::{DATA_DIR_ENV, env_data_dir};

/// The real data copies: `$LEVELSET_DATA_DIR` when set (a run that sets it expects the copies
/// there, and its tests fail without them), else the offline copies in `shared/data` beside
/// the checkout when they exist, else `None`.
pub fn real_data_dir() -> Option<PathBuf> {
    if let Some(dir) = env_data_dir() {
        return Some(dir);
    }
    let beside = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    beside.join("mnist").is_dir().then_some(beside)
}

/// The extracts committed in the repository: `mnist/` (the first 1,000 training and 700 test
/// images of the offline copy) and `ptb/` (the first 2,600 or so tokens of the validation and
/// test texts). See `fixtures/README.md`.
pub fn fixture_data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/data"))
}

/// The real copies when present, else the committed extracts.
pub fn real_or_fixture_data_dir() -> PathBuf {
    real_data_dir().unwrap_or_else(fixture_data_dir)
}

/// The real copies, or `None` after reporting the calling test as skipped. Use as
/// `let Some(dir) = real_data_or_skip() else { return };`.
pub fn real_data_or_skip() -> Option<PathBuf> {
    let dir = real_data_dir();
    if dir.is_none() {
        let current = std::thread::current();
        let test = current.name().unwrap_or("a test");
        // Straight to the terminal: the harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs the real data copies (set {DATA_DIR_ENV}, or \
             `levelset data fetch all`)"
        );
    }
    dir
}
