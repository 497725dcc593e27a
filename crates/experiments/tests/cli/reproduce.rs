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

#[test]
fn reproduce_width_sweeps_every_width_and_fits_a_slope() {
    let dir = TempDir::new().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let config = r#"name = "width-tiny"
energy = "test_loss"

[task]
kind = "relu_width"
input_dim = 2
width = 2
components = 2
train_samples = 100
test_samples = 100
task_seed = 5

[train]
check_every = 10
max_steps = 5000

[train.optimizer]
kind = "adam"
lr = 0.02

[dss]
alpha = 0.95
slack = 1.1
grid = 10
insert_at = "midpoint"
order = "breadth_first"
max_depth = 3
max_beads = 32
first_bead_always = true

[sweep]
levels = [0.05]
pairs = 1

[width]
widths = [2, 4]
"#;
    let curve = "\n[curve]\nkind = \"bezier\"\nbends = 1\nsteps = 50\n\
                 optimizer = { kind = \"adam\", lr = 0.01 }\nslack = 1.1\n";
    write(&configs, "width-quick.toml", &format!("{config}{curve}"));
    let out = dir.path().join("out");
    let run = succeed([
        "reproduce".as_ref(),
        "width".as_ref(),
        "--configs".as_ref(),
        configs.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        run.stdout.contains("Fitted log-log slope"),
        "{}",
        run.stdout
    );
    let rows = read_json(&out.join("results.json"));
    let widths: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["width"].as_u64().unwrap())
        .collect();
    assert_eq!(widths, [2, 4]);
    for m in [2, 4] {
        // Each width is an ordinary, resumable sweep of the network of that width.
        let sweep = read_json(&out.join(format!("m{m}/results.json")));
        assert_eq!(sweep["config"]["task"]["width"], m);
    }
    for stem in ["gap", "curve-gap", "length", "beads"] {
        assert!(out.join(format!("{stem}.png")).is_file(), "{stem}.png");
    }
    // Every width's pair got a trained curve, and the energy along it is finite.
    for row in rows.as_array().unwrap() {
        let gap = row["curve_gap"].as_f64();
        assert!(gap.is_some_and(f64::is_finite), "{row}");
    }
}
