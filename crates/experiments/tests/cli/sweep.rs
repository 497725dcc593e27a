//! `levelset sweep`: levels x pairs, the three result files, and resuming a killed sweep.

use std::path::Path;

use levelset_models::backend::BACKEND_NAME;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

fn sweep(config: &Path, out: &Path, resume: bool) -> Value {
    let extra: &[&std::ffi::OsStr] = if resume { &["--resume".as_ref()] } else { &[] };
    let args = sweep_args(config, out, extra);
    let run = succeed(&args);
    assert!(run.stdout.contains("| L0 |"), "the table: {}", run.stdout);
    read_json(&out.join("results.json"))
}

fn rows(results: &Value) -> &Vec<Value> {
    results["rows"].as_array().unwrap()
}

/// The tiny sweep: levels [0.1, 0.06] x 2 pairs.
const JOBS: [(f64, u64); 4] = [(0.1, 0), (0.1, 1), (0.06, 0), (0.06, 1)];

#[test]
fn sweep_writes_json_csv_and_summary() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("sweep");
    let results = sweep(&config, &out, false);

    assert_eq!(results["backend"], BACKEND_NAME);
    assert_eq!(results["levelset_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(results["config"]["name"], "tiny");
    let rows = rows(&results);
    assert_eq!(rows.len(), JOBS.len());
    for (row, (level, pair)) in rows.iter().zip(JOBS) {
        assert_eq!(f64_at(row, "level"), level);
        assert_eq!(u64_at(row, "pair"), pair);
        assert_eq!(row["outcome"], "connected", "{row}");
        assert_eq!(row["reason"], "");
        assert_ne!(row["seed_a"], row["seed_b"]);
        assert!(f64_at(row, "energy_a") <= level && f64_at(row, "energy_b") <= level);
        assert!(u64_at(row, "beads") >= 3);
        assert!(f64_at(row, "normalized_length") >= 1.0 - 1e-9);
        assert!(f64_at(row, "max_energy") <= 1.1 * level);
        assert!(u64_at(row, "bead_steps") > 0);
        assert!(u64_at(row, "energy_evaluations") > 0);
        assert!(f64_at(row, "wall_seconds") >= 0.0);
    }
    // Pairs draw distinct seeds; each level reuses the same pairs of seeds.
    assert_ne!(rows[0]["seed_a"], rows[1]["seed_a"]);
    assert_ne!(rows[0]["seed_b"], rows[1]["seed_a"]);
    assert_eq!(rows[0]["seed_a"], rows[2]["seed_a"]);

    let summary = results["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    for (s, level) in summary.iter().zip([0.1, 0.06]) {
        assert_eq!(f64_at(s, "level"), level);
        assert_eq!(u64_at(s, "pairs"), 2);
        assert_eq!(u64_at(s, "connected"), 2);
        assert_eq!(u64_at(s, "not_connected"), 0);
        assert_eq!(u64_at(s, "failed"), 0);
        let at: Vec<&Value> = rows.iter().filter(|r| r["level"] == s["level"]).collect();
        let mean = at
            .iter()
            .map(|r| f64_at(r, "normalized_length"))
            .sum::<f64>()
            / 2.0;
        assert!((f64_at(s, "length_mean") - mean).abs() < 1e-12);
        let beads = at.iter().map(|r| u64_at(r, "beads") as f64).sum::<f64>() / 2.0;
        assert_eq!(f64_at(s, "beads_mean"), beads);
        assert!(s["length_se"].is_number());
    }

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + JOBS.len(), "{csv}");
    assert!(
        lines[0].starts_with("level,pair,seed_a,seed_b,outcome,reason,energy_a,energy_b"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(",wall_seconds"));
    let columns = lines[0].split(',').count();
    for (line, (level, pair)) in lines[1..].iter().zip(JOBS) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), columns, "{line}");
        assert_eq!(fields[0].parse::<f64>().unwrap(), level);
        assert_eq!(fields[1], pair.to_string());
        assert_eq!(fields[4], "connected");
    }

    let table = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(table.starts_with("tiny (test_loss;"), "{table}");
    assert!(table.contains(
        "| L0 | length, connected | beads, connected | length, all | beads, all | connected |"
    ));
    for level in ["0.1", "0.06"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {level} |")))
            .unwrap_or_else(|| panic!("no row for {level} in {table}"));
        assert!(line.contains("| 2/2 |"), "{line}");
        // Endpoints stopped by the energy rule lie at or below the level: energy / L0 <= 1.
        let range = line
            .rsplit('[')
            .next()
            .unwrap()
            .trim_end_matches(['|', ' ', ']']);
        let (min, max) = range.split_once(", ").unwrap();
        let (min, max): (f64, f64) = (min.parse().unwrap(), max.parse().unwrap());
        assert!(0.0 < min && min <= max && max <= 1.0, "{line}");
    }
}

#[test]
fn rerunning_into_the_same_directory_needs_resume() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("sweep");
    sweep(&config, &out, false);
    let before = std::fs::read(out.join("results.json")).unwrap();
    fail_with(
        sweep_args(&config, &out, &[]),
        &["--resume", "results.json"],
    );
    assert_eq!(before, std::fs::read(out.join("results.json")).unwrap());

    // Resuming a finished sweep redoes nothing and rewrites the files byte for byte (the
    // rows' numbers survive being read back, down to the last bit).
    let csv = std::fs::read(out.join("results.csv")).unwrap();
    let table = std::fs::read(out.join("summary.md")).unwrap();
    sweep(&config, &out, true);
    assert_eq!(
        String::from_utf8(before).unwrap(),
        std::fs::read_to_string(out.join("results.json")).unwrap()
    );
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        std::fs::read_to_string(out.join("results.csv")).unwrap()
    );
    assert_eq!(table, std::fs::read(out.join("summary.md")).unwrap());
}

/// A sweep killed after `k` pairs (its results.json holds the first `k` rows) and resumed
/// ends with the rows of an uninterrupted sweep, and keeps the finished rows as they were.
#[test]
fn a_resumed_sweep_matches_an_uninterrupted_one() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let whole = dir.path().join("whole");
    let reference = sweep(&config, &whole, false);
    let reference_csv = std::fs::read_to_string(whole.join("results.csv")).unwrap();
    let reference_table = std::fs::read_to_string(whole.join("summary.md")).unwrap();
    let strip_wall = |csv: &str| -> Vec<String> {
        csv.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
            .collect()
    };

    for k in 0..JOBS.len() {
        let out = dir.path().join(format!("killed-after-{k}"));
        let mut results = sweep(&config, &out, false);
        // Simulate the kill: keep the first k rows, everything else as written.
        results["rows"].as_array_mut().unwrap().truncate(k);
        let kept = results["rows"].clone();
        std::fs::write(
            out.join("results.json"),
            serde_json::to_vec_pretty(&results).unwrap(),
        )
        .unwrap();

        let resumed = sweep(&config, &out, true);
        assert_eq!(rows(&resumed).len(), JOBS.len(), "k = {k}");
        assert_eq!(
            without_wall_seconds(&resumed),
            without_wall_seconds(&reference),
            "k = {k}: resumed results differ from the uninterrupted sweep's"
        );
        // The first k rows were not redone: their wall times are the ones kept.
        assert_eq!(&rows(&resumed)[..k], kept.as_array().unwrap().as_slice());
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        assert_eq!(strip_wall(&csv), strip_wall(&reference_csv), "k = {k}");
        assert_eq!(
            std::fs::read_to_string(out.join("summary.md")).unwrap(),
            reference_table
        );
    }
}

#[test]
fn resume_without_earlier_results_starts_fresh() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let fresh = sweep(&config, &dir.path().join("fresh"), true);
    let plain = sweep(&config, &dir.path().join("plain"), false);
    assert_eq!(without_wall_seconds(&fresh), without_wall_seconds(&plain));
}

#[test]
fn resume_with_another_config_is_refused() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("sweep");
    let mut results = sweep(&config, &out, false);
    results["rows"].as_array_mut().unwrap().truncate(1);
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results).unwrap(),
    )
    .unwrap();
    let before = std::fs::read(out.join("results.json")).unwrap();
    for (from, to, key) in [
        ("alpha = 0.95", "alpha = 0.9", "dss.alpha"),
        (
            "levels = [0.1, 0.06]",
            "levels = [0.1, 0.05]",
            "sweep.levels",
        ),
        ("seed = 0", "seed = 1", "sweep.seed"),
    ] {
        let other = write(dir.path(), "other.toml", &edit(&tiny(), from, to));
        let run = fail_with(
            sweep_args(&other, &out, &["--resume".as_ref()]),
            &["different config", "results.json", key],
        );
        // Only the changed key is named.
        assert!(!run.stderr.contains("dss.grid"), "{}", run.stderr);
        assert_eq!(before, std::fs::read(out.join("results.json")).unwrap());
    }
    // Something else in results.json is refused too.
    std::fs::write(out.join("results.json"), b"{\"rows\": 3}").unwrap();
    fail_with(
        sweep_args(&config, &out, &["--resume".as_ref()]),
        &[
            "not a levelset sweep result",
            "results.csv",
            "move results.json aside",
        ],
    );
}

/// A results.json to resume from holds only this sweep's rows, each once: a row twice, a
/// row beyond the sweep, one shard's rows, or a config that no config file could hold is
/// refused with the row or key named, and the file is left as it was.
#[test]
fn resume_refuses_rows_that_are_not_the_sweeps_own() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("sweep");
    let original = sweep(&config, &out, false);
    let path = out.join("results.json");
    // Each edit of results.json, and what the refusal names.
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (
            |r| r["rows"][1] = r["rows"][0].clone(),
            vec!["level 0.1 pair 0 appears twice"],
        ),
        (
            |r| r["rows"][3]["pair"] = 7.into(),
            vec!["level 0.06 pair 7", "does not belong to this sweep"],
        ),
        (
            |r| r["shard"] = serde_json::json!({"index": 0, "count": 2}),
            vec!["the rows of shard 0-of-2, not of a whole sweep"],
        ),
        (
            |r| r["shard"] = serde_json::json!({"index": 0, "count": 0}),
            vec!["not a levelset sweep result", "0 <= K < N"],
        ),
        (
            |r| r["backend"] = "elsewhere".into(),
            vec!["computed on the elsewhere backend"],
        ),
        (
            |r| r["config"]["sweep"]["pairs"] = 1_000_000_000_000u64.into(),
            vec!["records an invalid config", "sweep.pairs"],
        ),
    ];
    for (change, needles) in cases {
        let mut json = original.clone();
        change(&mut json);
        let text = serde_json::to_vec_pretty(&json).unwrap();
        std::fs::write(&path, &text).unwrap();
        let mut all = needles.clone();
        all.push("results.json");
        fail_with(sweep_args(&config, &out, &["--resume".as_ref()]), &all);
        assert_eq!(std::fs::read(&path).unwrap(), text, "{needles:?}");
    }
}

/// Appendix E: each pair is a trained 2-3-2 net and its copy with two hidden units swapped.
const SYMMETRY: &str = r#"name = "symmetry"
energy = "train_loss"

[task]
kind = "three_point_cycle"
hidden = 3

[train]
check_every = 10
max_steps = 20000

[train.optimizer]
kind = "adam"
lr = 0.01

[dss]
alpha = 0.95
slack = 1.1
grid = 20
insert_at = "midpoint"
order = "breadth_first"
max_depth = 3
max_beads = 32
first_bead_always = true
bead = { optimizer = { kind = "adam", lr = 0.01 }, check_every = 10, max_steps = 500 }

[sweep]
levels = [0.5, 0.1]
pairs = 4
partner = { kind = "swapped_units", layer = 0, units = [0, 1] }
"#;

#[test]
fn swapped_unit_partners_connect_above_the_symmetric_optimum_only() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "symmetry.toml", SYMMETRY);
    let results = sweep(&config, &dir.path().join("out"), false);
    let rows = rows(&results);
    for row in rows {
        // The partner is the same function: its energy is the first endpoint's.
        assert_eq!(row["energy_a"], row["energy_b"]);
    }
    // Pair 3's net (seed 6) fits the cycle; some other seeds start with a dead unit and
    // cannot get below 1/6 themselves.
    let (high, low) = (&rows[3], &rows[7]);
    assert_eq!(high["outcome"], "connected", "{high:?}");
    // Below 1/6 the midpoint bead keeps the swapped units equal and stalls there.
    assert_ne!(low["outcome"], "connected", "{low:?}");
    let reason = low["reason"].as_str().unwrap();
    assert!(
        reason.contains("bead 1") && reason.contains("best 0.1666"),
        "{low:?}"
    );
}

#[test]
fn swapped_units_outside_the_layer_are_an_error() {
    let dir = TempDir::new().unwrap();
    let bad = edit(SYMMETRY, "units = [0, 1]", "units = [0, 3]");
    let config = write(dir.path(), "bad.toml", &bad);
    let results = sweep(&config, &dir.path().join("out"), false);
    // Seeds whose net cannot fit the cycle fail earlier, at their endpoint.
    let trained: Vec<&Value> = rows(&results)
        .iter()
        .filter(|r| !r["energy_a"].is_null())
        .collect();
    assert!(!trained.is_empty());
    for row in trained {
        assert_eq!(row["outcome"], "failed");
        assert!(
            row["reason"]
                .as_str()
                .unwrap()
                .contains("layer 0 has 3 units"),
            "{row:?}"
        );
    }
    let same = edit(SYMMETRY, "units = [0, 1]", "units = [1, 1]");
    let config = write(dir.path(), "same.toml", &same);
    fail_with(
        sweep_args(&config, &dir.path().join("same"), &[]),
        &["sweep.partner.units"],
    );
}
