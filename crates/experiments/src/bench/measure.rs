//! Repeated measurements with a busy-machine guard, and the shared JSON schema of
//! `levelset bench` and `experiments/bench/torch_bench.py`.

use serde::{Deserialize, Serialize};

use super::cpu_share::CpuClock;

/// A repeat during which other processes took more than this share of the machine is
/// measured again.
const BUSY_LIMIT: f64 = 0.10;
/// Extra tries per repeat before a busy measurement is kept and flagged.
const RETRIES: usize = 3;
/// A repeat runs its workload until this much time has passed: the CPU counters tick every
/// 10 ms, so shorter repeats would see no other process at all.
const MIN_REPEAT_SECONDS: f64 = 0.3;

/// One run of a workload: how long it took and how much it did (examples, tokens, flops).
pub struct Timed {
    pub seconds: f64,
    pub work: f64,
}

/// What a measurement reports per repeat.
#[derive(Debug, Clone, Copy)]
pub enum Report {
    /// Work per second, in the given unit (scaled by `scale`).
    Rate { unit: &'static str, scale: f64 },
    /// Seconds per run.
    Seconds,
    /// Seconds per unit of work (a training step), scaled by `scale` (1e3: milliseconds).
    PerWork { unit: &'static str, scale: f64 },
}

impl Report {
    pub(super) fn unit(self) -> &'static str {
        match self {
            Report::Rate { unit, .. } | Report::PerWork { unit, .. } => unit,
            Report::Seconds => "s",
        }
    }

    fn value(self, seconds: f64, work: f64, runs: usize) -> f64 {
        match self {
            Report::Rate { scale, .. } => work / seconds * scale,
            Report::Seconds => seconds / runs as f64,
            Report::PerWork { scale, .. } => seconds / work * scale,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub model: String,
    pub workload: String,
    /// `examples/s`, `tokens/s`, `GFLOP/s` (higher is better) or `s` (lower is better).
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
    /// The highest share of the machine other processes used during a kept repeat.
    pub other_cpu_share: Option<f64>,
    /// Some repeat stayed busier than the limit after every retry.
    pub flagged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// The widest vector instructions the CPU offers the GEMM kernels, which pick them at
    /// run time: the same build trains the MNIST convnet a third faster with AVX-512.
    #[serde(default)]
    pub simd: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub tool: String,
    pub version: String,
    pub backend: String,
    pub threads: usize,
    pub machine: Machine,
    /// How levelset computed its convolutions and LSTM layers (`burn` or `matmul`,
    /// `levelset_models::nets::rule`); absent in PyTorch's reports and older ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<String>,
    pub results: Vec<Measurement>,
}

impl Machine {
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|name| name.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine {
            cpu,
            cores,
            simd: simd().into(),
        }
    }
}

/// Whether the CPU has AVX2 and FMA, the instructions of x86-64-v3 that levelset's x86-64
/// builds target (`.cargo/config.toml`).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_and_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
fn simd() -> &'static str {
    if std::is_x86_feature_detected!("avx512f") {
        "AVX-512"
    } else if has_avx2_and_fma() {
        "AVX2+FMA"
    } else {
        "SSE2"
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn simd() -> &'static str {
    std::env::consts::ARCH
}

/// Times `repeats` repeats of `run` (each repeat running it at least once and for at least
/// `MIN_REPEAT_SECONDS`), redoing a repeat while the machine was busy, and summarizes them
/// by the median.
pub fn measure(
    model: &str,
    workload: &str,
    report: Report,
    repeats: usize,
    mut run: impl FnMut() -> Timed,
) -> Measurement {
    let unit = report.unit();
    let mut samples = Vec::with_capacity(repeats);
    let mut worst_share: Option<f64> = None;
    let mut flagged = false;
    for _ in 0..repeats {
        for attempt in 0..=RETRIES {
            let clock = CpuClock::now();
            let value = one_repeat(report, &mut run);
            let share = clock.others_since();
            let busy = share.is_some_and(|s| s > BUSY_LIMIT);
            if busy && attempt < RETRIES {
                tracing::warn!(model, workload, share, "machine busy, measuring again");
                continue;
            }
            flagged |= busy;
            if let Some(s) = share {
                worst_share = Some(worst_share.map_or(s, |w| w.max(s)));
            }
            samples.push(value);
            break;
        }
    }
    let (median, min, max) = summary(&samples);
    let measurement = Measurement {
        model: model.into(),
        workload: workload.into(),
        unit: unit.into(),
        median,
        min,
        max,
        samples,
        other_cpu_share: worst_share,
        flagged,
    };
    tracing::info!(
        model,
        workload,
        median = measurement.median,
        unit,
        flagged,
        "measured"
    );
    measurement
}

/// Runs `run` at least once and until `MIN_REPEAT_SECONDS` have passed, in the runs' own
/// timings or on the clock, whichever comes first: a run that times only a phase of what it
/// does (`bench --breakdown`) would otherwise repeat its whole work thousands of times.
fn one_repeat(report: Report, run: &mut impl FnMut() -> Timed) -> f64 {
    let (mut seconds, mut work, mut runs) = (0.0, 0.0, 0);
    let start = std::time::Instant::now();
    while runs == 0
        || (seconds < MIN_REPEAT_SECONDS && start.elapsed().as_secs_f64() < MIN_REPEAT_SECONDS)
    {
        let timed = run();
        seconds += timed.seconds;
        work += timed.work;
        runs += 1;
    }
    report.value(seconds, work, runs)
}

/// (median, min, max); NaN for no samples.
fn summary(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    let min = sorted.first().copied().unwrap_or(f64::NAN);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    (median, min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_are_accumulated_into_one_repeat() {
        let mut calls = 0;
        let value = one_repeat(Report::Seconds, &mut || {
            calls += 1;
            Timed {
                seconds: 0.1,
                work: 1.0,
            }
        });
        // Three 0.1 s runs reach 0.3 s (four if the sum rounds below it).
        assert!((3..=4).contains(&calls), "{calls} runs");
        assert!((value - 0.1).abs() < 1e-12, "seconds per run, {value}");
    }

    #[test]
    fn a_run_timing_only_part_of_its_work_stops_on_the_clock() {
        let mut calls = 0;
        let value = one_repeat(
            Report::PerWork {
                unit: "ms/step",
                scale: 1e3,
            },
            &mut || {
                calls += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
                Timed {
                    seconds: 1e-6,
                    work: 1.0,
                }
            },
        );
        // Each call sleeps at least 50 ms, so six reach 0.3 s on the clock (fewer when the
        // sleeps run long), where the runs' own 1 µs timings would need 300,000.
        assert!((1..=6).contains(&calls), "{calls} runs");
        assert!(
            (value - 1e-3).abs() < 1e-12,
            "milliseconds per step, {value}"
        );
    }

    #[test]
    fn rates_divide_work_by_time() {
        let rate = Report::Rate {
            unit: "GFLOP/s",
            scale: 1e-9,
        };
        let value = one_repeat(rate, &mut || Timed {
            seconds: 0.5,
            work: 4e9,
        });
        assert_eq!(value, 8.0);
    }

    #[test]
    fn the_summary_is_the_median_and_range() {
        assert_eq!(summary(&[4.0, 8.0, 2.0]), (4.0, 2.0, 8.0));
        assert_eq!(summary(&[4.0, 8.0, 2.0, 1.0]), (3.0, 1.0, 8.0));
        assert!(summary(&[]).0.is_nan());
    }
}
