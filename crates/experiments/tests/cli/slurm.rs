//! `levelset slurm`: the scripts it writes, and, on a machine with a working Slurm (CI starts a
//! single-node cluster, `.ci/slurm-up.sh`), a sharded sweep submitted as a job array whose
//! merge job writes the same rows as one whole sweep. Without Slurm the cluster test reports
//! itself skipped by name, unless `LEVELSET_REQUIRE_SLURM` is set (CI sets it).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::*;

#[test]
fn the_scripts_run_one_shard_per_array_task_and_merge_after() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("cluster");
    let run = succeed([
        "slurm".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--tasks".as_ref(),
        "5".as_ref(),
        "--parallel".as_ref(),
        "2".as_ref(),
        "--gpus-per-task".as_ref(),
        "1".as_ref(),
        "--partition".as_ref(),
        "gpu".as_ref(),
        "--time".as_ref(),
        "01:30:00".as_ref(),
        "--extra".as_ref(),
        "#SBATCH --mem=8G".as_ref(),
    ]);
    assert!(run.stdout.contains("sbatch"), "{}", run.stdout);
    let sweep = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    for needle in [
        "#!/bin/bash",
        "#SBATCH --array=0-4%2",
        "_%a.out",
        "%A_",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:30:00",
        "#SBATCH --mem=8G",
        "--shard \"$SLURM_ARRAY_TASK_ID/5\" --resume",
        "sweep-config.toml",
    ] {
        assert!(sweep.contains(needle), "{needle:?} in:\n{sweep}");
    }
    let merge = std::fs::read_to_string(out.join("merge.sbatch")).unwrap();
    assert!(merge.contains(" merge --out "), "{merge}");
    assert!(!merge.contains("--array"), "{merge}");
    assert_eq!(
        std::fs::read(out.join("sweep-config.toml")).unwrap(),
        std::fs::read(&config).unwrap()
    );
    fail_with(
        [
            "slurm".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--extra=--mem=8G".as_ref(),
        ],
        &["#SBATCH"],
    );
}

fn slurm_available() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%a"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up"));
    if !up {
        assert!(
            std::env::var_os("LEVELSET_REQUIRE_SLURM").is_none(),
            "LEVELSET_REQUIRE_SLURM is set but no Slurm cluster answers (sinfo)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_sharded_sweep_on_a_slurm_cluster_merges_to_the_whole_sweep: no Slurm \
             cluster answers here (sinfo)"
        );
    }
    up
}

#[test]
fn a_sharded_sweep_on_a_slurm_cluster_merges_to_the_whole_sweep() {
    if !slurm_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let config = write(
        dir.path(),
        "tiny3.toml",
        &edit(&tiny(), "pairs = 2", "pairs = 3"),
    );
    let whole = dir.path().join("whole");
    succeed(sweep_args(&config, &whole, &[]));
    let out = dir.path().join("cluster");
    let run = succeed([
        "slurm".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--tasks".as_ref(),
        "3".as_ref(),
        "--submit".as_ref(),
    ]);
    let merge_id = run
        .stdout
        .split("merge job ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no merge job id in: {}", run.stdout));
    let start = Instant::now();
    loop {
        let queued = Command::new("squeue")
            .args(["-h", "-j", &merge_id, "-o", "%T"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if queued.is_empty() && out.join("results.csv").exists() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "merge job {merge_id} not done after 300 s (state {queued:?}); logs in {}",
            out.join("logs").display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let strip = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("results.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(strip(&out), strip(&whole));
    let logs: Vec<_> = std::fs::read_dir(out.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(logs.iter().any(|l| l.ends_with("_2.out")), "{logs:?}");
}
