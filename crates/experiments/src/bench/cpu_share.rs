//! How busy the rest of the machine is: on 2 cores one stray process slows a 2-thread run
//! tenfold, so every measurement records the CPU time others took while it ran.

use std::fs;

/// Jiffy counters at one instant (Linux `/proc`); `None` fields where `/proc` is absent.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    machine: Option<(u64, u64)>,
    own: Option<u64>,
}

impl CpuClock {
    pub fn now() -> Self {
        CpuClock {
            machine: machine_jiffies(),
            own: own_jiffies(),
        }
    }

    /// The share of the whole machine's time since `self` that other processes kept busy
    /// (0 = idle apart from us, 1 = every core busy with others); `None` without `/proc`.
    pub fn others_since(&self) -> Option<f64> {
        let later = CpuClock::now();
        let ((total0, busy0), (total1, busy1)) = (self.machine?, later.machine?);
        let own = later.own?.saturating_sub(self.own?);
        let total = total1.saturating_sub(total0);
        if total == 0 {
            return Some(0.0);
        }
        let others = busy1.saturating_sub(busy0).saturating_sub(own);
        Some(others as f64 / total as f64)
    }
}

/// (total, busy) jiffies over all cores from the aggregate `cpu` line of `/proc/stat`.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total, total - idle))
}

/// User + system jiffies of this process, all threads.
fn own_jiffies() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
