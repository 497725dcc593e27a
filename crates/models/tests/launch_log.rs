//! The in-process kernel launch counter (`levelset_models::launches`): reading CubeCL's
//! execution log on any backend, and, on the CubeCL backends, counting real launches.

use std::io::Write;

use levelset_models::launches::{KernelUse, LaunchLog, Launches, parse_launches, total};

fn counts(launches: &Launches) -> Vec<(&str, usize)> {
    launches
        .iter()
        .map(|(k, v)| (k.as_str(), v.launches))
        .collect()
}

#[test]
fn parses_only_executing_lines() {
    let text = "Executing matmul<f32>\nsomething else\nExecuting add\nExecuting matmul<f32>\n";
    let launches = parse_launches(text);
    assert_eq!(counts(&launches), [("add", 1), ("matmul<f32>", 2)]);
    assert_eq!(
        total(&launches),
        KernelUse {
            launches: 3,
            seconds: 0.0
        }
    );
}

#[test]
fn parses_timed_lines_and_skips_summary_tables() {
    // As CubeCL writes them: `| {duration:<10?} | {name}`, and its summary table.
    let text = "| 12.5µs     | matmul\n\
                | 1.5ms      | conv\n\
                | 850ns      | matmul\n\
                | Name   | Duration | Num Computed | Ratio |\n\
                | matmul | 13.35µs  | 2            | 1 %   |\n\
                | 2s         | copy\n";
    let launches = parse_launches(text);
    assert_eq!(counts(&launches), [("conv", 1), ("copy", 1), ("matmul", 2)]);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(launches["matmul"].seconds, 12.5e-6 + 850e-9));
    assert!(close(launches["conv"].seconds, 1.5e-3));
    assert!(close(
        total(&launches).seconds,
        2.0 + 1.5e-3 + 12.5e-6 + 850e-9
    ));
}

#[test]
fn take_counts_new_whole_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exec.log");
    std::fs::write(&path, "Executing before\n").unwrap();
    // Following starts at the current end: what was there before is not counted.
    let mut log = LaunchLog::follow(&path);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    write!(file, "Executing a\nExecuting b\nExecuting a\nExecuting par").unwrap();
    let first = log.take().unwrap();
    assert_eq!(counts(&first), [("a", 2), ("b", 1)]);
    // The partial line is counted once it is whole, and nothing is counted twice.
    writeln!(file, "tial").unwrap();
    let second = log.take().unwrap();
    assert_eq!(counts(&second), [("partial", 1)]);
    assert!(log.take().unwrap().is_empty());
}

#[test]
fn take_on_a_missing_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LaunchLog::follow(&dir.path().join("never-written.log"));
    assert!(log.take().unwrap().is_empty());
}

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
#[test]
fn install_explains_that_cpu_backends_launch_no_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let err = LaunchLog::install(&dir.path().join("exec.log"), false).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(levelset_models::backend::BACKEND_NAME)
            && message.contains("--features wgpu"),
        "{message}"
    );
}

/// The same matmul, run once and then three times, launches exactly three times the kernels;
/// and the log cannot be installed twice. One test, because the log is process-wide and must
/// be installed before the device's first use.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn counts_the_kernels_a_matmul_launches() {
    use burn::prelude::*;
    use levelset_models::backend::{Compute, device};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exec.log");
    let mut log = LaunchLog::install(&path, false).unwrap();
    assert!(matches!(
        LaunchLog::install(&path, false),
        Err(levelset_models::launches::LaunchLogError::TooLate)
    ));
    let dev = device();
    let a = Tensor::<Compute, 2>::from_data(
        TensorData::new((0..64 * 48).map(|i| (i % 7) as f32).collect(), [64, 48]),
        &dev,
    );
    let b = Tensor::<Compute, 2>::from_data(
        TensorData::new((0..48 * 32).map(|i| (i % 5) as f32).collect(), [48, 32]),
        &dev,
    );
    let product = |times: usize| {
        for _ in 0..times {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        Compute::sync(&dev).unwrap();
    };
    // The first use compiles (and may autotune) the kernels: not counted.
    product(1);
    log.take().unwrap();
    product(1);
    let once = log.take().unwrap();
    product(3);
    let thrice = log.take().unwrap();
    assert!(
        total(&once).launches >= 1,
        "a matmul launches a kernel: {once:?}"
    );
    let tripled: Vec<(&str, usize)> = counts(&once).into_iter().map(|(k, n)| (k, 3 * n)).collect();
    assert_eq!(counts(&thrice), tripled);
}
