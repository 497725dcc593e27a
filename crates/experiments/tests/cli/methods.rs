//! `levelset connect --method bezier|polychain|neb [--align]` on the tiny quadratic task.

use tempfile::TempDir;

use crate::common::*;

const PATH_SECTIONS: &str = r#"
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
    let run = succeed([
        "reproduce".as_ref(),
        "methods".as_ref(),
        "--configs".as_ref(),
        configs.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
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
