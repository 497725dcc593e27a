//! Throttled progress lines for long loops: their progress bars are invisible when stderr is
//! not a terminal (logs, CI, background runs), so a line every few seconds keeps them
//! observable there.

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(10);

pub struct Heartbeat {
    last: Instant,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            last: Instant::now(),
        }
    }
}

impl Heartbeat {
    /// Whether a progress line is due (at most one per ten seconds).
    pub fn due(&mut self) -> bool {
        let due = self.last.elapsed() >= EVERY;
        if due {
            self.last = Instant::now();
        }
        due
    }
}
