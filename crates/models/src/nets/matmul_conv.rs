//! Convolution as unfold (im2col) + one batched matmul. Its backward is one autodiff op on the
//! training backend: the weight gradient a batched matmul of the output gradient with the
//! unfolded input, instead of Burn's generic rule, which computes it as a convolution whose
//! kernel is the size of the output (24x24 for CIFAR-10's first layer) and runs poorly on the
//! GPU; the input gradient Burn's own (a transposed convolution: matmul + col2im on CubeCL).
//! Derived by autodiff instead, the unfold's backward is a slice, a slice-assign and an add per
//! kernel position, over a hundred kernel launches per MNIST training step. Whether a backend
//! uses this form is decided in one place, [`super::rule`].

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
    let [_, _, h, w] = x.dims();
    let [c_out, _, kh, kw] = conv.weight.dims();
    let geometry = Geometry {
        rows: padding_pair(&conv.padding, 0, h, kh, conv.stride[0]),
        columns: padding_pair(&conv.padding, 1, w, kw, conv.stride[1]),
        stride: conv.stride,
        groups: conv.groups,
    };
    let y = op::forward(x, conv.weight.val(), geometry);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, c_out, 1, 1]),
        None => y,
    }
}

/// A convolution's shape apart from its tensors.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Padding before and after, of the rows and of the columns.
    rows: (usize, usize),
    columns: (usize, usize),
    stride: [usize; 2],
    groups: usize,
}

impl Geometry {
    fn pad<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let ((top, bottom), (left, right)) = (self.rows, self.columns);
        if top + bottom + left + right > 0 {
            x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0))
        } else {
            x
        }
    }

    /// The padded input's patches [b, groups, c_in / groups * kh * kw, h' * w'], and h', w'.
    fn columns<B: Backend>(
        &self,
        x: Tensor<B, 4>,
        weight: [usize; 4],
    ) -> (Tensor<B, 4>, usize, usize) {
        let [_, c_in_group, kh, kw] = weight;
        let x = self.pad(x);
        let [batch, _, hp, wp] = x.dims();
        let out_h = (hp - kh) / self.stride[0] + 1;
        let out_w = (wp - kw) / self.stride[1] + 1;
        // Without padding, Burn's unfold is a strided view plus one copy, not a convolution.
        let unfolded = unfold4d(x, [kh, kw], UnfoldOptions::new(self.stride, [0, 0], [1, 1]));
        // Channels come out channel-major, then kernel row, then column: the weight's own
        // order, and each group's channels are contiguous.
        let patch = c_in_group * kh * kw;
        let columns = unfolded.reshape([batch, self.groups, patch, out_h * out_w]);
        (columns, out_h, out_w)
    }

    /// The convolution without bias, as unfold + batched matmul.
    fn forward<B: Backend>(&self, x: Tensor<B, 4>, weight: Tensor<B, 4>) -> Tensor<B, 4> {
        let dims = weight.dims();
        let [c_out, patch_channels, kh, kw] = dims;
        let batch = x.dims()[0];
        let (columns, out_h, out_w) = self.columns(x, dims);
        let weight = weight.reshape([
            1,
            self.groups,
            c_out / self.groups,
            patch_channels * kh * kw,
        ]);
        weight.matmul(columns).reshape([batch, c_out, out_h, out_w])
    }
}

/// The convolution without bias: one autodiff op on the training backend; any other backend
/// (evaluation, or an autodiff backend levelset does not train on) derives the backward from
/// the forward's tensor ops.
#[cfg(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
))]
mod op {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::prelude::*;
    use burn::tensor::TensorPrimitive;
    use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};

    use super::Geometry;
    use crate::backend::{Compute, Train};
    use crate::nets::cast::cast;

    pub fn forward<B: Backend>(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        geometry: Geometry,
    ) -> Tensor<B, 4> {
        match cast::<_, (Tensor<Train, 4>, Tensor<Train, 4>)>((x, weight)) {
            Ok((x, weight)) => {
                cast(tracked(x, weight, geometry)).unwrap_or_else(|_| unreachable!())
            }
            Err((x, weight)) => geometry.forward(x, weight),
        }
    }

    /// The convolution without bias on the training backend, as one autodiff op.
    fn tracked(
        x: Tensor<Train, 4>,
        weight: Tensor<Train, 4>,
        geometry: Geometry,
    ) -> Tensor<Train, 4> {
        let [x, weight] = [x, weight].map(|t| t.into_primitive().tensor());
        let inner = |t: &FloatTensor<Train>| {
            Tensor::<Compute, 4>::from_primitive(TensorPrimitive::Float(t.primitive.clone()))
        };
        let y = geometry
            .forward(inner(&x), inner(&weight))
            .into_primitive()
            .tensor();
        let state = (x.primitive.clone(), weight.primitive.clone(), geometry);
        let y = match MatmulConv
            .prepare::<NoCheckpointing>([x.node, weight.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Tensor::from_primitive(TensorPrimitive::Float(y))
    }

    #[derive(Debug)]
    struct MatmulConv;

    impl Backward<Compute, 2> for MatmulConv {
        type State = (FloatTensor<Compute>, FloatTensor<Compute>, Geometry);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_weight] = ops.parents;
            let grad = grads.consume::<Compute>(&ops.node);
            let (x, weight, geometry) = ops.state;
            let tensor = |t: FloatTensor<Compute>| {
                Tensor::<Compute, 4>::from_primitive(TensorPrimitive::Float(t))
            };
            let dims = tensor(weight.clone()).dims();
            let [c_out, c_in_group, kh, kw] = dims;
            if let Some(node) = node_weight {
                // dW[g] = sum over images of dY[b, g] (c_out/g x L) times columns[b, g]^T
                // (L x patch): one batched matmul and a sum over the batch.
                let (columns, _, _) = geometry.columns(tensor(x.clone()), dims);
                let [batch, groups, patch, positions] = columns.dims();
                let dy = tensor(grad.clone()).reshape([batch, groups, c_out / groups, positions]);
                let dw = dy
                    .matmul(columns.swap_dims(2, 3))
                    .sum_dim(0)
                    .reshape([c_out, c_in_group, kh, kw]);
                debug_assert_eq!(patch, c_in_group * kh * kw);
                grads.register::<Compute>(node.id, dw.into_primitive().tensor());
            }
            if let Some(node) = node_x {
                // Burn's rule, on the padded input without padding of its own, then the padding
                // cut off: Burn's options pad both sides alike, the layers may not.
                let x = tensor(x);
                let [_, _, h, w] = x.dims();
                let padded = geometry.pad(x);
                let options = ConvOptions::new(geometry.stride, [0, 0], [1, 1], geometry.groups);
                let dx = Compute::conv2d_x_backward(
                    padded.into_primitive().tensor(),
                    weight,
                    grad,
                    options,
                );
                let (top, left) = (geometry.rows.0, geometry.columns.0);
                let dx = tensor(dx);
                let [batch, channels, _, _] = dx.dims();
                let dx = dx.slice([0..batch, 0..channels, top..top + h, left..left + w]);
                grads.register::<Compute>(node.id, dx.into_primitive().tensor());
            }
        }
    }
}

/// Without a backend there is no training backend to give an op of its own.
#[cfg(not(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
)))]
mod op {
    use burn::prelude::*;

    use super::Geometry;

    pub fn forward<B: Backend>(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        geometry: Geometry,
    ) -> Tensor<B, 4> {
        geometry.forward(x, weight)
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
