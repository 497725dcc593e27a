//! Kernel launches counted inside levelset's own process, from CubeCL's execution log.
//!
//! On the CubeCL backends (wgpu, cuda) every kernel launch can be logged by name ("Executing
//! `<kernel>`"), or, with timing on, by name and duration ("| 12.5µs | `<kernel>`"): then CubeCL
//! waits for each kernel and times it, so the durations are a per-kernel breakdown with a
//! device synchronisation per kernel, and the work as a whole runs slower. The log is written by a background thread that CubeCL feeds through a channel,
//! so a process that reads it right after its work (or exits) misses the tail still in the
//! channel. [`LaunchLog::take`] therefore synchronises the device first, so that every launch
//! has been submitted and logged to the channel, then waits until the file has stopped growing
//! before it counts the new lines. The CPU backends launch no kernels: there the log cannot be
//! installed and says why.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one kernel (by name) did in a stretch of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct KernelUse {
    pub launches: usize,
    /// Seconds on the device over those launches; 0 unless the log was installed timed.
    pub seconds: f64,
}

impl std::ops::AddAssign for KernelUse {
    fn add_assign(&mut self, more: Self) {
        self.launches += more.launches;
        self.seconds += more.seconds;
    }
}

/// Kernel use by kernel name.
pub type Launches = BTreeMap<String, KernelUse>;

/// How long the log must stay unchanged before its writer is taken to have drained.
const QUIET: Duration = Duration::from_millis(1000);
/// Polling interval while waiting for that.
const POLL: Duration = Duration::from_millis(50);
/// How long to wait for the log to drain before giving up.
const PATIENCE: Duration = Duration::from_secs(120);

/// The prefix CubeCL writes before each launched kernel's name.
const EXECUTING: &str = "Executing ";

/// A CubeCL execution log being read incrementally.
#[derive(Debug)]
pub struct LaunchLog {
    path: PathBuf,
    /// Bytes of the log already counted.
    read: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchLogError {
    #[error(
        "kernel launches are counted on the CubeCL backends (wgpu, cuda); this build's backend \
         is {0}, which launches no kernels (build with --features wgpu or --features cuda)"
    )]
    NotCubecl(&'static str),
    #[error(
        "CubeCL's configuration was already read in this process; the launch log must be \
         installed before the first use of a device"
    )]
    TooLate,
    #[error("reading the launch log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the launch log {path} kept growing for {seconds} s after the device was synchronised")]
    NeverQuiet { path: PathBuf, seconds: u64 },
}

impl LaunchLog {
    /// Turns on CubeCL's execution log, written to `path` (truncated), keeping the rest of
    /// the configuration CubeCL would read itself (cubecl.toml, CUBECL_* variables); `timed`
    /// also times every kernel. Must run before the process first uses a CubeCL device.
    pub fn install(path: &Path, timed: bool) -> Result<Self, LaunchLogError> {
        install_execution_log(path, timed)?;
        // CubeCL opens the file without truncating it: start it empty.
        std::fs::write(path, "").map_err(|source| LaunchLogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::follow(path))
    }

    /// Follows an execution log that something else writes, from its current end (or from
    /// the start if it does not exist yet).
    pub fn follow(path: &Path) -> Self {
        let read = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LaunchLog {
            path: path.to_path_buf(),
            read,
        }
    }

    /// The launches logged since the last call (or since the log was followed), once the log
    /// has been quiet for a second. Call it after synchronising the device.
    pub fn take(&mut self) -> Result<Launches, LaunchLogError> {
        let io = |source| LaunchLogError::Io {
            path: self.path.clone(),
            source,
        };
        let start = Instant::now();
        let mut len = self.len().map_err(io)?;
        let mut still_since = Instant::now();
        while still_since.elapsed() < QUIET {
            if start.elapsed() > PATIENCE {
                return Err(LaunchLogError::NeverQuiet {
                    path: self.path.clone(),
                    seconds: PATIENCE.as_secs(),
                });
            }
            std::thread::sleep(POLL);
            let now = self.len().map_err(io)?;
            if now != len {
                len = now;
                still_since = Instant::now();
            }
        }
        let mut text = String::new();
        if len > self.read {
            let mut file = File::open(&self.path).map_err(io)?;
            file.seek(SeekFrom::Start(self.read)).map_err(io)?;
            file.take(len - self.read)
                .read_to_string(&mut text)
                .map_err(io)?;
        }
        // Only whole lines count; a partial last line is read again next time.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        self.read += whole as u64;
        Ok(parse_launches(&text[..whole]))
    }

    fn len(&self) -> std::io::Result<u64> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Kernel use by name in the lines of a CubeCL execution log, untimed ("Executing `<name>`")
/// or timed ("| `<duration>` | `<name>`"); other lines (CubeCL's summary tables) are ignored.
pub fn parse_launches(text: &str) -> Launches {
    let mut launches = Launches::new();
    for line in text.lines() {
        let (name, seconds) = if let Some(name) = line.strip_prefix(EXECUTING) {
            (name, 0.0)
        } else if let Some((seconds, name)) = line
            .strip_prefix("| ")
            .and_then(|rest| rest.split_once(" | "))
            .and_then(|(duration, name)| Some((parse_duration(duration.trim())?, name)))
        {
            (name, seconds)
        } else {
            continue;
        };
        *launches.entry(name.trim().to_string()).or_default() += KernelUse {
            launches: 1,
            seconds,
        };
    }
    launches
}

/// Seconds in a `Duration` as Rust's `Debug` writes it ("850ns", "12.5µs", "1.2ms", "3s").
fn parse_duration(text: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 5] = [
        ("ns", 1e-9),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
    ];
    UNITS.iter().find_map(|&(unit, scale)| {
        let number: f64 = text.strip_suffix(unit)?.parse().ok()?;
        Some(number * scale)
    })
}

/// Launches and seconds over all kernels.
pub fn total(launches: &Launches) -> KernelUse {
    let mut sum = KernelUse::default();
    for &k in launches.values() {
        sum += k;
    }
    sum
}

/// Adds `more` into `into`, kernel by kernel.
pub fn add(into: &mut Launches, more: &Launches) {
    for (name, &k) in more {
        *into.entry(name.clone()).or_default() += k;
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn install_execution_log(path: &Path, timed: bool) -> Result<(), LaunchLogError> {
    use burn::cubecl::config::profiling::ProfilingLogLevel;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    let mut storage = CubeClRuntimeConfig::storage().lock();
    if storage.is_some() {
        return Err(LaunchLogError::TooLate);
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    let logger = &mut config.profiling.logger;
    logger.level = if timed {
        ProfilingLogLevel::Basic
    } else {
        ProfilingLogLevel::Minimal
    };
    logger.file = Some(path.to_path_buf());
    logger.append = false;
    *storage = Some(std::sync::Arc::new(config));
    Ok(())
}

#[cfg(all(
    not(any(feature = "wgpu", feature = "cuda")),
    any(feature = "flex", feature = "ndarray")
))]
fn install_execution_log(_path: &Path, _timed: bool) -> Result<(), LaunchLogError> {
    Err(LaunchLogError::NotCubecl(crate::backend::BACKEND_NAME))
}

#[cfg(not(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
)))]
fn install_execution_log(_path: &Path, _timed: bool) -> Result<(), LaunchLogError> {
    Err(LaunchLogError::NotCubecl("none (no backend feature)"))
}
