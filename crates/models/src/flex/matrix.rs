//! Row-major matrices over slices, and their products with the `gemm` crate (the one flex
//! itself runs, at the same version), for levelset's flex kernels.

use gemm::Parallelism;

/// A row-major matrix of `rows` rows over `data`, or its transpose.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub(super) data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Matrix<'a> {
    pub(super) fn rows(data: &'a [f32], rows: usize) -> Self {
        Self {
            data,
            rows,
            cols: data.len() / rows,
            transposed: false,
        }
    }

    pub(super) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
            ..self
        }
    }

    /// Strides between columns and between rows, in elements.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.rows as isize, 1)
        } else {
            (1, self.cols as isize)
        }
    }
}

/// The sums of the columns of the row-major matrix `values` with `cols` columns. Rows are
/// added a block at a time into one accumulator per value of the block, so that narrow
/// matrices (the MLP's bias gradients sum 2,000 rows of 1 or 4 columns) keep independent
/// vector additions in flight instead of one chain of dependent scalar ones.
pub(super) fn column_sums(values: &[f32], cols: usize) -> Vec<f32> {
    const BLOCK_VALUES: usize = 64;
    let block = cols * (BLOCK_VALUES / cols).max(1);
    let mut acc = vec![0f32; block];
    let mut blocks = values.chunks_exact(block);
    for rows in &mut blocks {
        acc.iter_mut().zip(rows).for_each(|(s, v)| *s += v);
    }
    let mut sums = vec![0f32; cols];
    for row in acc.chunks(cols).chain(blocks.remainder().chunks(cols)) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    sums
}

/// `values` [p, q, r] (row-major) with its first two axes swapped: [q, p, r].
pub(super) fn swap_outer(values: &[f32], p: usize, q: usize) -> Vec<f32> {
    let r = values.len() / (p * q);
    let mut swapped = Vec::with_capacity(values.len());
    for j in 0..q {
        for i in 0..p {
            swapped.extend_from_slice(&values[(i * q + j) * r..][..r]);
        }
    }
    swapped
}

/// `dst` [lhs.rows, rhs.cols] (row-major) = `lhs @ rhs`, plus `dst`'s values when
/// `accumulate`; on the calling thread.
pub(super) fn gemm(dst: &mut [f32], lhs: Matrix, rhs: Matrix, accumulate: bool) {
    assert_eq!(dst.len(), lhs.rows * rhs.cols, "destination size");
    // SAFETY: `dst` holds the product's values and is borrowed mutably, so it aliases
    // neither operand.
    unsafe { raw_gemm(dst.as_mut_ptr(), lhs, rhs, accumulate, Parallelism::None) }
}

/// `lhs @ rhs` [lhs.rows, rhs.cols] (row-major) on all threads, written straight into a
/// fresh vector: zeroing it first would be a pass of its own over the output (for the
/// MNIST convnet's first dense layer, 13 MB on the calling thread alone).
pub(super) fn product(lhs: Matrix, rhs: Matrix) -> Vec<f32> {
    let len = lhs.rows * rhs.cols;
    let mut dst = Vec::with_capacity(len);
    // SAFETY: `dst` has room for the product's values. Without `accumulate`, gemm writes
    // every one of them and reads none before writing it, so all `len` are initialized.
    unsafe {
        raw_gemm(dst.as_mut_ptr(), lhs, rhs, false, Parallelism::Rayon(0));
        dst.set_len(len);
    }
    dst
}

/// `dst` [lhs.rows, rhs.cols] (row-major) = `lhs @ rhs`, plus `dst`'s values when
/// `accumulate`.
///
/// # Safety
/// `dst` must be valid for writes of `lhs.rows * rhs.cols` values (and hold initialized
/// ones when `accumulate`) and must not overlap either operand.
unsafe fn raw_gemm(
    dst: *mut f32,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions");
    assert_eq!(lhs.data.len(), m * k, "left operand size");
    assert_eq!(rhs.data.len(), k * n, "right operand size");
    let ((lhs_cs, lhs_rs), (rhs_cs, rhs_rs)) = (lhs.strides(), rhs.strides());
    // SAFETY: the asserts above keep every index the strides reach inside the operands, and
    // the caller vouches for `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.data.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::column_sums;

    #[test]
    fn column_sums_match_row_by_row_sums_for_narrow_and_wide_matrices() {
        // Narrow (several rows per block, a partial block left over) and wide (one row per
        // block, wider than a block) matrices.
        for (rows, cols) in [(2000, 1), (37, 3), (2000, 4), (5, 64), (9, 70), (1, 5)] {
            let values: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
                .collect();
            let mut exact = vec![0f64; cols];
            for row in values.chunks(cols) {
                exact.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
            }
            let sums = column_sums(&values, cols);
            assert_eq!(sums.len(), cols);
            for (j, (&s, &e)) in sums.iter().zip(&exact).enumerate() {
                assert!(
                    (s as f64 - e).abs() <= 1e-5 * rows as f64 * 5.0,
                    "rows {rows} cols {cols} column {j}: {s} vs {e}"
                );
            }
        }
    }
}
