//! Upper bounds on the sizes a config sets: each sizes an allocation or a loop, and a typo
//! (`grid = 1e15`, `2^64 - 1`) must be an error naming the key, not a failed allocation that
//! aborts the process or a run that never ends.

/// The largest count a path method's config takes (grid points per segment, beads, pivots,
/// bends, evaluation points): far beyond any useful setting, and small enough to allocate.
pub const MAX_COUNT: usize = 1_000_000;

/// `Err` naming `key` when `value` is above `max`.
pub fn at_most(key: &str, value: usize, max: usize) -> Result<(), String> {
    if value > max {
        return Err(format!("{key} must be at most {max}, got {value}"));
    }
    Ok(())
}
