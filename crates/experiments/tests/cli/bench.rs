use std::path::PathBuf;

use levelset_models::backend::BACKEND_NAME;
use serde_json::Value;

use crate::common::*;

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

#[test]
fn bench_times_the_polynomial_net_and_writes_the_shared_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    let run = succeed([
        "bench".as_ref(),
        "--models".as_ref(),
        "poly".as_ref(),
        // A repeated option takes its last value (gpu-check.sh appends overrides): 2 repeats.
        "--repeats".as_ref(),
        "5".as_ref(),
        "--repeats".as_ref(),
        "2".as_ref(),
        "--steps".as_ref(),
        "3".as_ref(),
        "--dss-repeats".as_ref(),
        "2".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--breakdown".as_ref(),
        "--configs".as_ref(),
        configs().as_os_str(),
        // Accepted although the polynomial task reads no files (it applies to data tasks).
        "--data-dir".as_ref(),
        levelset_data::testing::fixture_data_dir().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let report = read_json(&out);
    assert_eq!(report["tool"], "levelset");
    assert_eq!(report["backend"], BACKEND_NAME);
    assert_eq!(report["threads"], 1);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let results = report["results"].as_array().unwrap();
    let find = |model: &str, workload: &str| -> &Value {
        results
            .iter()
            .find(|r| r["model"] == model && r["workload"] == workload)
            .unwrap_or_else(|| panic!("no {model} {workload} in {report}"))
    };
    for (model, workload, unit) in [
        ("machine", "matmul_peak", "GFLOP/s"),
        ("poly", "train_step", "examples/s"),
        ("poly", "eval", "examples/s"),
        ("poly", "segment_check_stacked", "s"),
        ("poly", "segment_check_pointwise", "s"),
        ("poly", "hessian_gradient", "s"),
        ("poly", "hessian_vector_product", "s"),
        ("poly", "dss_end_to_end", "s"),
        ("poly", "step_forward", "ms/step"),
        ("poly", "step_backward", "ms/step"),
        ("poly", "step_optimizer", "ms/step"),
    ] {
        let m = find(model, workload);
        assert_eq!(m["unit"], unit);
        let samples: Vec<f64> = m["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(samples.len(), 2, "{m}");
        let (median, min, max) = (f64_at(m, "median"), f64_at(m, "min"), f64_at(m, "max"));
        assert!(median > 0.0 && median.is_finite(), "{m}");
        assert!(min <= median && median <= max, "{m}");
    }
    // The printed table names every workload.
    assert!(
        run.stdout.contains("| poly | segment_check_pointwise |"),
        "{}",
        run.stdout
    );
}

#[test]
fn bench_rejects_an_unknown_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    fail_with(
        [
            "bench".as_ref(),
            "--models".as_ref(),
            "resnet".as_ref(),
            "--repeats".as_ref(),
            "1".as_ref(),
            "--configs".as_ref(),
            configs().as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["unknown model \"resnet\"", "poly, mnist, cifar10, ptb"],
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn warmup_runs_the_chosen_phases_once_and_rejects_unknown_ones() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let run = succeed([
        "warmup".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--phases".as_ref(),
        "train,check".as_ref(),
        "--steps".as_ref(),
        "2".as_ref(),
    ]);
    assert!(run.stdout.contains("training steps (2)"), "{}", run.stdout);
    assert!(run.stdout.contains("segment check"), "{}", run.stdout);
    assert!(!run.stdout.contains("energy evaluation"), "{}", run.stdout);
    assert!(run.stdout.contains("tunes nothing"), "{}", run.stdout);
    fail_with(
        [
            "warmup".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--phases".as_ref(),
            "train,backward".as_ref(),
        ],
        &["unknown phase 'backward'", "train, eval, check"],
    );
    fail_with(
        [
            "warmup".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--layers".as_ref(),
            "im2col".as_ref(),
        ],
        &["--layers", "unknown layer rule 'im2col'"],
    );
}

/// `warmup --launches` counts CubeCL kernel launches; on a CPU backend it says why it cannot,
/// and writes nothing; `--kernel-times` needs it.
#[test]
fn warmup_launches_needs_a_cubecl_backend_and_kernel_times_needs_launches() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("launches.json");
    if cfg!(not(any(feature = "wgpu", feature = "cuda"))) {
        fail_with(
            [
                "warmup".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                "--launches".as_ref(),
                out.as_os_str(),
            ],
            &[
                "--launches",
                "CubeCL backends (wgpu, cuda)",
                "launches no kernels",
            ],
        );
        assert!(!out.exists(), "nothing written");
    }
    fail_with(
        [
            "warmup".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--kernel-times".as_ref(),
        ],
        &["--launches"],
    );
}
