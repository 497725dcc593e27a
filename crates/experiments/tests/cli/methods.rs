//! `levelset connect --method bezier|polychain|neb [--align]` on the tiny quadratic task.

use tempfile::TempDir;

use crate::common::*;

pub const PATH_SECTIONS: &str = r#"
[curve]
kind = "bezier"
bends = 1
steps = 200
optimizer = { kind = "adam", lr = 0.02 }
slack = 1.1

[neb]
pivots = 2
spring = inf
optimizer = { kind = "adam", lr = 0.02 }
grid = 10
slack = 1.1
[[neb.cycles]]
steps = 100
[[neb.cycles]]
steps = 100
insert = 2
"#;

#[test]
fn every_method_connects_aligned_endpoints_and_reports_it() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &(tiny() + PATH_SECTIONS));
    for method in ["dss", "bezier", "polychain", "neb"] {
        let out = dir.path().join(method);
        succeed([
            "connect".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "0.1".as_ref(),
            "--seed".as_ref(),
            "3".as_ref(),
            "--method".as_ref(),
            method.as_ref(),
            "--align".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        let report = read_json(&out.join("report.json"));
        assert_eq!(report["method"], method, "{method}");
        assert!(
            f64_at(&report, "normalized_length") >= 1.0 - 1e-9,
            "{method}"
        );
        let max = f64_at(&report, "max_energy");
        assert!(max.is_finite(), "{method}");
        if report["status"] == "connected" {
            assert!(max <= 1.1 * 0.1 + 1e-12, "{method}: {max}");
        }
        let align = read_json(&out.join("align.json"));
        assert!(
            f64_at(&align, "barrier_after") <= f64_at(&align, "barrier_before") + 1e-9,
            "{method}: weight matching raised the barrier"
        );
        // Curves are sampled, not trained bead by bead: no bead checkpoints.
        let beads = out.join("beads");
        assert_eq!(
            beads.exists(),
            method == "dss" || method == "neb",
            "{method}: beads folder"
        );
    }
}

#[test]
fn a_method_without_its_section_is_an_error() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    for (method, section) in [("bezier", "[curve]"), ("neb", "[neb]")] {
        let out = dir.path().join(method);
        fail_with(
            [
                "connect".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                "--level".as_ref(),
                "0.1".as_ref(),
                "--method".as_ref(),
                method.as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
            ],
            &[section],
        );
    }
}

/// `levelset reproduce methods` on `configs/methods-quick.toml` into `out`, then `extra`.
fn reproduce_methods(
    configs: &std::path::Path,
    out: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> Vec<std::ffi::OsString> {
    let mut words: Vec<std::ffi::OsString> = vec![
        "reproduce".into(),
        "methods".into(),
        "--configs".into(),
        configs.into(),
        "--out".into(),
        out.into(),
    ];
    words.extend(extra.iter().map(|w| w.to_os_string()));
    words
}

#[test]
fn reproduce_methods_compares_every_method_with_and_without_alignment() {
    let dir = TempDir::new().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let compare = "\n[compare]\nlevel = 0.1\npairs = 1\n";
    // Only [compare] drives this run: drop the tiny config's sweep.
    let before_sweep = tiny().split("[sweep]").next().unwrap().to_string();
    let config = before_sweep + PATH_SECTIONS + compare;
    write(&configs, "methods-quick.toml", &config);
    let out = dir.path().join("out");
    let run = succeed(reproduce_methods(&configs, &out, &[]));
    assert!(
        run.stdout.contains("| method | aligned |"),
        "{}",
        run.stdout
    );
    let rows = read_json(&out.join("results.json"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 8, "4 methods x aligned or not");
    for method in ["dss", "bezier", "polychain", "neb"] {
        for aligned in [false, true] {
            assert!(
                rows.iter()
                    .any(|r| r["method"] == method && r["aligned"] == aligned),
                "{method} aligned={aligned} missing"
            );
        }
    }
    for stem in ["profile", "profile-aligned"] {
        assert!(out.join(format!("{stem}.svg")).is_file());
        assert!(out.join(format!("{stem}.png")).is_file());
    }
    // Every finished path is kept in progress.json: a comparison stopped after three paths
    // continues from there to the rows of the uninterrupted one (their seconds aside).
    let without_seconds = |rows: serde_json::Value| -> Vec<serde_json::Value> {
        let mut rows = rows.as_array().unwrap().clone();
        for row in &mut rows {
            row.as_object_mut().unwrap().remove("wall_seconds");
        }
        rows
    };
    let whole = without_seconds(read_json(&out.join("results.json")));
    let progress_path = out.join("progress.json");
    let mut progress = read_json(&progress_path);
    assert_eq!(progress["rows"].as_array().unwrap().len(), 8);
    progress["rows"].as_array_mut().unwrap().truncate(3);
    progress["profiles"].as_array_mut().unwrap().truncate(3);
    std::fs::write(&progress_path, serde_json::to_vec(&progress).unwrap()).unwrap();
    succeed(reproduce_methods(&configs, &out, &[]));
    assert_eq!(without_seconds(read_json(&out.join("results.json"))), whole);
    // A damaged progress file is refused by name and left as it is.
    std::fs::write(&progress_path, "{ \"rows\": [").unwrap();
    fail_with(
        reproduce_methods(&configs, &out, &[]),
        &["progress.json", "not a levelset comparison's progress"],
    );
    assert_eq!(
        std::fs::read_to_string(&progress_path).unwrap(),
        "{ \"rows\": ["
    );
    // `[compare] statistics` needs a net that keeps running statistics.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    write(
        &other,
        "methods-quick.toml",
        &config.replace("pairs = 1\n", "pairs = 1\nstatistics = [\"batch\"]\n"),
    );
    fail_with(
        reproduce_methods(&other, &dir.path().join("other-out"), &[]),
        &["compare.statistics", "keeps none"],
    );
}

/// On a batch-normalized net, `[compare] statistics` adds the straight line and the DSS
/// string of every pair with each `[bn] stats` mode: statistics.json and .csv, and a table
/// under the methods table.
#[test]
fn reproduce_methods_compares_the_running_statistics_on_a_batch_normalized_net() {
    let dir = TempDir::new().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let data = levelset_data::testing::real_or_fixture_data_dir();
    let config = crate::resnet::MNIST_RESNET.replace("STATS", "recompute")
        + &PATH_SECTIONS
            .replace("steps = 200", "steps = 20")
            .replace("steps = 100", "steps = 10")
        + "\n[compare]\nlevel = 2.0\npairs = 1\nstatistics = [\"recompute\", \"interpolate\", \"batch\"]\n";
    write(&configs, "methods-quick.toml", &config);
    let out = dir.path().join("out");
    let run = succeed(reproduce_methods(
        &configs,
        &out,
        &["--data-dir".as_ref(), data.as_os_str()],
    ));
    assert!(
        run.stdout.contains("| [bn] stats | line max |"),
        "{}",
        run.stdout
    );
    let rows = read_json(&out.join("statistics.json"));
    let rows = rows.as_array().unwrap();
    let modes: Vec<&str> = rows.iter().map(|r| r["stats"].as_str().unwrap()).collect();
    assert_eq!(modes, ["recompute", "interpolate", "batch"]);
    for row in rows {
        assert!(
            row["line_max_energy"].as_f64().is_some_and(f64::is_finite),
            "{row}"
        );
        assert!(row["beads"].as_u64().unwrap() >= 2, "{row}");
    }
    let csv = std::fs::read_to_string(out.join("statistics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("| interpolate |"), "{summary}");
}

#[test]
fn a_second_path_into_the_same_folder_is_refused() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &(tiny() + PATH_SECTIONS));
    let out = dir.path().join("curve");
    let args = |method: &'static str| -> Vec<std::ffi::OsString> {
        vec![
            "connect".into(),
            "--config".into(),
            config.clone().into(),
            "--level".into(),
            "0.1".into(),
            "--method".into(),
            method.into(),
            "--out".into(),
            out.clone().into(),
        ]
    };
    succeed(args("bezier"));
    let report = std::fs::read(out.join("report.json")).unwrap();
    fail_with(args("polychain"), &["already holds a path", "report.json"]);
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), report);
}
