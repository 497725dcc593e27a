//! Parallel token streams for truncated backpropagation through time (Zaremba et al.).

use crate::error::{DataError, Result};

/// `batch` contiguous streams of `len` tokens each, row-major `[batch, len]`: stream `b` is
/// the `b`-th slice of the text, so state carried across windows follows the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streams {
    pub batch: usize,
    pub len: usize,
    pub ids: Vec<u32>,
}

/// Cuts `ids` into `batch` streams of `ids.len() / batch` tokens, dropping the remainder.
pub fn batchify(ids: &[u32], batch: usize) -> Result<Streams> {
    if batch == 0 {
        return Err(DataError::InvalidArgument(
            "batchify needs at least one stream".into(),
        ));
    }
    let len = ids.len() / batch;
    if len == 0 {
        return Err(DataError::InvalidArgument(format!(
            "{} tokens cannot fill {batch} streams",
            ids.len()
        )));
    }
    Ok(Streams {
        batch,
        len,
        ids: ids[..batch * len].to_vec(),
    })
}

impl Streams {
    /// Whole windows of `steps` tokens per epoch; one token is kept back because the last
    /// input needs a target. Zero for `steps == 0`.
    pub fn num_windows(&self, steps: usize) -> usize {
        self.len.saturating_sub(1).checked_div(steps).unwrap_or(0)
    }

    /// Window `k`: inputs `[batch, steps]` row-major and the targets, the same positions
    /// shifted one token ahead.
    ///
    /// # Panics
    /// If `k >= self.num_windows(steps)`: iterate over `0..num_windows(steps)`.
    pub fn window(&self, k: usize, steps: usize) -> (Vec<u32>, Vec<u32>) {
        assert!(
            k < self.num_windows(steps),
            "window {k} of {steps} steps is past the {} windows of these streams",
            self.num_windows(steps)
        );
        let slice = |shift: usize| -> Vec<u32> {
            self.ids
                .chunks_exact(self.len)
                .flat_map(|stream| &stream[k * steps + shift..][..steps])
                .copied()
                .collect()
        };
        (slice(0), slice(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_contiguous_slices() {
        let ids: Vec<u32> = (0..23).collect();
        let s = batchify(&ids, 4).unwrap();
        assert_eq!((s.batch, s.len), (4, 5));
        assert_eq!(s.ids, (0..20).collect::<Vec<u32>>());
        assert_eq!(s.num_windows(2), 2);
        assert_eq!(s.num_windows(4), 1);
        assert_eq!(s.num_windows(5), 0);
        assert_eq!(s.num_windows(0), 0);
        let (x, y) = s.window(1, 2);
        assert_eq!(x, [2, 3, 7, 8, 12, 13, 17, 18]);
        assert_eq!(y, [3, 4, 8, 9, 13, 14, 18, 19]);
    }

    #[test]
    fn bad_batch_is_an_error() {
        assert!(matches!(
            batchify(&[1, 2, 3], 0),
            Err(DataError::InvalidArgument(_))
        ));
        assert!(matches!(
            batchify(&[1, 2, 3], 4),
            Err(DataError::InvalidArgument(_))
        ));
    }

    #[test]
    #[should_panic(expected = "past the")]
    fn window_past_the_end_panics() {
        batchify(&[0; 10], 2).unwrap().window(2, 2);
    }
}
