//! Convolutions on flex as GEMMs on the unfolded input, image by image, forward and backward.
//!
//! flex's own convolution unfolds the input (im2col) in tiles and scatters each tile's GEMM
//! result back one float at a time: in the MNIST convnet's evaluation those scalar loops took
//! as long as the GEMMs. Burn 0.21 differentiates a convolution with two generic rules that
//! are slow on flex: the weight gradient is a convolution whose kernel is the output gradient
//! (on the MNIST convnet's first layer a 28x28 kernel, a fifth of the training step for a
//! tiny share of its FLOPs), and the input gradient is a transposed convolution.
//!
//! Here each image's patches [c * kh * kw, oh * ow] (at any stride) are unfolded into a buffer that stays in
//! cache, and every product is one single-threaded GEMM per image (the `gemm` crate flex
//! itself runs) writing straight into the output layout; images run in parallel. Batch-wide
//! patch matrices (63 MB for the MNIST convnet's second layer at batch 100) spent their time
//! in page faults and memory traffic instead. The ReLU (and 2x2 max-pool) that follow a
//! convolution in the convnets run on each image's output in the same task, while it is
//! still in cache ([`Epilogue`]). Timings in `experiments/bench/README.md`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::{TensorData, TensorMetadata};
use burn_flex::FlexTensor;

use super::matrix::{Matrix, gemm, transpose};
use super::pool::{halves, pool_plane, unpool_plane};
use super::{AffineState, lane_sum, par_zeroed, try_affine, values};

/// `conv` applied to `x` by levelset's kernels, when `B` is flex, with or without autodiff,
/// and the convolution is one this module handles (stride 1, no dilation, no groups,
/// symmetric padding, f32; with or without a bias); otherwise `x` back untouched.
pub fn try_conv2d<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    try_conv(conv, x, Epilogue::None)
}

/// `relu(conv.forward(x))` as one kernel, when [`try_conv2d`] handles `conv`; otherwise `x`
/// back untouched.
pub fn try_conv2d_relu<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    try_conv(conv, x, Epilogue::Relu)
}

/// `pool.forward(relu(conv.forward(x)))` as one kernel, when [`try_conv2d`] handles `conv`
/// and `pool` is the 2x2 max-pool `flex::pool` handles; otherwise `x` back untouched.
pub fn try_conv2d_relu_max_pool2d<B: Backend>(
    conv: &Conv2d<B>,
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !halves(pool) {
        return Err(x);
    }
    try_conv(conv, x, Epilogue::ReluPool)
}

/// What the kernel does to each image's convolution before writing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Epilogue {
    None,
    /// ReLU in place: on flex a ReLU is a serial pass on the calling thread, with another
    /// for its mask (a tenth of the CIFAR-10 convnet's training step).
    Relu,
    /// ReLU then 2x2 max-pooling (`flex::pool`), while the image's convolution is in cache:
    /// neither the batch's convolution output (10 MB in the MNIST convnet's first layer)
    /// nor its gradient is ever stored, or zeroed, or read back.
    ReluPool,
}

/// `conv` then `epilogue` applied to `x` (see [`try_conv2d`]).
fn try_conv<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    epilogue: Epilogue,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let Some(window) = window(conv) else {
        return Err(x);
    };
    // A convolution without a bias (one that batch normalization follows) runs as one with a
    // zero bias: the zeros are no parameter, so autodiff keeps no gradient for them, and
    // their gradient's sum is a pass over the output gradient, small beside the GEMMs.
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None if super::on_flex::<B>() => Tensor::zeros([conv.weight.dims()[0]], &x.device()),
        None => return Err(x),
    };
    try_affine(
        x,
        conv.weight.val(),
        bias,
        Conv2dBackward,
        |x, weight, bias| {
            let (y, saved) = forward(x, weight, bias, window, epilogue);
            (y, (window, saved))
        },
    )
}

/// The padding and strides of a convolution, each [rows, columns].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    padding: [usize; 2],
    stride: [usize; 2],
}

/// The window of an undilated, ungrouped convolution whose padding is the same on both sides
/// of each axis (a ResNet's downsampling convolutions stride 2).
fn window<B: Backend>(conv: &Conv2d<B>) -> Option<Window> {
    if conv.dilation != [1, 1] || conv.groups != 1 || conv.stride.contains(&0) {
        return None;
    }
    let [kh, kw] = conv.kernel_size;
    let stride = conv.stride;
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        // At stride 1, "same" padding is symmetric only for odd kernels (Burn computes it
        // for stride 1 alone).
        PaddingConfig2d::Same if kh % 2 == 1 && kw % 2 == 1 && stride == [1, 1] => [kh / 2, kw / 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return None,
    };
    Some(Window { padding, stride })
}

/// Convolution of x [n, c, h, w] with weight [o, c, kh, kw] and bias [o], then `epilogue`:
/// [n, o, oh, ow] with oh = (h + 2 ph - kh) / sh + 1, ow = (w + 2 pw - kw) / sw + 1, or
/// [n, o, oh / 2, ow / 2] after pooling. Each image's convolution [o, oh * ow] is weight [o, c * kh * kw]
/// @ its patches + bias. Also what the backward pass needs of the epilogue.
fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    window: Window,
    epilogue: Epilogue,
) -> (FlexTensor, Saved) {
    let geo = Geometry::new(&x.shape(), &weight.shape(), window);
    let rows: Vec<_> = geo.patch_rows().collect();
    let (x, weight, bias) = (
        x.to_contiguous(),
        weight.to_contiguous(),
        bias.to_contiguous(),
    );
    let (x, weight, bias) = (values(&x), values(&weight), values(&bias));
    let positions = geo.oh * geo.ow;
    let pooled = epilogue == Epilogue::ReluPool;
    let [oh, ow] = if pooled {
        [geo.oh / 2, geo.ow / 2]
    } else {
        [geo.oh, geo.ow]
    };
    let (y, argmax) = par_zeroed(
        geo.n * geo.o * oh * ow,
        geo.o * oh * ow,
        || {
            let conv = if pooled { geo.o * positions } else { 0 };
            (geo.patches(), vec![0f32; conv])
        },
        |(patches, conv), i, y| {
            geo.unfold(&rows, geo.image(x, i), patches);
            let out = if pooled { &mut conv[..] } else { &mut *y };
            for (plane, &b) in out.chunks_mut(positions).zip(bias.iter()) {
                plane.fill(b);
            }
            gemm(
                out,
                Matrix::rows(weight, geo.o),
                Matrix::rows(&patches.0, geo.patch_len()),
                true,
            );
            if epilogue == Epilogue::Relu {
                y.iter_mut().for_each(|y| *y = y.max(0.0));
            }
            pooled.then(|| {
                let mut argmax = vec![0; y.len()];
                let planes = conv.chunks(positions).zip(y.chunks_mut(oh * ow));
                for ((plane, y), argmax) in planes.zip(argmax.chunks_mut(oh * ow)) {
                    pool_plane(plane, geo.ow, y, argmax);
                }
                argmax
            })
        },
    );
    let y = FlexTensor::from_data(TensorData::new(y, [geo.n, geo.o, oh, ow]));
    let saved = match epilogue {
        Epilogue::None => Saved::Nothing,
        Epilogue::Relu => Saved::Output(y.clone()),
        Epilogue::ReluPool => Saved::Pooling(argmax.into_iter().flatten().collect()),
    };
    (y, saved)
}

/// What the backward pass needs of an [`Epilogue`].
#[derive(Debug, Clone)]
enum Saved {
    Nothing,
    /// After [`Epilogue::Relu`], the output: the gradient passes where it is positive.
    Output(FlexTensor),
    /// After [`Epilogue::ReluPool`], each image's pooling positions (`flex::pool`).
    Pooling(Vec<Vec<u8>>),
}

impl Saved {
    /// The gradient of image `i`'s convolution [o, oh * ow] from its output's, `grad`,
    /// through the epilogue: written into `scratch` [o, oh * ow] unless there is none.
    fn through<'a>(
        &self,
        i: usize,
        grad: &'a [f32],
        scratch: &'a mut [f32],
        geo: &Geometry,
    ) -> &'a [f32] {
        match self {
            Saved::Nothing => grad,
            Saved::Output(y) => {
                let y = &values(y)[i * grad.len()..][..grad.len()];
                for ((d, &g), &y) in scratch.iter_mut().zip(grad).zip(y) {
                    *d = if y > 0.0 { g } else { 0.0 };
                }
                scratch
            }
            Saved::Pooling(argmax) => {
                scratch.fill(0.0);
                let pooled = grad.len() / geo.o;
                let planes = scratch.chunks_mut(geo.oh * geo.ow).zip(grad.chunks(pooled));
                for ((d, grad), argmax) in planes.zip(argmax[i].chunks(pooled)) {
                    unpool_plane(grad, argmax, geo.ow, d);
                }
                scratch
            }
        }
    }
}

#[derive(Debug)]
struct Conv2dBackward;

/// Images whose weight gradients one parallel task sums; fixed, so that the order of the
/// sums, and with it the gradient's last bits, does not depend on the number of threads.
const IMAGES_PER_TASK: usize = 8;

impl Backward<Flex, 3> for Conv2dBackward {
    /// The input, the weight, the window and what the epilogue saved.
    type State = AffineState<(Window, Saved)>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let (x, weight, (window, saved)) = ops.state;
        let geo = Geometry::new(&x.shape(), &weight.shape(), window);
        let rows: Vec<_> = geo.patch_rows().collect();
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x_data, w) = (x.to_contiguous(), weight.to_contiguous());
        let (x_data, w, grad) = (values(&x_data), values(&w), values(&grad));
        let (positions, patch_len) = (geo.oh * geo.ow, geo.patch_len());
        // The gradient of one image's output: its convolution's, or its pooling's.
        let image_grad = grad.len() / geo.n;
        let want_dx = node_x.is_some();
        let task_len = IMAGES_PER_TASK * geo.image_len();
        let (dx, sums) = par_zeroed(
            x_data.len(),
            task_len,
            || {
                let conv = match saved {
                    Saved::Nothing => 0,
                    Saved::Output(_) | Saved::Pooling(_) => geo.o * positions,
                };
                let dpatches = if want_dx { patch_len * positions } else { 0 };
                (geo.patches(), vec![0f32; dpatches], vec![0f32; conv])
            },
            |(patches, dpatches, conv), task, dx| {
                let mut dw_t = vec![0f32; patch_len * geo.o];
                let mut db = vec![0f32; geo.o];
                let first = task * IMAGES_PER_TASK;
                for (i, dx) in (first..).zip(dx.chunks_mut(geo.image_len())) {
                    let grad = &grad[i * image_grad..][..image_grad];
                    let grad = saved.through(i, grad, conv, &geo);
                    let grad = Matrix::rows(grad, geo.o); // [o, oh * ow]
                    for (db, row) in db.iter_mut().zip(grad.data.chunks(positions)) {
                        *db += lane_sum(row, |v| v);
                    }
                    geo.unfold(&rows, geo.image(x_data, i), patches);
                    // dW^T [c * kh * kw, o] += patches @ grad^T [oh * ow, o]. Transposed,
                    // because gemm reads the patches where they lie in this orientation,
                    // but gathers them into a packed copy for dW [o, c * kh * kw] itself.
                    gemm(
                        &mut dw_t,
                        Matrix::rows(&patches.0, patch_len),
                        grad.t(),
                        true,
                    );
                    if want_dx {
                        // d patches [c * kh * kw, oh * ow] = weight^T @ grad
                        gemm(dpatches, Matrix::rows(w, geo.o).t(), grad, false);
                        geo.fold(&rows, dpatches, dx);
                    }
                }
                TaskSums { dw_t, db }
            },
        );
        let total = |pick: fn(&TaskSums) -> &[f32]| {
            let mut total = pick(&sums[0]).to_vec();
            for sum in &sums[1..] {
                total.iter_mut().zip(pick(sum)).for_each(|(t, s)| *t += s);
            }
            total
        };
        if let Some(node) = node_bias {
            let db = total(|s| &s.db);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [geo.o])));
        }
        if let Some(node) = node_weight {
            let dw = transpose(&total(|s| &s.dw_t), patch_len);
            let dw = TensorData::new(dw, weight.shape());
            grads.register::<Flex>(node.id, FlexTensor::from_data(dw));
        }
        if let Some(node) = node_x {
            let dx = TensorData::new(dx, x.shape());
            grads.register::<Flex>(node.id, FlexTensor::from_data(dx));
        }
    }
}

/// The weight and bias gradients of one parallel task's images.
struct TaskSums {
    /// The weight gradient transposed: [c * kh * kw, o].
    dw_t: Vec<f32>,
    db: Vec<f32>,
}

/// Sizes of a stride-1 convolution: input [n, c, h, w], weight [o, c, kh, kw], padding
/// [ph, pw], output [n, o, oh, ow].
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ph: usize,
    pw: usize,
    sh: usize,
    sw: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, window: Window) -> Self {
        let [n, c, h, w] = x.dims();
        let [o, _, kh, kw] = weight.dims();
        let ([ph, pw], [sh, sw]) = (window.padding, window.stride);
        Self {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            ph,
            pw,
            sh,
            sw,
            oh: (h + 2 * ph - kh) / sh + 1,
            ow: (w + 2 * pw - kw) / sw + 1,
        }
    }

    /// Values in one input image.
    fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Image `i` of the batch `x` [n, c, h, w].
    fn image<'a>(&self, x: &'a [f32], i: usize) -> &'a [f32] {
        &x[i * self.image_len()..][..self.image_len()]
    }

    /// Zeroed patches to [`Self::unfold`] images into.
    fn patches(&self) -> Patches {
        Patches(vec![0f32; self.patch_len() * self.oh * self.ow])
    }

    /// One image's patches as columns: [c * kh * kw, oh * ow], zero where a patch covers
    /// padding. `rows` are [`Self::patch_rows`].
    fn unfold(&self, rows: &[PatchRow], image: &[f32], patches: &mut Patches) {
        let step = self.sw;
        self.for_each_span(rows, |span| {
            let to = &mut patches.0[span.patches()];
            if step == 1 {
                to.copy_from_slice(&image[span.image(1)]);
            } else {
                for (t, s) in to
                    .iter_mut()
                    .zip(image[span.image(step)].iter().step_by(step))
                {
                    *t = *s;
                }
            }
        });
    }

    /// The adjoint of [`Self::unfold`]: one image's patch gradients [c * kh * kw, oh * ow]
    /// summed back onto its input gradient [c, h, w].
    fn fold(&self, rows: &[PatchRow], dpatches: &[f32], dx: &mut [f32]) {
        let step = self.sw;
        self.for_each_span(rows, |span| {
            let from = &dpatches[span.patches()];
            if step == 1 {
                for (d, s) in dx[span.image(1)].iter_mut().zip(from) {
                    *d += s;
                }
            } else {
                for (d, s) in dx[span.image(step)].iter_mut().step_by(step).zip(from) {
                    *d += s;
                }
            }
        });
    }

    /// `f` on each run of one image's patches [c * kh * kw, oh * ow] that reads inside the
    /// image, with the run of the image [c, h, w] it reads: the index arithmetic
    /// [`Self::unfold`] and [`Self::fold`] share. `rows` are [`Self::patch_rows`]. Plain
    /// loops around `f`, which the compiler keeps tighter than an iterator of spans.
    fn for_each_span(&self, rows: &[PatchRow], mut f: impl FnMut(Span)) {
        let positions = self.oh * self.ow;
        for pr in rows.iter().filter(|pr| !pr.cols.is_empty()) {
            for oy in 0..self.oh {
                if let Some(iy) = self.input_row(oy, pr.ky) {
                    f(Span {
                        patches: pr.row * positions + oy * self.ow + pr.cols.start,
                        image: (pr.channel * self.h + iy) * self.w + pr.x0,
                        len: pr.cols.len(),
                    });
                }
            }
        }
    }

    /// Length of one patch, the weight's fan-in.
    fn patch_len(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Every patch row (one weight of a filter: channel, kernel row, kernel column), with
    /// the output columns whose input column `ox * sw + kx - pw` lies inside the image.
    fn patch_rows(&self) -> impl Iterator<Item = PatchRow> + '_ {
        let (c, kh, kw, sw) = (self.c, self.kh, self.kw, self.sw);
        (0..c * kh * kw).map(move |row| {
            let (channel, ky, kx) = (row / (kh * kw), row / kw % kh, row % kw);
            let lo = self.pw.saturating_sub(kx).div_ceil(sw).min(self.ow);
            let hi = (self.w + self.pw)
                .saturating_sub(kx)
                .div_ceil(sw)
                .clamp(lo, self.ow);
            PatchRow {
                row,
                channel,
                ky,
                cols: lo..hi,
                // Input column of output column `lo` (`lo * sw + kx >= pw` unless `cols` is
                // empty).
                x0: (lo * sw + kx).saturating_sub(self.pw),
            }
        })
    }

    /// Input image row read at output row `oy` by kernel row `ky`.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky)
            .checked_sub(self.ph)
            .filter(|&iy| iy < self.h)
    }
}

/// One image's patches, as [`Geometry::unfold`] writes them. Only `unfold` writes them, and
/// always to the same places, so the values that read padding, zeroed once when the buffer
/// is made, stay zero from image to image without zeroing the whole buffer for each.
struct Patches(Vec<f32>);

/// A run of `len` patch values starting at `patches` that copies the image values starting
/// at `image`, every `step`-th at a stride (offsets into one image's patches and into the
/// image).
struct Span {
    patches: usize,
    image: usize,
    len: usize,
}

impl Span {
    fn patches(&self) -> std::ops::Range<usize> {
        self.patches..self.patches + self.len
    }

    /// The image values the run reads, with the `step - 1` between each two at a stride.
    fn image(&self, step: usize) -> std::ops::Range<usize> {
        self.image..self.image + (self.len.max(1) - 1) * step + usize::from(self.len > 0)
    }
}

/// One row of the unfolded patches: the input channel and kernel row it reads, and the
/// output columns `cols` that read inside the image, starting at input column `x0`.
struct PatchRow {
    row: usize,
    channel: usize,
    ky: usize,
    cols: std::ops::Range<usize>,
    x0: usize,
}

#[cfg(test)]
mod tests {
    use burn::module::AutodiffModule;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::activation::relu;
    use burn::tensor::{Distribution, Tolerance};

    use super::super::{FlexTrain, try_relu_max_pool2d};
    use super::*;

    /// Output and gradients (weight, bias, and input when `track_x`) of `sum(conv(x) * r)`.
    fn run(
        conv: &Conv2d<FlexTrain>,
        x: &Tensor<FlexTrain, 4>,
        r: &Tensor<FlexTrain, 4>,
        track_x: bool,
        forward: impl Fn(&Conv2d<FlexTrain>, Tensor<FlexTrain, 4>) -> Tensor<FlexTrain, 4>,
    ) -> Vec<TensorData> {
        let x = if track_x {
            x.clone().require_grad()
        } else {
            x.clone()
        };
        let y = forward(conv, x.clone());
        let grads = (y.clone() * r.clone()).sum().backward();
        let mut results = vec![
            y.into_data(),
            conv.weight.grad(&grads).expect("tracked").into_data(),
        ];
        if let Some(bias) = &conv.bias {
            results.push(bias.grad(&grads).expect("tracked").into_data());
        }
        match x.grad(&grads) {
            Some(dx) => results.push(dx.into_data()),
            None => assert!(!track_x, "input tracked but given no gradient"),
        }
        results
    }

    /// levelset's backward pass against Burn's on the same convolution.
    fn check(padding: PaddingConfig2d, kernel: [usize; 2], x_dims: [usize; 4], c_out: usize) {
        check_conv(
            Conv2dConfig::new([x_dims[1], c_out], kernel).with_padding(padding),
            x_dims,
        );
    }

    fn check_conv(config: Conv2dConfig, x_dims: [usize; 4]) {
        let device = Default::default();
        let conv = config.init::<FlexTrain>(&device);
        let x = Tensor::random(x_dims, Distribution::Normal(0.0, 1.0), &device);
        let y_dims = conv.forward(x.clone()).dims();
        let r = Tensor::random(y_dims, Distribution::Normal(0.0, 1.0), &device);
        for track_x in [true, false] {
            let ours = run(&conv, &x, &r, track_x, |conv, x| {
                try_conv2d(conv, x).expect("handled by flex_conv")
            });
            let burns = run(&conv, &x, &r, track_x, |conv, x| conv.forward(x));
            assert_eq!(ours.len(), burns.len());
            for (ours, burns) in ours.iter().zip(&burns) {
                assert_eq!(ours.shape, burns.shape);
                ours.assert_approx_eq::<f32>(burns, Tolerance::rel_abs(1e-4, 1e-5));
            }
        }
    }

    #[test]
    fn gradients_match_burns_for_same_padding() {
        check(PaddingConfig2d::Same, [5, 5], [3, 2, 9, 7], 4);
    }

    #[test]
    fn gradients_match_burns_when_summed_over_several_tasks_of_images() {
        check(
            PaddingConfig2d::Same,
            [3, 3],
            [2 * IMAGES_PER_TASK + 3, 2, 5, 4],
            3,
        );
    }

    #[test]
    fn gradients_match_burns_without_a_bias() {
        // A ResNet's convolutions: batch normalization follows, so they have no bias.
        let config = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false);
        check_conv(config.clone(), [IMAGES_PER_TASK + 2, 3, 6, 5]);
        let inference = config.init::<Flex>(&Default::default());
        let x = Tensor::random(
            [2, 3, 6, 5],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let ours = try_conv2d(&inference, x.clone()).expect("handled by flex_conv");
        ours.into_data().assert_approx_eq::<f32>(
            &inference.forward(x).into_data(),
            Tolerance::rel_abs(1e-4, 1e-5),
        );
    }

    #[test]
    fn gradients_match_burns_for_strided_convolutions() {
        // A ResNet's downsampling: a 3x3 convolution of stride 2 padded by 1 and a 1x1
        // projection of stride 2; odd sides, where the last column and row read padding (or
        // are skipped); and unequal strides with a kernel wider than the stride.
        for (config, x_dims) in [
            (
                Conv2dConfig::new([3, 4], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false),
                [IMAGES_PER_TASK + 1, 3, 8, 8],
            ),
            (
                Conv2dConfig::new([3, 5], [1, 1])
                    .with_stride([2, 2])
                    .with_bias(false),
                [2, 3, 7, 5],
            ),
            (
                Conv2dConfig::new([2, 3], [3, 4])
                    .with_stride([2, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 2, 1, 2)),
                [2, 2, 9, 11],
            ),
        ] {
            check_conv(config, x_dims);
        }
    }

    #[test]
    fn gradients_match_burns_for_valid_and_rectangular_kernels() {
        check(PaddingConfig2d::Valid, [3, 2], [2, 3, 6, 5], 5);
    }

    #[test]
    fn gradients_match_burns_for_padding_wider_than_the_kernel_reach() {
        // Some patch rows lie wholly in the padding.
        check(
            PaddingConfig2d::Explicit(3, 2, 3, 2),
            [3, 3],
            [2, 1, 4, 3],
            2,
        );
    }

    /// The convolution with `epilogue` in one kernel, against levelset's separate kernels
    /// (bit for bit: the same operations) and against Burn's layers; also without autodiff.
    fn check_epilogue(epilogue: Epilogue) {
        let device = Default::default();
        let conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<FlexTrain>(&device);
        let pool = MaxPool2dConfig::new([2, 2]).init();
        // Several tasks of images, and an odd output whose last row the pool drops.
        let n = 2 * IMAGES_PER_TASK + 1;
        let y_dims = match epilogue {
            Epilogue::ReluPool => [n, 3, 3, 3],
            Epilogue::None | Epilogue::Relu => [n, 3, 7, 6],
        };
        let random = |dims| Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let (x, r) = (random([n, 2, 7, 6]), random(y_dims));
        let fused = |conv: &Conv2d<FlexTrain>, x| {
            try_conv(conv, x, epilogue).expect("handled by flex_conv")
        };
        for track_x in [true, false] {
            let ours = run(&conv, &x, &r, track_x, fused);
            let separate = run(&conv, &x, &r, track_x, |conv, x| {
                let y = try_conv2d(conv, x).expect("handled by flex_conv");
                match epilogue {
                    Epilogue::None => y,
                    Epilogue::Relu => relu(y),
                    Epilogue::ReluPool => try_relu_max_pool2d(&pool, y).expect("flex_pool"),
                }
            });
            let burns = run(&conv, &x, &r, track_x, |conv, x| {
                let y = conv.forward(x);
                match epilogue {
                    Epilogue::None => y,
                    Epilogue::Relu => relu(y),
                    Epilogue::ReluPool => pool.forward(relu(y)),
                }
            });
            assert_eq!(ours.len(), burns.len());
            for ((ours, separate), burns) in ours.iter().zip(&separate).zip(&burns) {
                assert_eq!(ours, separate);
                ours.assert_approx_eq::<f32>(burns, Tolerance::rel_abs(1e-4, 1e-5));
            }
        }
        let inference = fused(&conv, x.clone()).inner();
        let ours = try_conv(&conv.valid(), x.inner(), epilogue).expect("flex");
        assert_eq!(ours.into_data(), inference.into_data());
    }

    #[test]
    fn relu_epilogue_matches_the_separate_layers() {
        check_epilogue(Epilogue::Relu);
    }

    #[test]
    fn relu_pool_epilogue_matches_the_separate_layers() {
        check_epilogue(Epilogue::ReluPool);
    }

    #[test]
    fn inference_matches_burns() {
        let device = Default::default();
        let conv = Conv2dConfig::new([3, 4], [5, 3])
            .with_padding(PaddingConfig2d::Explicit(2, 1, 2, 1))
            .init::<Flex>(&device);
        let x = Tensor::random([3, 3, 8, 6], Distribution::Normal(0.0, 1.0), &device);
        let ours = try_conv2d(&conv, x.clone()).expect("handled by flex_conv");
        ours.into_data()
            .assert_approx_eq::<f32>(&conv.forward(x).into_data(), Tolerance::rel_abs(1e-4, 1e-5));
    }

    #[test]
    fn other_convolutions_are_left_to_burn() {
        let device = Default::default();
        let zeros = || Tensor::<FlexTrain, 4>::zeros([1, 2, 6, 6], &device);
        let dilated = Conv2dConfig::new([1, 2], [3, 3]).with_dilation([2, 2]);
        let even_same = Conv2dConfig::new([1, 2], [2, 2]).with_padding(PaddingConfig2d::Same);
        let grouped = Conv2dConfig::new([2, 2], [3, 3]).with_groups(2);
        for config in [dilated, even_same, grouped] {
            assert!(try_conv2d(&config.init(&device), zeros()).is_err());
        }
    }
}
