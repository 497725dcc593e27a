//! Row-major matrices over slices, and their products with the `gemm` crate (the one flex
//! itself runs, at the same version), for levelset's flex kernels.

use gemm::Parallelism;
use rayon::prelude::*;

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

/// `lhs @ rhs` [lhs.rows, rhs.cols] (row-major) on all threads (an [`is_small`] one on the
/// calling thread), column by column and transposed where [`packs_aliasing_rows`].
pub(super) fn product(lhs: Matrix, rhs: Matrix) -> Vec<f32> {
    if packs_aliasing_rows(&lhs, &rhs) {
        // The same sums in the same order, into the column-major product.
        return transpose(&row_major_product(rhs.t(), lhs.t()), rhs.cols);
    }
    row_major_product(lhs, rhs)
}

/// Whether gemm, writing `lhs @ rhs` row by row, would pack `rhs` by reading rows a
/// multiple of 2 KiB apart, which share the few L1 cache sets such addresses map to, for a
/// product of few rows that reuses each packed value only a few times. The product's
/// column-major form reads `rhs` where it lies instead. That is the MNIST convnet's first
/// dense layer's input gradient (a batch of 100 @ its weight [3,136, 1,024] transposed). The
/// thresholds below are where the column-major form measured faster (`examples/
/// gemm_orientation.rs`; figures in `experiments/bench/README.md`).
fn packs_aliasing_rows(lhs: &Matrix, rhs: &Matrix) -> bool {
    const ALIASING_STRIDE: usize = 512;
    const MAX_ROWS: usize = 256;
    rhs.transposed && rhs.rows.is_multiple_of(ALIASING_STRIDE) && lhs.rows <= MAX_ROWS
}

/// [`product`] row by row, written straight into a fresh vector: zeroing it first would be
/// a pass of its own over the output (for the MNIST convnet's first dense layer's weight
/// gradient, 13 MB on the calling thread alone).
fn row_major_product(lhs: Matrix, rhs: Matrix) -> Vec<f32> {
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

/// The row-major matrix `values` of `rows` rows, transposed, on all threads: each task
/// writes a band of output rows, reading a column band of the input a cache line wide.
pub(super) fn transpose(values: &[f32], rows: usize) -> Vec<f32> {
    const BAND: usize = 16;
    let cols = values.len() / rows;
    let mut out = vec![0f32; values.len()];
    out.par_chunks_mut(BAND * rows)
        .enumerate()
        .for_each(|(band, out)| {
            let first = band * BAND;
            let width = out.len() / rows;
            for (i, row) in values.chunks(cols).enumerate() {
                for (j, &v) in row[first..first + width].iter().enumerate() {
                    out[j * rows + i] = v;
                }
            }
        });
    out
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
    if is_small(m, k, n) {
        // SAFETY: as for gemm below.
        return unsafe { small_gemm(dst, lhs, rhs, accumulate) };
    }
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

/// Widest of the small sizes [`small_gemm`] takes: one 8-lane vector of an output row.
const SMALL: usize = 8;

/// Whether [`small_gemm`] takes the product [m, k] @ [k, n]: output rows of at most
/// [`SMALL`] values and one of the other sizes as small. gemm's blocking, packing and
/// dispatch then cost more than the arithmetic: about a third of the 1-4-4-1 MLP's training
/// step, more with the AVX-512 kernels, whose 16 lanes such products leave mostly empty.
fn is_small(m: usize, k: usize, n: usize) -> bool {
    n <= SMALL && (k <= SMALL || m <= SMALL)
}

/// [`raw_gemm`] for [`is_small`] products, on the calling thread, with each output row in
/// one [`SMALL`]-lane accumulator: row by row when the inner size is small (a layer's
/// forward and input gradient over a batch), or summed over the inner size when it is the
/// long one (a weight gradient over a batch).
///
/// # Safety
/// As [`raw_gemm`].
unsafe fn small_gemm(dst: *mut f32, lhs: Matrix, rhs: Matrix, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if !accumulate {
        // SAFETY: the caller vouches that `dst` is valid for `m * n` writes.
        unsafe { dst.write_bytes(0, m * n) };
    }
    // Rows of no values cannot be chunked (and there is nothing to add).
    if n == 0 {
        return;
    }
    // SAFETY: `dst` now holds `m * n` initialized values and overlaps neither operand.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
    if k <= SMALL {
        let rhs_rows: Vec<_> = (0..k).map(|p| small_row(&rhs, p)).collect();
        // The output row's width as a constant, so that its sums stay in registers.
        let rows: fn(&mut [f32], &Matrix, &[[f32; SMALL]]) = match n {
            1 => small_rows::<1>,
            2 => small_rows::<2>,
            3 => small_rows::<3>,
            4 => small_rows::<4>,
            5 => small_rows::<5>,
            6 => small_rows::<6>,
            7 => small_rows::<7>,
            _ => small_rows::<SMALL>,
        };
        rows(dst, &lhs, &rhs_rows);
    } else {
        let lhs_t = lhs.t();
        let mut acc = [[0f32; SMALL]; SMALL];
        for p in 0..k {
            let (a, b) = (small_row(&lhs_t, p), small_row(&rhs, p));
            for (acc, &a) in acc.iter_mut().zip(&a).take(m) {
                acc.iter_mut().zip(&b).for_each(|(acc, b)| *acc += a * b);
            }
        }
        for (d, acc) in dst.chunks_exact_mut(n).zip(&acc) {
            d.iter_mut().zip(acc).for_each(|(d, a)| *d += a);
        }
    }
}

/// Adds to each row i of `dst` [m, N] row i of `lhs` @ rhs, given by its rows.
fn small_rows<const N: usize>(dst: &mut [f32], lhs: &Matrix, rhs_rows: &[[f32; SMALL]]) {
    for (i, d) in dst.chunks_exact_mut(N).enumerate() {
        let mut acc = [0f32; N];
        for (&a, b) in small_row(lhs, i).iter().zip(rhs_rows) {
            acc.iter_mut().zip(b).for_each(|(acc, b)| *acc += a * b);
        }
        d.iter_mut().zip(acc).for_each(|(d, a)| *d += a);
    }
}

/// Row `i` of a matrix of at most [`SMALL`] columns, zero past its end. Inlined: it sits in
/// the weight gradient's innermost loop, where a call costs the MLP's step dearly.
#[inline(always)]
fn small_row(matrix: &Matrix, i: usize) -> [f32; SMALL] {
    let (cs, rs) = matrix.strides();
    let mut row = [0f32; SMALL];
    for (j, v) in row.iter_mut().take(matrix.cols).enumerate() {
        *v = matrix.data[i * rs as usize + j * cs as usize];
    }
    row
}

#[cfg(test)]
mod tests {
    use super::{
        Matrix, column_sums, gemm, is_small, packs_aliasing_rows, product, row_major_product,
        transpose,
    };

    /// Values in [-5, 5) that differ from index to index.
    fn values(len: usize, salt: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + salt) * 7919) % 1000) as f32 / 100.0 - 5.0)
            .collect()
    }

    #[test]
    fn products_match_exact_ones_for_every_layout_small_and_not() {
        // [m, k, n]: small inner size (forward and input gradient over a batch), long inner
        // size (weight gradient), sizes of 1, the widest small row, and products gemm
        // takes, for comparison.
        let shapes = [
            [200, 4, 4],
            [200, 1, 4],
            [37, 3, 1],
            [4, 300, 4],
            [1, 300, 1],
            [8, 50, 8],
            [30, 8, 8],
            [30, 9, 8],
            [20, 16, 12],
            [3, 3, 20],
            [20, 512, 30],
        ];
        for [m, k, n] in shapes {
            for (lhs_t, rhs_t) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                // Stored transposed when `*_t`: [k, m] and [n, k].
                let a_at = |i: usize, p: usize| if lhs_t { a[p * m + i] } else { a[i * k + p] };
                let b_at = |p: usize, j: usize| if rhs_t { b[j * k + p] } else { b[p * n + j] };
                let lhs = if lhs_t {
                    Matrix::rows(&a, k).t()
                } else {
                    Matrix::rows(&a, m)
                };
                let rhs = if rhs_t {
                    Matrix::rows(&b, n).t()
                } else {
                    Matrix::rows(&b, k)
                };
                let init = values(m * n, 3);
                let mut sum = init.clone();
                gemm(&mut sum, lhs, rhs, true);
                let fresh = product(lhs, rhs);
                for i in 0..m {
                    for j in 0..n {
                        let exact: f64 =
                            (0..k).map(|p| a_at(i, p) as f64 * b_at(p, j) as f64).sum();
                        let at = i * n + j;
                        let case = format!(
                            "[{m}, {k}, {n}] {lhs_t} {rhs_t} small {} column-major {}",
                            is_small(m, k, n),
                            packs_aliasing_rows(&lhs, &rhs)
                        );
                        let tol = 1e-5 * (k as f64 + 1.0) * 25.0;
                        assert!(
                            (fresh[at] as f64 - exact).abs() <= tol,
                            "{case}: {} vs {exact}",
                            fresh[at]
                        );
                        let exact = exact + init[at] as f64;
                        assert!(
                            (sum[at] as f64 - exact).abs() <= tol,
                            "{case}, added: {} vs {exact}",
                            sum[at]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn column_major_products_equal_row_major_ones_to_the_last_bit() {
        // The MNIST convnet's first dense layer's input gradient: a batch of gradients
        // [100, 1,024] @ its weight [3,136, 1,024] transposed.
        let (m, k, n) = (100, 1024, 3136);
        let (a, b) = (values(m * k, 4), values(n * k, 5));
        let (lhs, rhs) = (Matrix::rows(&a, m), Matrix::rows(&b, n).t());
        assert!(packs_aliasing_rows(&lhs, &rhs));
        assert_eq!(product(lhs, rhs), row_major_product(lhs, rhs));
    }

    #[test]
    fn transposes_swap_rows_and_columns_for_any_band_split() {
        for (rows, cols) in [(1, 1), (3, 40), (40, 3), (17, 33), (100, 16)] {
            let a = values(rows * cols, 6);
            let t = transpose(&a, rows);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        t[j * rows + i],
                        a[i * cols + j],
                        "[{rows}, {cols}] at {i}, {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn column_sums_match_row_by_row_sums_for_narrow_and_wide_matrices() {
        // Narrow (several rows per block, a partial block left over) and wide (one row per
        // block, wider than a block) matrices.
        for (rows, cols) in [(2000, 1), (37, 3), (2000, 4), (5, 64), (9, 70), (1, 5)] {
            let values = values(rows * cols, 0);
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
