//! `levelset hessian` at a trained checkpoint: the JSON it prints and writes, and the splits a
//! task holds; `connect --hessian` along a path. The nets are the linear-regression quick
//! config's (a squared error: a smooth loss); the polynomial tasks' absolute error is refused.

use tempfile::TempDir;

use crate::common::*;

/// `configs/linear-quick.toml` with `extra` appended.
fn linear(extra: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/linear-quick.toml");
    format!("{}{extra}", std::fs::read_to_string(path).unwrap())
}

#[test]
fn hessian_reports_the_top_eigenvalues_and_trace_of_a_trained_net() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "linear.toml", &linear(""));
    let model = dir.path().join("a");
    succeed(args(&[
        &"train",
        &"--config",
        &config,
        &"--level",
        &"0.2",
        &"--out",
        &model,
    ]));
    let out = dir.path().join("hessian.json");
    let hessian = |split: &str, examples: &str| {
        args(&[
            &"hessian",
            &"--config",
            &config,
            &"--checkpoint",
            &model,
            &"--top",
            &"3",
            &"--trace",
            &"--probes",
            &"20",
            &"--split",
            &split,
            &"--examples",
            &examples,
            &"--out",
            &out,
        ])
    };
    let run = succeed(hessian("test", "200"));
    let printed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let written = read_json(&out);
    assert_eq!(printed, written);
    let values: Vec<f64> = written["top_eigenvalues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values.len(), 3, "{written}");
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    // A trained net sits near a minimum: its largest curvature is positive.
    assert!(values[0] > 0.0, "{written}");
    for e in written["top_eigenvalues"].as_array().unwrap() {
        assert!(e["residual"].as_f64().unwrap().is_finite(), "{written}");
    }
    let trace = &written["trace"];
    assert_eq!(trace["probes"], 20);
    assert!(f64_at(trace, "estimate").is_finite() && f64_at(trace, "standard_error") > 0.0);
    assert_eq!(written["split"], "test");
    assert_eq!(written["examples"], 200);
    assert_eq!(written["lanczos_iterations"], 16);
    assert!(f64_at(&written, "difference_step") > 0.0);
    // The training split too; no more examples than the split holds.
    succeed(hessian("train", "500"));
    fail_with(hessian("test", "501"), &["501 examples", "holds 500"]);
    // The polynomial tasks' mean absolute error has kinks where residuals are zero: refused.
    let tiny = write(dir.path(), "tiny.toml", &tiny());
    let poly = dir.path().join("poly");
    succeed(args(&[
        &"train",
        &"--config",
        &tiny,
        &"--level",
        &"0.1",
        &"--out",
        &poly,
    ]));
    fail_with(
        args(&[
            &"hessian",
            &"--config",
            &tiny,
            &"--checkpoint",
            &poly,
            &"--split",
            &"test",
            &"--examples",
            &"200",
        ]),
        &["mean absolute error", "no second derivative"],
    );
}

/// `connect --hessian`: the config's `[hessian]` measured at every bead (the same numbers
/// `levelset hessian` gives at the bead's checkpoint), hessian.json with positions along the
/// path, a summary in report.json and the figure. A measurement stopped part-way continues
/// with `connect --resume --hessian`, to the same file; one of other settings is refused.
#[test]
fn connect_hessian_measures_every_bead_and_resumes() {
    let dir = TempDir::new().unwrap();
    let section =
        "\n[hessian]\ntop = 2\ntrace = true\nprobes = 10\nsplit = \"test\"\nexamples = 200\n";
    let config = write(dir.path(), "linear.toml", &linear(section));
    let connect = |out: &std::path::Path, extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut words: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"connect",
            &"--config",
            &config,
            &"--level",
            &"0.2",
            &"--hessian",
            &"--out",
        ];
        words.push(&out);
        words.extend_from_slice(extra);
        args(&words)
    };
    let out = dir.path().join("run");
    succeed(connect(&out, &[]));
    let report = read_json(&out.join("report.json"));
    let measured = read_json(&out.join("hessian.json"));
    let points = measured["points"].as_array().unwrap();
    let beads = u64_at(&report, "beads") as usize;
    assert_eq!(points.len(), beads, "{measured}");
    assert_eq!(measured["settings"]["top"], 2);
    assert_eq!(measured["settings"]["probes"], 10);
    let t: Vec<f64> = points.iter().map(|p| f64_at(p, "t")).collect();
    assert_eq!((t[0], t[beads - 1]), (0.0, 1.0));
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    for (k, p) in points.iter().enumerate() {
        assert_eq!(u64_at(p, "index") as usize, k);
        assert_eq!(p["energy"], report["bead_energies"][k]);
        assert_eq!(p["hessian"]["top_eigenvalues"].as_array().unwrap().len(), 2);
    }
    let summary = &report["hessian"];
    assert_eq!(summary["file"], "hessian.json");
    assert_eq!(
        summary["top_eigenvalue"][1],
        points[1]["hessian"]["top_eigenvalues"][0]["value"]
    );
    assert_eq!(
        summary["trace"][0],
        points[0]["hessian"]["trace"]["estimate"]
    );
    for ext in ["svg", "png"] {
        assert!(
            std::fs::metadata(out.join(format!("hessian.{ext}")))
                .unwrap()
                .len()
                > 0
        );
    }
    // The numbers `levelset hessian` gives at a bead's checkpoint, settings alike.
    let flags: [&dyn AsRef<std::ffi::OsStr>; 11] = [
        &"--top",
        &"2",
        &"--trace",
        &"--probes",
        &"10",
        &"--split",
        &"test",
        &"--examples",
        &"200",
        &"--config",
        &config,
    ];
    let bead = out.join("beads").join("0001");
    let mut at_bead: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"hessian", &"--checkpoint", &bead];
    at_bead.extend_from_slice(&flags);
    let alone = succeed(args(&at_bead));
    let alone: serde_json::Value = serde_json::from_str(&alone.stdout).unwrap();
    assert_eq!(
        alone["top_eigenvalues"],
        points[1]["hessian"]["top_eigenvalues"]
    );
    assert_eq!(alone["trace"], points[1]["hessian"]["trace"]);

    // `hessian --path` measures a run connected without --hessian afterwards: the same file
    // and summary as `connect --hessian`.
    let plain = dir.path().join("plain");
    succeed(args(&[
        &"connect",
        &"--config",
        &config,
        &"--level",
        &"0.2",
        &"--out",
        &plain,
    ]));
    assert!(
        read_json(&plain.join("report.json"))
            .get("hessian")
            .is_none()
    );
    let mut words: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"hessian", &"--path", &plain];
    words.extend_from_slice(&flags);
    let printed = succeed(args(&words));
    assert_eq!(read_json(&plain.join("hessian.json")), measured);
    assert_eq!(
        read_json(&plain.join("report.json"))["hessian"],
        report["hessian"]
    );
    let printed: serde_json::Value = serde_json::from_str(&printed.stdout).unwrap();
    assert_eq!(
        printed["top_eigenvalue"],
        report["hessian"]["top_eigenvalue"]
    );
    // One place to measure, not two.
    let mut both: Vec<&dyn AsRef<std::ffi::OsStr>> = words.clone();
    both.extend_from_slice(&[&"--checkpoint", &bead]);
    fail_with(args(&both), &["--checkpoint", "--path"]);

    // A measurement of other settings in the folder is refused once the path is computed;
    // the path is kept, and a resume with a partial measurement of these settings continues
    // it to the uninterrupted run's file.
    let again = dir.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let mut other = measured.clone();
    other["settings"]["seed"] = 5.into();
    std::fs::write(
        again.join("hessian.json"),
        serde_json::to_vec_pretty(&other).unwrap(),
    )
    .unwrap();
    fail_with(connect(&again, &[]), &["hessian.json", "other settings"]);
    assert!(!again.join("report.json").exists());
    // A cut-short or foreign file is refused by name and left as it is.
    let text = serde_json::to_string_pretty(&measured).unwrap();
    for bad in [&text[..text.len() / 2], "\u{0}binary"] {
        std::fs::write(again.join("hessian.json"), bad).unwrap();
        fail_with(
            connect(&again, &[&"--resume"]),
            &["hessian.json", "not a levelset path curvature"],
        );
        assert_eq!(
            std::fs::read_to_string(again.join("hessian.json")).unwrap(),
            bad
        );
    }
    let mut partial = measured.clone();
    partial["points"].as_array_mut().unwrap().truncate(1);
    std::fs::write(
        again.join("hessian.json"),
        serde_json::to_vec_pretty(&partial).unwrap(),
    )
    .unwrap();
    succeed(connect(&again, &[&"--resume"]));
    assert_eq!(read_json(&again.join("hessian.json")), measured);
    // A curve keeps no points to measure: refused before any work.
    let curve = dir.path().join("curve");
    fail_with(
        connect(&curve, &[&"--method", &"bezier"]),
        &["--hessian", "curve"],
    );
    assert!(!curve.exists());
}

/// The Hessian of a small MNIST MLP (`Flatten, Linear(784, 8), ReLU, Linear(8, 10)`, PyTorch's
/// names) over 16 training images, against its exact numbers (`tests/fixtures/hessian`: the
/// top eigenvalue by power iteration on exact Hessian-vector products, the R-operator that
/// `torch.autograd` computes, and the exact trace), the weights imported as a PyTorch user's.
#[test]
fn hessian_of_an_imported_mnist_mlp_matches_its_exact_numbers() {
    let dir = TempDir::new().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hessian");
    let exact = read_json(&fixtures.join("mlp_hessian.json"));
    let config = write(
        dir.path(),
        "mlp.toml",
        r#"name = "hessian-mlp"
energy = "test_loss"

[task]
kind = "mnist"
train_limit = 16
test_limit = 16
batch_size = 16

[task.net]
layers = [
    { kind = "flatten" },
    { kind = "linear", features = 8 },
    { kind = "relu" },
    { kind = "linear", features = 10 },
]

[train]
check_every = 10
max_steps = 10

[train.optimizer]
kind = "adam"
lr = 1e-3
"#,
    );
    let data = levelset_data::testing::fixture_data_dir();
    let model = dir.path().join("mlp");
    succeed(import_args(
        &config,
        &fixtures.join("mlp.safetensors"),
        &model,
        &data,
    ));
    let run = succeed(args(&[
        &"hessian",
        &"--config",
        &config,
        &"--checkpoint",
        &model,
        &"--top",
        &"1",
        &"--iterations",
        &"30",
        &"--trace",
        &"--probes",
        &"1000",
        &"--split",
        &"train",
        &"--examples",
        &"16",
        &"--data-dir",
        &data,
    ]));
    let measured: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(measured["num_params"], exact["parameters"]);
    let top = &measured["top_eigenvalues"][0];
    let want = f64_at(&exact, "top_eigenvalue");
    let got = f64_at(top, "value");
    assert!(
        (got - want).abs() <= 1e-3 * want,
        "top eigenvalue {got}, exact {want}"
    );
    assert!(f64_at(top, "residual") <= 1e-2 * want, "{measured}");
    let trace = &measured["trace"];
    let (estimate, se) = (f64_at(trace, "estimate"), f64_at(trace, "standard_error"));
    let want = f64_at(&exact, "trace");
    assert!(
        (estimate - want).abs() <= 4.0 * se + 1e-3 * want,
        "trace {estimate} +- {se}, exact {want}"
    );
}

/// A sweep whose config has a `[hessian]` measures every string's beads: each row's
/// `curvature` has one entry per bead, from t = 0 to 1. A task whose loss has kinks is
/// refused before any training.
#[test]
fn a_sweep_with_a_hessian_section_measures_every_string() {
    let dir = TempDir::new().unwrap();
    let text = linear("\n[hessian]\ntop = 1\ntrace = true\nprobes = 5\nexamples = 100\n")
        .replace(
            "levels = [1.0, 0.5, 0.2, 0.1, 0.05, 0.03, 0.02]",
            "levels = [0.2]",
        )
        .replace("pairs = 5", "pairs = 1");
    let config = write(dir.path(), "linear-quick.toml", &text);
    let out = dir.path().join("sweep");
    succeed(args(&[&"sweep", &"--config", &config, &"--out", &out]));
    let results = read_json(&out.join("results.json"));
    let row = &results["rows"][0];
    let beads = u64_at(row, "beads") as usize;
    let curvature = &row["curvature"];
    let t: Vec<f64> = serde_json::from_value(curvature["t"].clone()).unwrap();
    assert_eq!(t.len(), beads, "{row}");
    assert_eq!((t[0], t[beads - 1]), (0.0, 1.0));
    for key in ["top_eigenvalue", "trace"] {
        let values: Vec<f64> = serde_json::from_value(curvature[key].clone()).unwrap();
        assert_eq!(values.len(), beads, "{row}");
        assert!(values.iter().all(|v| v.is_finite()), "{row}");
    }
    let top: Vec<f64> = serde_json::from_value(curvature["top_eigenvalue"].clone()).unwrap();
    assert!(top.iter().all(|v| *v > 0.0), "{row}");
    // `reproduce` finds the sweep finished and draws the curvature along every string.
    let configs = dir.path().to_path_buf();
    succeed(args(&[
        &"reproduce",
        &"linear",
        &"--configs",
        &configs,
        &"--out",
        &out,
    ]));
    for stem in ["curvature", "curvature-trace"] {
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("L0 = 0.2, pair 0"), "{stem}.svg");
        assert!(out.join(format!("{stem}.png")).exists());
    }

    let kinked = write(
        dir.path(),
        "tiny.toml",
        &format!("{}\n[hessian]\nsplit = \"test\"\nexamples = 100\n", tiny()),
    );
    let refused = dir.path().join("refused");
    fail_with(
        args(&[&"sweep", &"--config", &kinked, &"--out", &refused]),
        &["[hessian]", "mean absolute error"],
    );
    assert!(!refused.join("results.json").exists());
}
