//! `levelset connect`: DSS between two checkpoints or two endpoints it trains itself.

use std::path::Path;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;
use crate::train::train;

fn connect(config: &Path, extra: &[&str], out: &Path) -> Value {
    let mut args: Vec<std::ffi::OsString> = vec![
        "connect".into(),
        "--config".into(),
        config.into(),
        "--out".into(),
        out.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let run = succeed(&args);
    assert!(run.stdout.contains("report.json"), "{}", run.stdout);
    read_json(&out.join("report.json"))
}

/// Checks what every report of the tiny config must hold, and that `out/beads` holds one
/// checkpoint per bead; returns the bead directories.
fn check_report(report: &Value, out: &Path, level: f64) -> Vec<std::path::PathBuf> {
    assert_eq!(report["method"], "dss");
    assert_eq!(report["energy"], "test_loss");
    assert_eq!(f64_at(report, "level"), level);
    assert_eq!(report["status"], "connected", "{report}");
    let beads = u64_at(report, "beads") as usize;
    // first_bead_always: at least the two endpoints and the midpoint bead.
    assert!(beads >= 3, "{report}");
    let length = f64_at(report, "normalized_length");
    assert!(length >= 1.0 - 1e-9, "{report}");
    assert_eq!(report["length_over"], "weights");
    assert_eq!(length, f64_at(report, "normalized_length_weights"));
    assert!(f64_at(report, "normalized_length_all") >= 1.0 - 1e-9);
    assert!(f64_at(report, "endpoint_distance") > 0.0);
    assert_eq!(u64_at(report, "grid"), 20);
    let energies: Vec<f64> = report["bead_energies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_f64().unwrap())
        .collect();
    assert_eq!(energies.len(), beads);
    // Endpoints below the level, trained beads below alpha * level.
    assert!(energies[0] <= level && energies[beads - 1] <= level);
    for e in &energies[1..beads - 1] {
        assert!(*e <= 0.95 * level, "bead energy {e} in {report}");
    }
    let segments = report["segments"].as_array().unwrap();
    assert_eq!(segments.len(), beads - 1);
    for s in segments {
        assert_eq!(s["passed"], true, "{report}");
        assert!(f64_at(s, "max_energy") <= 1.1 * level);
    }
    let max = f64_at(report, "max_energy");
    assert!(max <= 1.1 * level, "{report}");
    assert!(energies.iter().all(|e| *e <= max));
    assert!(u64_at(report, "bead_steps") > 0);
    assert!(u64_at(report, "energy_evaluations") >= 20);
    assert!(f64_at(report, "wall_seconds") >= 0.0);

    let dirs: Vec<_> = (0..beads)
        .map(|k| out.join("beads").join(format!("{k:04}")))
        .collect();
    for (k, dir) in dirs.iter().enumerate() {
        assert!(dir.join("model.mpk").is_file(), "{}", dir.display());
        let meta = read_json(&dir.join("model.json"));
        assert_eq!(f64_at(&meta, "energy"), energies[k]);
        assert_eq!(f64_at(&meta, "level"), level);
        assert_eq!(meta["energy_kind"], "test_loss");
    }
    assert!(!out.join("beads").join(format!("{beads:04}")).exists());
    dirs
}

#[test]
fn connect_two_trained_checkpoints() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let a = train(dir.path(), &config, 0.06, 1, "a");
    let b = train(dir.path(), &config, 0.06, 2, "b");
    let out = dir.path().join("ab");
    // Without --level: the higher of the endpoints' training levels.
    let report = connect(
        &config,
        &["--a", a.to_str().unwrap(), "--b", b.to_str().unwrap()],
        &out,
    );
    let beads = check_report(&report, &out, 0.06);
    // The string runs from A to B: its first and last beads are the endpoints' weights.
    assert_eq!(quadratic_params(&beads[0]), quadratic_params(&a));
    assert_eq!(
        quadratic_params(&beads[beads.len() - 1]),
        quadratic_params(&b)
    );
    assert_ne!(quadratic_params(&beads[1]), quadratic_params(&a));
    let energy_a = f64_at(&read_json(&a.join("model.json")), "energy");
    let first = report["bead_energies"][0].as_f64().unwrap();
    assert!((first - energy_a).abs() <= 1e-6, "{first} vs {energy_a}");

    // An explicit higher level is used as given.
    let out = dir.path().join("ab-high");
    let report = connect(
        &config,
        &[
            "--a",
            a.to_str().unwrap(),
            "--b",
            b.to_str().unwrap(),
            "--level",
            "0.08",
        ],
        &out,
    );
    check_report(&report, &out, 0.08);
}

#[test]
fn connect_trains_its_own_endpoints() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("own");
    let report = connect(&config, &["--level", "0.06", "--seed", "3"], &out);
    check_report(&report, &out, 0.06);
    // Another seed, other endpoints.
    let out2 = dir.path().join("own2");
    let other = connect(&config, &["--level", "0.06", "--seed", "4"], &out2);
    assert_ne!(
        quadratic_params(&out.join("beads/0000")),
        quadratic_params(&out2.join("beads/0000"))
    );
    assert_ne!(report["endpoint_distance"], other["endpoint_distance"]);

    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--out".as_ref(),
            dir.path().join("no-level").as_os_str(),
        ],
        &["--level is required"],
    );
}

#[test]
fn a_checkpoint_of_another_architecture_is_an_error() {
    let dir = TempDir::new().unwrap();
    let quadratic = write(dir.path(), "quadratic.toml", &tiny());
    let cubic = write(dir.path(), "cubic.toml", &tiny_config("cubic"));
    let a = train(dir.path(), &quadratic, 0.1, 1, "a");
    // The cubic net has a linear output where the quadratic one has a sigmoid.
    let c = train(dir.path(), &cubic, 0.5, 1, "c");
    let out = dir.path().join("ac");
    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            quadratic.as_os_str(),
            "--a".as_ref(),
            a.as_os_str(),
            "--b".as_ref(),
            c.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &[
            &c.join("model.json").display().to_string(),
            "checkpoint holds",
            "\"output\":\"identity\"",
        ],
    );
    assert!(!out.join("report.json").exists());
    // A directory without a checkpoint names the missing file.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            quadratic.as_os_str(),
            "--a".as_ref(),
            empty.as_os_str(),
            "--b".as_ref(),
            a.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &[&empty.join("model.json").display().to_string()],
    );
}

#[test]
fn a_without_b_is_a_usage_error() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    for (given, missing) in [("--a", "--b"), ("--b", "--a")] {
        let run = fail_with(
            [
                "connect".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                given.as_ref(),
                dir.path().as_os_str(),
                "--level".as_ref(),
                "0.1".as_ref(),
                "--out".as_ref(),
                dir.path().join("out").as_os_str(),
            ],
            &[missing, "required"],
        );
        assert_eq!(run.status.code(), Some(2), "clap's usage error");
    }
}

#[test]
fn one_checkpoint_as_both_endpoints_is_an_error_not_a_nan_length() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let a = train(dir.path(), &config, 0.1, 1, "a");
    let out = dir.path().join("aa");
    // Every path method goes through the same check; the tiny config defines DSS only.
    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--a".as_ref(),
            a.as_os_str(),
            "--b".as_ref(),
            a.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["same model", "distance 0"],
    );
    assert!(!out.join("report.json").exists());
}

#[test]
fn a_level_below_an_endpoint_is_an_error() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let a = train(dir.path(), &config, 0.1, 1, "a");
    let b = train(dir.path(), &config, 0.1, 2, "b");
    let out = dir.path().join("ab");
    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--a".as_ref(),
            a.as_os_str(),
            "--b".as_ref(),
            b.as_os_str(),
            "--level".as_ref(),
            "0.001".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["endpoint A", "above the level 0.001"],
    );
    assert!(!out.join("report.json").exists());
}

#[test]
fn connect_is_deterministic() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    // Endpoints trained by connect itself, twice with the same seed.
    let first = connect(
        &config,
        &["--level", "0.06", "--seed", "3"],
        &dir.path().join("first"),
    );
    let again = connect(
        &config,
        &["--level", "0.06", "--seed", "3"],
        &dir.path().join("again"),
    );
    assert_eq!(without_wall_seconds(&first), without_wall_seconds(&again));
    let beads = u64_at(&first, "beads");
    for k in 0..beads {
        let bead = format!("beads/{k:04}");
        assert_eq!(
            quadratic_params(&dir.path().join("first").join(&bead)),
            quadratic_params(&dir.path().join("again").join(&bead)),
            "{bead}"
        );
    }
    // Between checkpoints, twice.
    let a = train(dir.path(), &config, 0.06, 1, "a");
    let b = train(dir.path(), &config, 0.06, 2, "b");
    let endpoints = ["--a", a.to_str().unwrap(), "--b", b.to_str().unwrap()];
    let first = connect(&config, &endpoints, &dir.path().join("ab1"));
    let again = connect(&config, &endpoints, &dir.path().join("ab2"));
    assert_eq!(without_wall_seconds(&first), without_wall_seconds(&again));
}

/// A run that computed its path but could not write its report keeps the path; a rerun refuses
/// to mix into the folder, and `--resume` finishes it without computing the path again, to the
/// same report and beads as an uninterrupted run. The report cannot be written because a folder
/// holds its temporary file's name: `write_atomic` removes a file or link there but not a
/// folder. (A file-size limit cannot single out the report: `string.json`, written before it,
/// holds the report and more.)
#[test]
fn connect_resume_finishes_a_run_that_could_not_write_its_report() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let args = ["--level", "0.06", "--seed", "3"];
    let whole = connect(&config, &args, &dir.path().join("whole"));

    let out = dir.path().join("cut");
    std::fs::create_dir_all(&out).unwrap();
    let blocker = out.join(".report.json.partial");
    std::fs::create_dir(&blocker).unwrap();
    let base = |out: &Path| -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec![
            "connect".into(),
            "--config".into(),
            config.clone().into(),
            "--out".into(),
            out.into(),
        ];
        v.extend(args.iter().map(Into::into));
        v
    };
    let report = out.join("report.json");
    fail_with(base(&out), &[&format!("writing {}", report.display())]);
    assert!(!report.exists());
    assert!(out.join("string.json").exists() && out.join("beads/0000").exists());
    std::fs::remove_dir(&blocker).unwrap();
    // A bead checkpoint lost as well: the resumed run writes it again.
    std::fs::remove_dir_all(out.join("beads/0001")).unwrap();

    fail_with(base(&out), &["unfinished path", "--resume"]);
    let other_seed: Vec<std::ffi::OsString> = base(&out)
        .into_iter()
        .map(|a| if a == "3" { "4".into() } else { a })
        .chain(["--resume".into()])
        .collect();
    fail_with(&other_seed, &["cannot resume", "--seed"]);

    let mut resume = base(&out);
    resume.push("--resume".into());
    let run = succeed(&resume);
    assert!(run.stdout.contains("resuming"), "{}", run.stdout);
    let resumed = read_json(&out.join("report.json"));
    assert_eq!(without_wall_seconds(&resumed), without_wall_seconds(&whole));
    for k in 0..u64_at(&whole, "beads") {
        let bead = format!("beads/{k:04}");
        assert_eq!(
            quadratic_params(&out.join(&bead)),
            quadratic_params(&dir.path().join("whole").join(&bead)),
            "{bead}"
        );
    }
    assert!(!out.join("string.json").exists() && !out.join("string.f32").exists());
    fail_with(resume, &["already holds a path"]);
}
