//! levelset's own kernels for the flex backend, where Burn 0.21's are slow for the nets'
//! layers. Each `try_*` function takes a generic tensor and either computes the layer (when
//! the backend is flex, with or without autodiff) or hands the tensor back for Burn's
//! generic layer, so the nets stay backend-generic. Each kernel is tested against Burn's
//! layer, in values and gradients; measured in `experiments/bench/README.md`.
//!
//! All of levelset's `unsafe` code lives here, each block with its safety argument.
//!
//! Where to start reading: the `try_*` functions below are the whole interface, called from
//! one module of `levelset-models` (`kernels`); each kernel's module (`conv`, `linear`,
//! `lstm`, `pool`, `cross_entropy`, `adam`, `sgd`, ...) opens with what it computes and why
//! it is shaped as it is, and the products all go through `matrix`'s GEMM wrappers. The
//! book's backends page (`docs/src/guide/backends.md`) lists the kernels.

use std::any::{Any, TypeId};
use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

mod adam;
mod batch_norm;
mod conv;
mod cross_entropy;
mod linear;
mod lrn;
mod lstm;
mod matrix;
mod norm;
mod pool;
mod sgd;
mod sigmoid;

pub use adam::{AdamArgs, AdamConstants, AdamStep, try_adam_step};
pub use batch_norm::{try_batch_norm, try_channel_affine};
pub use conv::{try_conv2d, try_conv2d_relu, try_conv2d_relu_max_pool2d};
pub use cross_entropy::try_cross_entropy;
pub use linear::try_linear;
pub use lrn::{LrnWindow, try_lrn};
pub use lstm::try_lstm;
pub use norm::try_square_sum;
pub use pool::{try_max_pool2d, try_relu_max_pool2d};
pub use sgd::try_sgd_step;
pub use sigmoid::try_sigmoid;

/// Elements per parallel task of the elementwise kernels: below it, a thread hand-off costs
/// more than it saves.
const CHUNK: usize = 1 << 14;

/// flex's training backend: `backend::Train` on the flex build.
type FlexTrain = Autodiff<Flex>;

/// `value` as type `U` when `T` is `U`, else `value` back.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(target) => Ok(target.take().expect("slot filled above")),
        None => Err(slot.expect("slot untouched")),
    }
}

/// The values of a contiguous f32 tensor.
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice().expect("a contiguous f32 tensor")
}

/// The state a layer with an input, a weight and a bias (`flex::conv`, `flex::linear`)
/// keeps for its backward pass: the input, the weight and whatever else `S` it needs.
type AffineState<S> = (FlexTensor, FlexTensor, S);

/// A layer of input `x`, `weight` and `bias` on flex, as [`try_op`]: `forward` gives the
/// output and the extra state `S` its backward pass needs besides the input and the weight.
/// `x` comes back untouched unless `B` is flex, with or without autodiff, and the tensors
/// are f32.
fn try_affine<B, O, S, const D: usize, const DW: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, DW>,
    bias: Tensor<B, 1>,
    op: O,
    forward: impl FnOnce(&FlexTensor, &FlexTensor, &FlexTensor) -> (FlexTensor, S),
) -> Result<Tensor<B, D>, Tensor<B, D>>
where
    B: Backend,
    O: Backward<Flex, 3, State = AffineState<S>>,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    let inputs = [primitive(x), primitive(weight), primitive(bias)];
    try_op::<B, O, 3>(inputs, op, |[x, weight, bias]| {
        let (y, extra) = forward(x, weight, bias);
        (y, (x.clone(), weight.clone(), extra))
    })
    .map(tensor)
    .map_err(|[x, ..]| tensor(x))
}

/// An op of `N` float inputs on flex: `forward` gives the output and the state `op`'s
/// backward pass needs (dropped without autodiff). The inputs come back untouched unless
/// `B` is flex, with or without autodiff, and all of them are f32.
fn try_op<B: Backend, O: Backward<Flex, N>, const N: usize>(
    inputs: [B::FloatTensorPrimitive; N],
    op: O,
    forward: impl FnOnce([&FlexTensor; N]) -> (FlexTensor, O::State),
) -> Result<B::FloatTensorPrimitive, [B::FloatTensorPrimitive; N]> {
    if inputs.iter().any(|x| x.dtype() != DType::F32) {
        return Err(inputs);
    }
    let inputs = match cast::<_, [FlexTensor; N]>(inputs) {
        Ok(inputs) => {
            let (y, _) = forward(inputs.each_ref());
            return Ok(cast(y).expect("B is Flex"));
        }
        Err(inputs) => inputs,
    };
    let inputs = cast::<_, [FloatTensor<FlexTrain>; N]>(inputs)?;
    let (y, state) = forward(inputs.each_ref().map(|x| &x.primitive));
    let parents = inputs.map(|x| x.node);
    let y = match op
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(cast(y).expect("B is FlexTrain"))
}

/// The sum of `f` over `values` in eight interleaved partial sums, which vectorize: a
/// sequential sum waits out each addition's latency, and the bias gradient of the MNIST
/// convnet's first layer cost more that way than its weight gradient's GEMM.
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let blocks = values.chunks_exact(lanes.len());
    let tail: f32 = blocks.remainder().iter().map(|&v| f(v)).sum();
    for block in blocks {
        lanes
            .iter_mut()
            .zip(block)
            .for_each(|(lane, &v)| *lane += f(v));
    }
    lanes.iter().sum::<f32>() + tail
}

/// Whether `B` is flex, with or without autodiff.
fn on_flex<B: Backend>() -> bool {
    let id = TypeId::of::<B>();
    id == TypeId::of::<Flex>() || id == TypeId::of::<FlexTrain>()
}

/// A tensor's float primitive.
fn primitive<B: Backend, const D: usize>(x: Tensor<B, D>) -> B::FloatTensorPrimitive {
    x.into_primitive().tensor()
}

/// The tensor of a float primitive.
fn tensor<B: Backend, const D: usize>(x: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(x))
}

/// `len` values written in parallel tasks, each given a zeroed chunk of `chunk` values (the
/// last may be shorter), its index and its own `init()` scratch (shared by the tasks one
/// thread runs); also each task's result. Unlike `vec![0.0; len]`, which the calling thread
/// zeroes (or faults in) alone while the workers wait, the workers zero their own chunks,
/// which stay in cache for `write`. (Zeroing and Adam's fresh outputs kept the calling
/// thread busy alone for about a sixth of the MNIST convnet's training step.)
fn par_zeroed<S, R: Send>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    write: impl Fn(&mut S, usize, &mut [f32]) -> R + Sync + Send,
) -> (Vec<f32>, Vec<R>) {
    let mut values = Vec::<f32>::with_capacity(len);
    let results = values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .enumerate()
        .map_init(init, |scratch, (index, chunk)| {
            chunk.fill(MaybeUninit::new(0.0));
            // SAFETY: every element of `chunk` was initialized just above, and `f32` has
            // the layout of `MaybeUninit<f32>`.
            let chunk = unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) };
            write(scratch, index, chunk)
        })
        .collect();
    // SAFETY: the chunks cover `..len`, and each task initialized its chunk in full.
    unsafe { values.set_len(len) };
    (values, results)
}

/// A one-input layer on flex, as [`try_op`]. `x` comes back untouched unless `B` is flex,
/// with or without autodiff, and `x` is f32.
fn try_unary<B: Backend, const D: usize, O: Backward<Flex, 1>>(
    x: Tensor<B, D>,
    op: O,
    forward: impl FnOnce(&FlexTensor) -> (FlexTensor, O::State),
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    try_op::<B, O, 1>([primitive(x)], op, |[x]| forward(x))
        .map(tensor)
        .map_err(|[x]| tensor(x))
}
