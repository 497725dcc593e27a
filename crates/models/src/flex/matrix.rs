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

/// The sums of the columns of the row-major matrix `values` with `cols` columns; row by row,
/// so that the additions vectorize along the row.
pub(super) fn column_sums(values: &[f32], cols: usize) -> Vec<f32> {
    let mut sums = vec![0f32; cols];
    for row in values.chunks(cols) {
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
