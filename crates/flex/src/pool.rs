//! ReLU followed by 2x2 max-pooling on flex, in one pass.
//!
//! flex max-pools through generic 3-D loops that also write an i64 index per output, and
//! autodiff adds a ReLU pass and its mask in front, a visible share of the MNIST convnet's
//! training step (`experiments/bench/README.md`). Both functions are monotone, so the pair
//! is max(0, window max), and its gradient goes to the window's first maximum when that is
//! positive (as Burn's pair routes it: the pool to the first maximum of the ReLU's output,
//! the ReLU only where its input is positive).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::{TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{par_zeroed, try_unary, values};

/// Marks an output whose window has no positive element: it is 0 and passes no gradient.
const NONE: u8 = 4;

/// `pool.forward(relu(x))` when `B` is flex, with or without autodiff, the pool is a 2x2
/// max-pool with stride 2 and no padding, and `x` is f32; otherwise `x` back untouched.
pub fn try_relu_max_pool2d<B: Backend>(
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !halves(pool) {
        return Err(x);
    }
    try_unary(x, ReluMaxPoolBackward, |x| {
        let shape = x.shape();
        let (y, argmax) = forward(x);
        (y, (argmax, shape))
    })
}

/// Whether `pool` is the 2x2 max-pool with stride 2 and no padding this module handles.
pub(super) fn halves(pool: &MaxPool2d) -> bool {
    pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && matches!(
            pool.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        )
        && !pool.ceil_mode
}

#[derive(Debug)]
struct ReluMaxPoolBackward;

impl Backward<Flex, 1> for ReluMaxPoolBackward {
    /// Each output's window position (see [`forward`]) and the input's shape.
    type State = (Vec<u8>, Shape);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (argmax, shape) = ops.state;
            grads.register::<Flex>(node.id, backward(&argmax, shape, grad));
        }
    }
}

/// max(0, window max) of the 2x2 windows of x [n, c, h, w]: [n, c, h / 2, w / 2], and for
/// each output the position (0..4, row-major) of its window's first maximum, or [`NONE`].
fn forward(x: &FlexTensor) -> (FlexTensor, Vec<u8>) {
    let x = x.to_contiguous();
    let [n, c, h, w] = x.shape().dims();
    let (oh, ow) = (h / 2, w / 2);
    let xs = values(&x);
    let mut ys = vec![0f32; n * c * oh * ow];
    let mut argmax = vec![NONE; ys.len()];
    ys.par_chunks_mut(oh * ow)
        .zip(argmax.par_chunks_mut(oh * ow))
        .zip(xs.par_chunks(h * w))
        .for_each(|((ys, argmax), plane)| pool_plane(plane, w, ys, argmax));
    let y = FlexTensor::from_data(TensorData::new(ys, [n, c, oh, ow]));
    (y, argmax)
}

/// [`forward`] on one plane [h, w] of width `w`: its outputs `ys` [h / 2, w / 2] and their
/// window positions `argmax`.
pub(super) fn pool_plane(plane: &[f32], w: usize, ys: &mut [f32], argmax: &mut [u8]) {
    let ow = w / 2;
    for (oy, (ys, argmax)) in ys.chunks_mut(ow).zip(argmax.chunks_mut(ow)).enumerate() {
        let top = plane[2 * oy * w..][..2 * ow].chunks_exact(2);
        let bottom = plane[(2 * oy + 1) * w..][..2 * ow].chunks_exact(2);
        // Selects rather than branches, so that the loop vectorizes: each row's first
        // maximum, then the top row's unless the bottom's is larger.
        for (((y, arg), t), b) in ys.iter_mut().zip(argmax.iter_mut()).zip(top).zip(bottom) {
            let (t, tp) = if t[1] > t[0] { (t[1], 1) } else { (t[0], 0) };
            let (b, bp) = if b[1] > b[0] { (b[1], 3) } else { (b[0], 2) };
            let (m, p) = if b > t { (b, bp) } else { (t, tp) };
            (*y, *arg) = if m > 0.0 { (m, p) } else { (0.0, NONE) };
        }
    }
}

/// The gradient [n, c, h, w] of [`forward`]'s input, from its output's gradient.
fn backward(argmax: &[u8], shape: Shape, grad: FlexTensor) -> FlexTensor {
    let [_, _, h, w] = shape.dims();
    unpool(
        shape,
        (h / 2) * (w / 2),
        grad,
        argmax,
        |grads, argmax, dx| unpool_plane(grads, argmax, w, dx),
    )
}

/// The gradient of a pool's input [n, c, h, w] from its output's gradient `grad` and what
/// its forward pass saved of each output (`saved`), both `outputs` per plane: `scatter` puts
/// each plane's onto a zeroed plane [h, w] of the input's.
fn unpool<S: Sync>(
    shape: Shape,
    outputs: usize,
    grad: FlexTensor,
    saved: &[S],
    scatter: impl Fn(&[f32], &[S], &mut [f32]) + Sync + Send,
) -> FlexTensor {
    let [n, c, h, w] = shape.dims();
    let grad = grad.to_contiguous();
    let grads = values(&grad);
    let (dx, _) = par_zeroed(
        n * c * h * w,
        h * w,
        || (),
        |_, plane, dx| {
            let outputs = plane * outputs..(plane + 1) * outputs;
            scatter(&grads[outputs.clone()], &saved[outputs], dx);
        },
    );
    FlexTensor::from_data(TensorData::new(dx, [n, c, h, w]))
}

/// [`backward`] on one plane of width `w`: each output gradient of `grads` [h / 2, w / 2]
/// onto its window's position in `dx` [h, w], which is zero elsewhere.
pub(super) fn unpool_plane(grads: &[f32], argmax: &[u8], w: usize, dx: &mut [f32]) {
    let ow = w / 2;
    for (i, (&g, &position)) in grads.iter().zip(argmax).enumerate() {
        if position != NONE {
            let (oy, ox) = (i / ow, i % ow);
            let (dy, dxx) = (usize::from(position / 2), usize::from(position % 2));
            dx[(2 * oy + dy) * w + 2 * ox + dxx] = g;
        }
    }
}

/// `pool.forward(x)` when `B` is flex, with or without autodiff, the pool has no dilation
/// and no ceil mode, no padding or explicit padding narrower than its window, and `x` is
/// f32; otherwise `x` back untouched.
///
/// Burn pads the input with -inf for asymmetric padding (a copy on the calling thread), and
/// flex pools through generic 3-D loops on it: with the ReLU's mask, most of the CIFAR-10
/// convnet's training step. Here windows are clipped to the image instead of padded.
pub fn try_max_pool2d<B: Backend>(
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let [kh, kw] = pool.kernel_size;
    let [top, left, bottom, right] = match pool.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Same => return Err(x),
    };
    let [_, _, h, w] = x.dims();
    let handled = pool.dilation == [1, 1]
        && !pool.ceil_mode
        && !pool.stride.contains(&0)
        && h * w <= u32::MAX as usize
        && top.max(bottom) < kh
        && left.max(right) < kw
        && h + top + bottom >= kh
        && w + left + right >= kw;
    if !handled {
        return Err(x);
    }
    let window = Window {
        kernel: pool.kernel_size,
        stride: pool.stride,
        start: [top, left],
        out: [
            (h + top + bottom - kh) / pool.stride[0] + 1,
            (w + left + right - kw) / pool.stride[1] + 1,
        ],
    };
    try_unary(x, MaxPoolBackward, |x| {
        let shape = x.shape();
        let (y, argmax) = window.forward(x);
        (y, (argmax, shape, window))
    })
}

/// The windows of a max-pool over planes [h, w]: `kernel` [kh, kw] every `stride`, the
/// first starting `start` [top, left] rows and columns before the plane; `out` [oh, ow] of
/// them. Parts of a window outside the plane are skipped, as Burn's -inf padding would be.
#[derive(Debug, Clone, Copy)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    start: [usize; 2],
    out: [usize; 2],
}

impl Window {
    /// The in-plane kernel offsets of window `o` along `axis` (0: rows, 1: columns) of a
    /// plane `len` long, and the plane index of kernel offset 0 (which may lie before it).
    fn span(&self, axis: usize, o: usize, len: usize) -> (std::ops::Range<usize>, isize) {
        let origin = (o * self.stride[axis]) as isize - self.start[axis] as isize;
        let first = (-origin).max(0) as usize;
        let end = (len as isize - origin).clamp(0, self.kernel[axis] as isize) as usize;
        (first..end, origin)
    }

    /// Each window's maximum of x [n, c, h, w], [n, c, oh, ow], with the index in its plane
    /// of its first maximum.
    fn forward(&self, x: &FlexTensor) -> (FlexTensor, Vec<u32>) {
        let x = x.to_contiguous();
        let [n, c, h, w] = x.shape().dims();
        let [oh, ow] = self.out;
        let rows: Vec<_> = (0..oh).map(|oy| self.span(0, oy, h)).collect();
        let cols: Vec<_> = (0..ow).map(|ox| self.span(1, ox, w)).collect();
        let mut ys = vec![0f32; n * c * oh * ow];
        let mut argmax = vec![0u32; ys.len()];
        ys.par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(values(&x).par_chunks(h * w))
            .for_each(|((ys, argmax), plane)| {
                let rows = ys.chunks_mut(ow).zip(argmax.chunks_mut(ow)).zip(&rows);
                for ((ys, argmax), row) in rows {
                    for ((y, arg), col) in ys.iter_mut().zip(argmax.iter_mut()).zip(&cols) {
                        (*y, *arg) = window_max(plane, w, row, col);
                    }
                }
            });
        let y = FlexTensor::from_data(TensorData::new(ys, [n, c, oh, ow]));
        (y, argmax)
    }

    /// The gradient [n, c, h, w] of [`Self::forward`]'s input, from its output's: each
    /// output's onto its window's maximum, summed where windows overlap.
    fn backward(&self, argmax: &[u32], shape: Shape, grad: FlexTensor) -> FlexTensor {
        let outputs = self.out[0] * self.out[1];
        unpool(shape, outputs, grad, argmax, |grads, argmax, dx| {
            for (&g, &arg) in grads.iter().zip(argmax) {
                dx[arg as usize] += g;
            }
        })
    }
}

/// The maximum of the window of `plane` (of width `w`) whose [`Window::span`]s are `rows`
/// and `cols`, and its index in the plane: the first maximum in row-major order, as Burn's
/// pool picks among ties. Selects rather than branches, which mispredict on real data.
fn window_max(
    plane: &[f32],
    w: usize,
    (rows, y0): &(std::ops::Range<usize>, isize),
    (cols, x0): &(std::ops::Range<usize>, isize),
) -> (f32, u32) {
    let at = |ky: usize, kx: usize| ((y0 + ky as isize) * w as isize + x0 + kx as isize) as usize;
    let first = at(rows.start, cols.start);
    let (mut max, mut arg) = (plane[first], first);
    for ky in rows.clone() {
        for kx in cols.clone() {
            let i = at(ky, kx);
            let v = plane[i];
            let better = v > max;
            max = if better { v } else { max };
            arg = if better { i } else { arg };
        }
    }
    (max, arg as u32)
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// Each output's maximum's index in its plane (see [`Window::forward`]), the input's
    /// shape and the windows.
    type State = (Vec<u32>, Shape, Window);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (argmax, shape, window) = ops.state;
            grads.register::<Flex>(node.id, window.backward(&argmax, shape, grad));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::activation::relu;
    use burn::tensor::{Distribution, Tolerance};

    use super::super::FlexTrain;
    use super::*;

    /// Output and input gradient of `sum(f(x) * r)`.
    fn run(
        x: &Tensor<FlexTrain, 4>,
        f: impl Fn(Tensor<FlexTrain, 4>) -> Tensor<FlexTrain, 4>,
    ) -> [TensorData; 2] {
        let x = x.clone().require_grad();
        let y = f(x.clone());
        let r = Tensor::<FlexTrain, 4>::ones(y.dims(), &y.device()).cumsum(3);
        let grads = (y.clone() * r).sum().backward();
        [y.into_data(), x.grad(&grads).expect("tracked").into_data()]
    }

    /// Rounded normal values [2, 3, h, w]: ties, and exact zeros.
    fn tied(h: usize, w: usize) -> Tensor<FlexTrain, 4> {
        let device = Default::default();
        Tensor::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device)
            .mul_scalar(2.0)
            .round()
    }

    /// `ours` in training and in inference (`inference`) against `burns` on `x`: the same
    /// outputs and gradients, exactly.
    fn assert_same(
        x: &Tensor<FlexTrain, 4>,
        ours: impl Fn(Tensor<FlexTrain, 4>) -> Tensor<FlexTrain, 4>,
        inference: impl Fn(Tensor<Flex, 4>) -> Tensor<Flex, 4>,
        burns: impl Fn(Tensor<FlexTrain, 4>) -> Tensor<FlexTrain, 4>,
    ) {
        let (ours, burns) = (run(x, ours), run(x, burns));
        for (ours, burns) in ours.iter().zip(&burns) {
            assert_eq!(ours.shape, burns.shape);
            ours.assert_approx_eq::<f32>(burns, Tolerance::absolute(0.0));
        }
        inference(x.clone().inner())
            .into_data()
            .assert_approx_eq::<f32>(&burns[0], Tolerance::absolute(0.0));
    }

    #[test]
    fn matches_burns_relu_then_pool_with_ties_and_odd_sizes() {
        // No padding, spelled either way (described nets spell it out as zero pixels).
        for padding in [
            PaddingConfig2d::Valid,
            PaddingConfig2d::Explicit(0, 0, 0, 0),
        ] {
            let pool = MaxPool2dConfig::new([2, 2]).with_padding(padding).init();
            // Odd sizes drop the last row and column.
            assert_same(
                &tied(7, 5),
                |x| try_relu_max_pool2d(&pool, x).expect("flex training"),
                |x| try_relu_max_pool2d(&pool, x).expect("flex"),
                |x| pool.forward(relu(x)),
            );
        }
    }

    #[test]
    fn window_pool_matches_burns_with_ties_overlaps_and_padding() {
        // Windows of 3 every 2 overlap; the CIFAR-10 convnet's padding (bottom and right
        // only), symmetric padding, none, and a plane the stride does not tile.
        for padding in [
            PaddingConfig2d::Explicit(0, 0, 1, 1),
            PaddingConfig2d::Explicit(1, 1, 1, 1),
            PaddingConfig2d::Explicit(2, 0, 1, 2),
            PaddingConfig2d::Valid,
        ] {
            let pool = MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(padding)
                .init();
            assert_same(
                &tied(9, 8),
                |x| try_max_pool2d(&pool, x).expect("flex training"),
                |x| try_max_pool2d(&pool, x).expect("flex"),
                |x| pool.forward(x),
            );
        }
    }

    /// A pool's output, or its input back for Burn.
    type Handled<B> = Result<Tensor<B, 4>, Tensor<B, 4>>;

    /// Each of `configs` makes a pool that `try_pool` leaves to Burn.
    fn left_to_burn(
        try_pool: fn(&MaxPool2d, Tensor<FlexTrain, 4>) -> Handled<FlexTrain>,
        configs: &[MaxPool2dConfig],
    ) {
        for config in configs {
            let x = Tensor::zeros([1, 1, 6, 6], &Default::default());
            assert!(try_pool(&config.init(), x).is_err(), "{config:?}");
        }
    }

    #[test]
    fn window_pools_left_to_burn() {
        left_to_burn(
            try_max_pool2d,
            &[
                MaxPool2dConfig::new([3, 3]).with_padding(PaddingConfig2d::Same),
                MaxPool2dConfig::new([3, 3]).with_dilation([2, 2]),
                MaxPool2dConfig::new([3, 3]).with_ceil_mode(true),
                MaxPool2dConfig::new([2, 2]).with_padding(PaddingConfig2d::Explicit(2, 0, 0, 0)),
            ],
        );
    }

    #[test]
    fn other_pools_are_left_to_burn() {
        left_to_burn(
            try_relu_max_pool2d,
            &[
                MaxPool2dConfig::new([3, 3]),
                MaxPool2dConfig::new([2, 2]).with_strides([1, 1]),
                MaxPool2dConfig::new([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                MaxPool2dConfig::new([2, 2]).with_ceil_mode(true),
            ],
        );
    }
}
