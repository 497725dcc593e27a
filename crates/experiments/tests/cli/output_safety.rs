//! What levelset guarantees about its outputs: one run per output folder (an exclusive lock,
//! refused at once with the holder's process id) and no checkpoint replaced without `--force`.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use levelset_models::outdir::OutputLock;
use tempfile::TempDir;

use crate::common::*;
use crate::train::train;

#[test]
fn train_refuses_an_existing_checkpoint_unless_forced() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = train(dir.path(), &config, 0.1, 1, "a");
    let first = quadratic_params(&out);
    let again = |extra: &[&str]| {
        let mut args = train_args(&config, &out);
        args.extend(extra.iter().map(|a| a.into()));
        args
    };
    fail_with(again(&[]), &["already holds a checkpoint", "--force"]);
    assert_eq!(quadratic_params(&out), first, "the checkpoint is untouched");
    succeed(again(&["--force"]));
    assert_ne!(quadratic_params(&out), first, "--force replaced it");
}

#[test]
fn every_writing_command_refuses_a_locked_output_folder_before_any_work() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("busy");
    let _held = OutputLock::acquire(&out).unwrap();
    let pid = std::process::id().to_string();
    let needles = ["in use by another levelset run", pid.as_str()];
    let (c, o) = (config.as_os_str(), out.as_os_str());
    fail_with(train_args(&config, &out), &needles);
    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            c,
            "--level".as_ref(),
            "0.1".as_ref(),
            "--out".as_ref(),
            o,
        ],
        &needles,
    );
    fail_with(sweep_args(&config, &out, &[]), &needles);
    fail_with(["merge".as_ref(), "--out".as_ref(), o], &needles);
    fail_with(
        [
            "slurm".as_ref(),
            "--config".as_ref(),
            c,
            "--out".as_ref(),
            o,
            "--tasks".as_ref(),
            "2".as_ref(),
        ],
        &needles,
    );
    fail_with(
        [
            "reproduce".as_ref(),
            "prop23".as_ref(),
            "--out".as_ref(),
            o as &OsStr,
        ],
        &needles,
    );
    let mut left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [".levelset.lock"],
        "nothing written by the refused runs"
    );
}

#[test]
fn a_sweep_into_a_folder_that_cannot_be_written_fails_before_training() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    // A regular file where the folder should be: refused even for root, who ignores
    // permission bits.
    let out = write(dir.path(), "not-a-folder", "x");
    let run = fail_with(sweep_args(&config, &out, &[]), &["not-a-folder"]);
    assert!(!run.stderr.contains("pair"), "{}", run.stderr);
}

/// `train --config CONFIG --level 0.1 --seed 2 --out OUT`.
fn train_args(config: &Path, out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["train".into(), "--config".into(), config.into()];
    for arg in ["--level", "0.1", "--seed", "2", "--out"] {
        args.push(arg.into());
    }
    args.push(out.into());
    args
}
