//! `sweep --shard K/N`, `merge` and `sweep --status`: shards of a sweep merge to exactly the
//! rows of one whole sweep (every column but wall time), and merge refuses what it cannot join.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::*;

/// The tiny config with 3 pairs, so that 2 shards are uneven.
fn three_pairs(dir: &Path) -> PathBuf {
    write(dir, "tiny3.toml", &edit(&tiny(), "pairs = 2", "pairs = 3"))
}

fn shard(config: &Path, out: &Path, shard: &str, resume: bool) -> Run {
    let mut args = sweep_args(config, out, &["--shard".as_ref(), shard.as_ref()]);
    if resume {
        args.push("--resume".into());
    }
    succeed(&args)
}

/// results.csv without its last column (wall seconds).
fn csv_without_wall(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("results.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
        .collect()
}

fn assert_same_sweep(merged: &Path, whole: &Path) {
    assert_eq!(csv_without_wall(merged), csv_without_wall(whole));
    assert_eq!(
        without_wall_seconds(&read_json(&merged.join("results.json"))),
        without_wall_seconds(&read_json(&whole.join("results.json")))
    );
    assert_eq!(
        std::fs::read_to_string(merged.join("summary.md")).unwrap(),
        std::fs::read_to_string(whole.join("summary.md")).unwrap()
    );
}

#[test]
fn shards_merge_to_the_rows_of_one_whole_sweep() {
    let dir = TempDir::new().unwrap();
    let config = three_pairs(dir.path());
    let whole = dir.path().join("whole");
    succeed(sweep_args(&config, &whole, &[]));
    for n in [1, 2, 3] {
        let out = dir.path().join(format!("split-{n}"));
        for k in 0..n {
            shard(&config, &out, &format!("{k}/{n}"), false);
            let part = read_json(&out.join(format!("shards/{k}-of-{n}/results.json")));
            assert_eq!(part["shard"]["index"], k);
            for row in part["rows"].as_array().unwrap() {
                assert_eq!(u64_at(row, "pair") as usize % n, k, "{row}");
            }
        }
        let status = succeed(["sweep", "--status", out.to_str().unwrap()]);
        for k in 0..n {
            assert!(
                status.stdout.contains(&format!("{k}-of-{n}: done")),
                "{}",
                status.stdout
            );
        }
        let run = succeed(["merge", "--out", out.to_str().unwrap()]);
        assert!(run.stdout.contains("merged 6 rows"), "{}", run.stdout);
        assert_same_sweep(&out, &whole);
    }
}

#[test]
fn merge_refuses_gaps_overlapping_splits_and_mixed_configs() {
    let dir = TempDir::new().unwrap();
    let config = three_pairs(dir.path());
    let out = dir.path().join("gap");
    shard(&config, &out, "0/2", false);
    let status = succeed(["sweep", "--status", out.to_str().unwrap()]);
    assert!(status.stdout.contains("0-of-2: done"), "{}", status.stdout);
    assert!(
        status.stdout.contains("1-of-2: missing"),
        "{}",
        status.stdout
    );
    fail_with(
        ["merge", "--out", out.to_str().unwrap()],
        &["row(s) missing", "shards 1-of-2 absent", "--partial"],
    );
    succeed(["merge", "--out", out.to_str().unwrap(), "--partial"]);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("Partial merge") && summary.contains("level 0.1 pair 1"),
        "{summary}"
    );

    // Another split or config than the first shard recorded is refused before it runs.
    let overlap = dir.path().join("overlap");
    shard(&config, &overlap, "0/2", false);
    shard(&config, &overlap, "1/2", false);
    fail_with(
        sweep_args(&config, &overlap, &["--shard".as_ref(), "0/3".as_ref()]),
        &["split.json", "split into 2 shards, not 3"],
    );
    assert!(!overlap.join("shards/0-of-3").exists());

    let mixed = dir.path().join("mixed");
    let other = write(
        dir.path(),
        "other.toml",
        &edit(
            &std::fs::read_to_string(&config).unwrap(),
            "lr = 0.05",
            "lr = 0.04",
        ),
    );
    shard(&config, &mixed, "0/2", false);
    fail_with(
        sweep_args(&other, &mixed, &["--shard".as_ref(), "1/2".as_ref()]),
        &["split.json", "another config", "train.optimizer.lr"],
    );
    // And merge refuses a shard whose results record another config.
    shard(&config, &mixed, "1/2", false);
    let results = mixed.join("shards/1-of-2/results.json");
    let mut json = read_json(&results);
    json["config"]["train"]["optimizer"]["lr"] = 0.04.into();
    std::fs::write(&results, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    fail_with(
        ["merge", "--out", mixed.to_str().unwrap()],
        &[
            "1-of-2/results.json",
            "different config",
            "train.optimizer.lr",
        ],
    );
}

/// The shard count comes from the split record, never from folder names: a folder of
/// another count is named and refused (before, `0-of-10000000` listed ten million shards
/// and `0-of-18446744073709551615` never ended), and so is a record out of bounds.
#[test]
fn status_and_merge_take_the_shard_count_from_the_record() {
    let dir = TempDir::new().unwrap();
    let config = three_pairs(dir.path());
    let out = dir.path().join("s");
    shard(&config, &out, "0/2", false);
    let o = out.to_str().unwrap();
    for name in [
        "0-of-10000000",
        "0-of-18446744073709551615",
        "7-of-2",
        "notes",
    ] {
        let stray = out.join("shards").join(name);
        std::fs::create_dir(&stray).unwrap();
        for args in [["sweep", "--status", o].as_slice(), &["merge", "--out", o]] {
            fail_with(args, &[name]);
        }
        std::fs::remove_dir(&stray).unwrap();
    }
    std::fs::create_dir(out.join("shards/0-of-3")).unwrap();
    fail_with(
        ["sweep", "--status", o],
        &["0-of-3", "split.json records a split into 2"],
    );
    std::fs::remove_dir(out.join("shards/0-of-3")).unwrap();

    let record = out.join("shards/split.json");
    let original = std::fs::read(&record).unwrap();
    for count in [0u64, 4, u64::MAX] {
        let mut json = read_json(&record);
        json["shards"] = count.into();
        std::fs::write(&record, serde_json::to_vec(&json).unwrap()).unwrap();
        let run = fail_with(
            ["sweep", "--status", o],
            &["split.json", &format!("a split into {count} shards")],
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    std::fs::remove_file(&record).unwrap();
    fail_with(["merge", "--out", o], &["has no", "split.json"]);
    std::fs::write(&record, original).unwrap();
    let status = succeed(["sweep", "--status", o]);
    assert_eq!(
        status.stdout, "0-of-2: done (4 rows)\n1-of-2: missing\n",
        "{}",
        status.stdout
    );
}

/// A shard's results.json edited or copied from elsewhere: a row twice (the first taken, a
/// missing row hidden from `sweep --status`), a row of another level or of a pair beyond
/// `pairs`, or with other seeds, is refused by merge (with --partial too) with the shard
/// and the row named, and `sweep --status` lists the shard as damaged, not done.
#[test]
fn merge_and_status_refuse_rows_that_are_not_the_shards_own() {
    let dir = TempDir::new().unwrap();
    let config = three_pairs(dir.path());
    let out = dir.path().join("s");
    shard(&config, &out, "0/2", false);
    shard(&config, &out, "1/2", false);
    let o = out.to_str().unwrap();
    let results = out.join("shards/0-of-2/results.json");
    let original = read_json(&results);
    // Each edit of the rows, and what the refusal names. Shard 0 holds pairs 0 and 2 at
    // levels 0.1 and 0.06, in that order.
    type Edit = fn(&mut Vec<serde_json::Value>);
    let edits: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "duplicate",
            |rows| {
                rows[1] = rows[0].clone();
                rows[1]["outcome"] = "not_connected".into();
            },
            vec!["level 0.1 pair 0 appears twice"],
        ),
        (
            "level",
            |rows| rows[3]["level"] = 0.2.into(),
            vec!["level 0.2 pair 2", "does not belong to shard 0-of-2"],
        ),
        (
            "pair",
            |rows| rows[3]["pair"] = 4.into(),
            vec!["level 0.06 pair 4", "does not belong to shard 0-of-2"],
        ),
        (
            "another shard's pair",
            |rows| rows[3]["pair"] = 1.into(),
            vec!["level 0.06 pair 1", "does not belong to shard 0-of-2"],
        ),
        (
            "seeds",
            |rows| rows[2]["seed_b"] = 99.into(),
            vec!["level 0.06 pair 0", "seeds"],
        ),
    ];
    for (what, change, needles) in edits {
        let mut json = original.clone();
        change(json["rows"].as_array_mut().unwrap());
        std::fs::write(&results, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        let mut all = needles.clone();
        all.push("0-of-2/results.json");
        fail_with(["merge", "--out", o], &all);
        fail_with(["merge", "--out", o, "--partial"], &all);
        assert!(!out.join("results.json").exists(), "{what}");
        let status = succeed(["sweep", "--status", o]);
        assert!(
            status.stdout.contains("0-of-2: damaged") && status.stdout.contains(needles[0]),
            "{what}: {}",
            status.stdout
        );
        assert!(status.stdout.contains("1-of-2: done"), "{}", status.stdout);
    }
    // Rows of two backends do not mix; the merge records the shards' backend.
    let mut json = original.clone();
    json["backend"] = "elsewhere".into();
    std::fs::write(&results, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    fail_with(
        ["merge", "--out", o],
        &["1-of-2/results.json", "backend", "not elsewhere"],
    );
    std::fs::write(&results, serde_json::to_vec_pretty(&original).unwrap()).unwrap();
    succeed(["merge", "--out", o]);
    assert_eq!(
        read_json(&out.join("results.json"))["backend"],
        original["backend"]
    );

    // A merge never replaces results holding rows it would lose.
    let merged = std::fs::read(out.join("results.json")).unwrap();
    let moved = dir.path().join("moved");
    std::fs::rename(out.join("shards/1-of-2"), &moved).unwrap();
    fail_with(
        ["merge", "--out", o, "--partial"],
        &[
            "results.json holds level 0.1 pair 1",
            "which the shards lack",
        ],
    );
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), merged);
    std::fs::rename(&moved, out.join("shards/1-of-2")).unwrap();
    succeed(["merge", "--out", o]);
}

#[test]
fn bad_shards_are_usage_errors() {
    let dir = TempDir::new().unwrap();
    let config = three_pairs(dir.path());
    for bad in ["2/2", "1/0", "x/3", "3"] {
        fail_with(
            sweep_args(
                &config,
                &dir.path().join("o"),
                &["--shard".as_ref(), bad.as_ref()],
            ),
            &["K"],
        );
    }
    fail_with(
        [
            "merge",
            "--out",
            dir.path().join("nothing").to_str().unwrap(),
        ],
        &["no shards"],
    );
}

/// A shard killed with SIGKILL part-way, then resumed, merges to the whole sweep's rows.
#[test]
fn a_shard_killed_and_resumed_merges_to_the_same_rows() {
    let dir = TempDir::new().unwrap();
    let config = write(
        dir.path(),
        "longer.toml",
        &edit(
            &edit(&tiny(), "pairs = 2", "pairs = 4"),
            "levels = [0.1, 0.06]",
            "levels = [0.1, 0.08, 0.06, 0.05]",
        ),
    );
    let whole = dir.path().join("whole");
    succeed(sweep_args(&config, &whole, &[]));
    let out = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_levelset"))
        .args(sweep_args(
            &config,
            &out,
            &["--shard".as_ref(), "0/1".as_ref()],
        ))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let results = out.join("shards/0-of-1/results.json");
    let start = Instant::now();
    while !results.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = read_json(&results)["rows"].as_array().unwrap().len();
    assert!(
        done < 16,
        "the kill came after the shard finished ({done} rows)"
    );
    let status = succeed(["sweep", "--status", out.to_str().unwrap()]);
    assert!(
        status.stdout.contains("0-of-1: failed or stopped"),
        "{}",
        status.stdout
    );

    shard(&config, &out, "0/1", true);
    succeed(["merge", "--out", out.to_str().unwrap()]);
    assert_same_sweep(&out, &whole);
}

#[test]
fn status_reports_a_shard_whose_lock_is_held_as_running() {
    let dir = TempDir::new().unwrap();
    let config = three_pairs(dir.path());
    let out = dir.path().join("s");
    shard(&config, &out, "0/2", false);
    let _held = levelset_models::outdir::OutputLock::acquire(&out.join("shards/1-of-2")).unwrap();
    let status = succeed(["sweep", "--status", out.to_str().unwrap()]);
    assert!(
        status
            .stdout
            .contains(&format!("1-of-2: running, process {}", std::process::id())),
        "{}",
        status.stdout
    );
}
