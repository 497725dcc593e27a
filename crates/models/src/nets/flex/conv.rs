//! Training convolutions on flex, differentiated as GEMMs on the unfolded input.
//!
//! Burn 0.21 differentiates a convolution with two generic rules that are slow on flex: the
//! weight gradient is a convolution whose kernel is the output gradient (on the MNIST
//! convnet's first layer a 28x28 kernel, 30 ms of a 158 ms training step for 0.1 GFLOP), and
//! the input gradient is a transposed convolution. Here both gradients are batched GEMMs on
//! the input unfolded into patches (im2col), run by flex's own matmul; the only hand-written
//! loops are the unfold and its adjoint. The forward pass stays flex's convolution.
//! Timings in `experiments/bench/README.md`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, FloatTensorOps, ModuleOps};
use burn::tensor::{DType, TensorData, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{FlexTrain, cast};

/// `conv` applied to `x` with levelset's backward pass, when `B` is flex's training backend
/// and the convolution is one this module handles (stride 1, no dilation, no groups,
/// symmetric padding, a bias, f32); otherwise `x` back untouched.
pub(in crate::nets) fn try_conv2d<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let (Some(padding), Some(bias)) = (symmetric_padding(conv), &conv.bias) else {
        return Err(x);
    };
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = cast::<Tensor<B, 4>, Tensor<FlexTrain, 4>>(x)?;
    // `B` is `FlexTrain` from here on, so these casts cannot fail.
    let same = "B is FlexTrain";
    let weight = cast::<_, Tensor<FlexTrain, 4>>(conv.weight.val()).expect(same);
    let bias = cast::<_, Tensor<FlexTrain, 1>>(bias.val()).expect(same);
    Ok(cast(conv2d(x, weight, bias, padding)).expect(same))
}

/// Padding of a stride-1, undilated, ungrouped convolution whose padding is the same on
/// both sides of each axis: [rows, columns].
fn symmetric_padding<B: Backend>(conv: &Conv2d<B>) -> Option<[usize; 2]> {
    if conv.stride != [1, 1] || conv.dilation != [1, 1] || conv.groups != 1 {
        return None;
    }
    let [kh, kw] = conv.kernel_size;
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        // At stride 1, "same" padding is symmetric only for odd kernels.
        PaddingConfig2d::Same if kh % 2 == 1 && kw % 2 == 1 => Some([kh / 2, kw / 2]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// Convolution of x [n, c, h, w] with weight [o, c, kh, kw] and bias [o]:
/// [n, o, h + 2 ph - kh + 1, w + 2 pw - kw + 1]
fn conv2d(
    x: Tensor<FlexTrain, 4>,
    weight: Tensor<FlexTrain, 4>,
    bias: Tensor<FlexTrain, 1>,
    padding: [usize; 2],
) -> Tensor<FlexTrain, 4> {
    let [x, weight, bias] = [
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    ];
    let options = ConvOptions::new([1, 1], padding, [1, 1], 1);
    let parents = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    let y = Flex::conv2d(
        x.primitive.clone(),
        weight.primitive.clone(),
        Some(bias.primitive),
        options,
    );
    let y = match Conv2dBackward
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, weight.primitive, padding), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    /// The input, the weight and the padding.
    type State = (FlexTensor, FlexTensor, [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let (x, weight, padding) = ops.state;
        let geo = Geometry::new(&x.shape(), &weight.shape(), padding);
        let grad = channels_first(&geo, grads.consume::<Flex>(&ops.node)); // [o, n * oh * ow]

        if let Some(node) = node_bias {
            let db = Flex::float_sum_dim(grad.clone(), 1);
            grads.register::<Flex>(node.id, Flex::float_reshape(db, Shape::new([geo.o])));
        }
        if let Some(node) = node_weight {
            // The whole batch in one GEMM: [o, n * oh * ow] @ [n * oh * ow, c * kh * kw]
            let patches = unfold(&geo, x);
            let dw = Flex::float_matmul(grad.clone(), Flex::float_transpose(patches));
            grads.register::<Flex>(node.id, Flex::float_reshape(dw, weight.shape()));
        }
        if let Some(node) = node_x {
            let weight = Flex::float_reshape(weight, Shape::new([geo.o, geo.patch_len()]));
            // [c * kh * kw, o] @ [o, n * oh * ow]
            let dpatches = Flex::float_matmul(Flex::float_transpose(weight), grad);
            grads.register::<Flex>(node.id, fold(&geo, dpatches));
        }
    }
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
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, [ph, pw]: [usize; 2]) -> Self {
        let [n, c, h, w] = x.dims();
        let [o, _, kh, kw] = weight.dims();
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
            oh: h + 2 * ph + 1 - kh,
            ow: w + 2 * pw + 1 - kw,
        }
    }

    /// Length of one patch, the weight's fan-in.
    fn patch_len(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Every patch row (one weight of a filter: channel, kernel row, kernel column), with
    /// the output columns whose input column `ox + kx - pw` lies inside the image.
    fn patch_rows(&self) -> impl Iterator<Item = PatchRow> + '_ {
        let (c, kh, kw) = (self.c, self.kh, self.kw);
        (0..c * kh * kw).map(move |row| {
            let (channel, ky, kx) = (row / (kh * kw), row / kw % kh, row % kw);
            let lo = self.pw.saturating_sub(kx).min(self.ow);
            let hi = (self.w + self.pw).saturating_sub(kx).clamp(lo, self.ow);
            PatchRow {
                row,
                channel,
                ky,
                cols: lo..hi,
                // Input column of output column `lo` (`lo + kx >= pw` unless `cols` is empty).
                x0: (lo + kx).saturating_sub(self.pw),
            }
        })
    }

    /// Input image row read at output row `oy` by kernel row `ky`.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy + ky).checked_sub(self.ph).filter(|&iy| iy < self.h)
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

/// The output gradient [n, o, oh, ow] as [o, n * oh * ow], the layout in which one GEMM
/// sums the weight gradient over the batch.
fn channels_first(geo: &Geometry, grad: FlexTensor) -> FlexTensor {
    let grad = grad.to_contiguous();
    let grad = grad.as_slice::<f32>().expect("contiguous f32 gradient");
    let positions = geo.oh * geo.ow;
    let mut out = vec![0f32; grad.len()];
    out.par_chunks_mut(geo.n * positions)
        .enumerate()
        .for_each(|(channel, out)| {
            for (image, out) in out.chunks_mut(positions).enumerate() {
                let src = (image * geo.o + channel) * positions;
                out.copy_from_slice(&grad[src..src + positions]);
            }
        });
    FlexTensor::from_data(TensorData::new(out, [geo.o, geo.n * positions]))
}

/// Patches of x [n, c, h, w] as columns: [c * kh * kw, n * oh * ow], zero where a patch
/// covers padding.
fn unfold(geo: &Geometry, x: FlexTensor) -> FlexTensor {
    let x = x.to_contiguous();
    let x = x.as_slice::<f32>().expect("contiguous f32 input");
    let (image_len, positions) = (geo.c * geo.h * geo.w, geo.oh * geo.ow);
    let mut patches = vec![0f32; geo.patch_len() * geo.n * positions];
    let rows: Vec<_> = geo.patch_rows().collect();
    patches
        .par_chunks_mut(geo.n * positions)
        .zip(&rows)
        .filter(|(_, pr)| !pr.cols.is_empty())
        .for_each(|(row, pr)| {
            for (image, row) in x.chunks(image_len).zip(row.chunks_mut(positions)) {
                for oy in 0..geo.oh {
                    if let Some(iy) = geo.input_row(oy, pr.ky) {
                        let src = (pr.channel * geo.h + iy) * geo.w + pr.x0;
                        let dst = oy * geo.ow + pr.cols.start;
                        let span = pr.cols.len();
                        row[dst..dst + span].copy_from_slice(&image[src..src + span]);
                    }
                }
            }
        });
    FlexTensor::from_data(TensorData::new(
        patches,
        [geo.patch_len(), geo.n * positions],
    ))
}

/// The adjoint of [`unfold`]: patch gradients [c * kh * kw, n * oh * ow] summed back onto
/// the input, [n, c, h, w].
fn fold(geo: &Geometry, dpatches: FlexTensor) -> FlexTensor {
    let dpatches = dpatches.to_contiguous();
    let dpatches = dpatches.as_slice::<f32>().expect("contiguous f32 patches");
    let (image_len, positions) = (geo.c * geo.h * geo.w, geo.oh * geo.ow);
    let mut dx = vec![0f32; geo.n * image_len];
    dx.par_chunks_mut(image_len)
        .enumerate()
        .for_each(|(image, dx)| {
            for pr in geo.patch_rows().filter(|pr| !pr.cols.is_empty()) {
                let patches = &dpatches[(pr.row * geo.n + image) * positions..][..positions];
                for oy in 0..geo.oh {
                    if let Some(iy) = geo.input_row(oy, pr.ky) {
                        let dst = (pr.channel * geo.h + iy) * geo.w + pr.x0;
                        let src = oy * geo.ow + pr.cols.start;
                        let span = pr.cols.len();
                        for (d, s) in dx[dst..dst + span]
                            .iter_mut()
                            .zip(&patches[src..src + span])
                        {
                            *d += s;
                        }
                    }
                }
            }
        });
    FlexTensor::from_data(TensorData::new(dx, [geo.n, geo.c, geo.h, geo.w]))
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Distribution, Tolerance};

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
        let bias = conv.bias.as_ref().expect("a bias");
        let mut results = vec![
            y.into_data(),
            conv.weight.grad(&grads).expect("tracked").into_data(),
            bias.grad(&grads).expect("tracked").into_data(),
        ];
        match x.grad(&grads) {
            Some(dx) => results.push(dx.into_data()),
            None => assert!(!track_x, "input tracked but given no gradient"),
        }
        results
    }

    /// levelset's backward pass against Burn's on the same convolution.
    fn check(padding: PaddingConfig2d, kernel: [usize; 2], x_dims: [usize; 4], c_out: usize) {
        let device = Default::default();
        let conv = Conv2dConfig::new([x_dims[1], c_out], kernel)
            .with_padding(padding)
            .init::<FlexTrain>(&device);
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

    #[test]
    fn other_convolutions_and_backends_are_left_to_burn() {
        let device = Default::default();
        let zeros = || Tensor::<FlexTrain, 4>::zeros([1, 1, 6, 6], &device);
        let strided = Conv2dConfig::new([1, 2], [3, 3]).with_stride([2, 2]);
        let even_same = Conv2dConfig::new([1, 2], [2, 2]).with_padding(PaddingConfig2d::Same);
        let no_bias = Conv2dConfig::new([1, 2], [3, 3]).with_bias(false);
        for config in [strided, even_same, no_bias] {
            assert!(try_conv2d(&config.init(&device), zeros()).is_err());
        }
        let inference = Conv2dConfig::new([1, 2], [3, 3]).init::<Flex>(&device);
        assert!(try_conv2d(&inference, zeros().inner()).is_err());
    }
}
