//! gemm's speed on a dense layer's input gradient (batch @ weight^T) written row by row
//! against column by column and then transposed, for several weight shapes: the
//! measurement behind `packs_aliasing_rows` in `src/matrix.rs`.
//!
//!     cargo run --release -p levelset-flex --example gemm_orientation
//!
//! Medians of 9 timings on 2 threads; run it on an otherwise idle machine.

use std::time::Instant;

use gemm::{Parallelism, gemm};

/// GFLOP/s of `f`, one product of `flops`, as the median of 9 timings of `reps` calls.
fn rate(flops: f64, mut f: impl FnMut()) -> f64 {
    let reps = (2e9 / flops).clamp(1.0, 200.0) as usize;
    let mut seconds: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            (0..reps).for_each(|_| f());
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    flops / seconds[4] / 1e9
}

/// [m, k] @ [k, n] with the right operand stored transposed (a layer's input gradient,
/// batch @ weight^T), into a row-major or a column-major destination.
fn product(m: usize, k: usize, n: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32], rows: bool) {
    let (dst_cs, dst_rs) = if rows {
        (1, n as isize)
    } else {
        (m as isize, 1)
    };
    // SAFETY: every stride keeps inside the three buffers, sized [m, n], [m, k] and [n, k].
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(2),
        )
    }
}

/// The row-major [rows, cols] `src` transposed into `dst`.
fn transpose(src: &[f32], rows: usize, dst: &mut [f32]) {
    let cols = src.len() / rows;
    for (i, row) in src.chunks(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            dst[j * rows + i] = v;
        }
    }
}

fn main() {
    println!("GFLOP/s  batch  weight [rows, cols]  row by row  by columns, transposed");
    // [batch, weight columns (the layer's outputs), weight rows (its inputs)]
    let shapes = [
        [100, 1024, 3136],
        [100, 512, 3136],
        [100, 2048, 3136],
        [100, 1000, 3136],
        [100, 384, 3136],
        [128, 384, 2304],
        [256, 1024, 3136],
        [512, 1024, 3136],
    ];
    for [m, k, n] in shapes {
        let lhs: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let rhs: Vec<f32> = (0..n * k).map(|i| (i % 11) as f32 * 0.1 - 0.5).collect();
        let (mut dst, mut cols) = (vec![0f32; m * n], vec![0f32; m * n]);
        let flops = 2.0 * (m * k * n) as f64;
        let rows = rate(flops, || product(m, k, n, &mut dst, &lhs, &rhs, true));
        let by_cols = rate(flops, || {
            product(m, k, n, &mut cols, &lhs, &rhs, false);
            transpose(&cols, n, &mut dst);
        });
        println!("         {m:5}  [{n:4}, {k:4}]         {rows:10.0}  {by_cols:10.0}");
    }
}
