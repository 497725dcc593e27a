//! `levelset hessian` at a trained checkpoint: the JSON it prints and writes, and the splits a
//! task holds.

use tempfile::TempDir;

use crate::common::*;

#[test]
fn hessian_reports_the_top_eigenvalues_and_trace_of_a_trained_net() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let model = dir.path().join("a");
    succeed(args(&[
        &"train",
        &"--config",
        &config,
        &"--level",
        &"0.1",
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
    // The polynomial task draws each model's training points from its seed: no fixed
    // training split to measure, and no more test points than it holds.
    fail_with(hessian("train", "200"), &["draws its own training sample"]);
    fail_with(hessian("test", "201"), &["201 examples", "holds 200"]);
}
