use levelset_models::backend::BACKEND_NAME;

use crate::common::*;

fn threads_line(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("threads: "))
        .unwrap_or_else(|| panic!("no threads line in {stdout}"));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no thread count in {line:?}"))
}

#[test]
fn info_prints_version_backend_threads_and_cpu() {
    let run = succeed(["info"]);
    assert!(
        run.stdout
            .contains(&format!("levelset {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("backend: {BACKEND_NAME}\n")),
        "{}",
        run.stdout
    );
    if cfg!(not(any(
        feature = "ndarray",
        feature = "wgpu",
        feature = "cuda"
    ))) {
        assert_eq!(BACKEND_NAME, "flex", "the default backend");
    }
    assert!(run.stdout.contains("device: "), "{}", run.stdout);
    assert!(threads_line(&run.stdout) >= 1);
    let cpu = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("cpu: "))
        .unwrap_or_else(|| panic!("no cpu line in {}", run.stdout));
    let simd = ["AVX-512", "AVX2+FMA", "SSE2", std::env::consts::ARCH];
    assert!(
        simd.iter().any(|s| cpu.ends_with(&format!(" cores, {s})"))),
        "{cpu}"
    );
}

#[test]
fn info_reports_the_rayon_thread_count() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_levelset"))
        .arg("info")
        .env("RAYON_NUM_THREADS", "3")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(threads_line(&String::from_utf8_lossy(&output.stdout)), 3);
}
