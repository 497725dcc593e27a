//! `levelset reproduce`: a sweep followed by its figures.

use tempfile::TempDir;

use crate::common::*;

/// PNG files start with this signature.
const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

#[test]
fn reproduce_runs_the_quick_sweep_and_draws_both_figures() {
    let dir = TempDir::new().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    write(&configs, "quadratic-quick.toml", &tiny());
    let out = dir.path().join("out");
    let args: [&std::ffi::OsStr; 6] = [
        "reproduce".as_ref(),
        "quadratic".as_ref(),
        "--configs".as_ref(),
        configs.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    succeed(args);
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["rows"].as_array().unwrap().len(), 4);
    for figure in ["length", "beads"] {
        let svg = std::fs::read_to_string(out.join(format!("{figure}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{figure}.svg is not SVG");
        // Both series and the axis label are drawn.
        assert!(
            svg.contains("levelset (mean"),
            "{figure}.svg lacks our series"
        );
        assert!(
            svg.contains("Freeman &amp; Bruna"),
            "{figure}.svg lacks the paper's series"
        );
        assert!(
            svg.contains("level L0"),
            "{figure}.svg lacks the axis label"
        );
        let png = std::fs::read(out.join(format!("{figure}.png"))).unwrap();
        assert_eq!(png[..8], PNG_MAGIC, "{figure}.png is not a PNG");
        assert!(png.len() > 5_000, "{figure}.png is suspiciously small");
    }
    // Running it again resumes the finished sweep instead of refusing.
    succeed(args);
}

#[test]
fn reproduce_rejects_an_unknown_task() {
    fail_with(["reproduce", "quadratics"], &["unknown task", "quadratic"]);
}
