//! Convolution as unfold (im2col) + one batched matmul, written with Burn's tensor API so that
//! autodiff derives its backward from the matmul's: the weight gradient becomes a batched
//! matmul over the images instead of Burn's generic rule, which computes it as a convolution
//! whose kernel is the size of the output (24x24 for CIFAR-10's first layer) and runs poorly
//! on the GPU. Whether a backend uses it is decided in one place, [`super::rule`].

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::module::unfold4d;
use burn::tensor::ops::{PadMode, UnfoldOptions};

/// `conv.forward(x)` computed as unfold + batched matmul, for any padding, stride and groups
/// (dilation 1). [b, c_in, h, w] -> [b, c_out, h', w']
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    assert_eq!(
        conv.dilation,
        [1, 1],
        "the matmul convolution supports dilation 1 only"
    );
    let [batch, _c_in, h, w] = x.dims();
    let [c_out, c_in_group, kh, kw] = conv.weight.dims();
    let groups = conv.groups;
    let (top, bottom) = padding_pair(&conv.padding, 0, h, kh, conv.stride[0]);
    let (left, right) = padding_pair(&conv.padding, 1, w, kw, conv.stride[1]);
    let x = if top + bottom + left + right > 0 {
        x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0))
    } else {
        x
    };
    let [_, _, hp, wp] = x.dims();
    let out_h = (hp - kh) / conv.stride[0] + 1;
    let out_w = (wp - kw) / conv.stride[1] + 1;
    // Without padding, Burn's unfold is a strided view plus one copy, not a convolution.
    let unfolded = unfold4d(x, [kh, kw], UnfoldOptions::new(conv.stride, [0, 0], [1, 1]));
    // Channels come out channel-major, then kernel row, then column: the weight's own order,
    // and each group's channels are contiguous.
    let patch = c_in_group * kh * kw;
    let columns = unfolded.reshape([batch, groups, patch, out_h * out_w]);
    let weight = conv
        .weight
        .val()
        .reshape([1, groups, c_out / groups, patch]);
    let y = weight.matmul(columns).reshape([batch, c_out, out_h, out_w]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, c_out, 1, 1]),
        None => y,
    }
}

/// The (before, after) padding of dimension `dim` (0: rows, 1: columns), as Burn's `Conv2d`
/// pads: "same" puts the odd pixel at the end (the ONNX convention).
fn padding_pair(
    padding: &PaddingConfig2d,
    dim: usize,
    size: usize,
    kernel: usize,
    stride: usize,
) -> (usize, usize) {
    match *padding {
        PaddingConfig2d::Valid => (0, 0),
        PaddingConfig2d::Same => {
            let out = size.div_ceil(stride);
            let total = match out {
                0 => 0,
                _ => ((out - 1) * stride + kernel).saturating_sub(size),
            };
            (total / 2, total - total / 2)
        }
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            if dim == 0 {
                (top, bottom)
            } else {
                (left, right)
            }
        }
    }
}
