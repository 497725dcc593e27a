//! levelset's own kernels for the flex backend, where Burn 0.21's are slow for the nets'
//! layers. Each `try_*` function takes a generic tensor and either computes the layer (when
//! the backend is flex, with or without autodiff) or hands the tensor back for Burn's
//! generic layer, so the nets stay backend-generic. Measured in
//! `experiments/bench/README.md`.

use std::any::Any;
use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

mod adam;
mod conv;
mod linear;
mod lrn;
mod matrix;
mod pool;
mod sigmoid;

pub(crate) use adam::try_adam_step;
pub(crate) use conv::{try_conv2d, try_conv2d_relu, try_conv2d_relu_max_pool2d};
pub(crate) use linear::try_linear;
pub(crate) use lrn::try_lrn;
pub(crate) use pool::{try_max_pool2d, try_relu_max_pool2d};
pub(crate) use sigmoid::try_sigmoid;

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

/// A layer of input `x`, `weight` and `bias` on flex, as [`try_unary`] for one input:
/// `forward` gives the output and the extra state `op`'s backward pass needs (dropped
/// without autodiff). `x` comes back untouched unless `B` is flex, with or without
/// autodiff, and `x` is f32.
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
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = match cast::<Tensor<B, D>, Tensor<Flex, D>>(x) {
        Ok(x) => {
            let (x, weight, bias) = primitives(x, weight, bias);
            let (y, _) = forward(&x, &weight, &bias);
            let y = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(y));
            return Ok(cast(y).expect("B is Flex"));
        }
        Err(x) => x,
    };
    let x = cast::<Tensor<B, D>, Tensor<FlexTrain, D>>(x)?;
    let (x, weight, bias) = primitives(x, weight, bias);
    let (y, extra) = forward(&x.primitive, &weight.primitive, &bias.primitive);
    let parents = [x.node, weight.node, bias.node];
    let y = match op
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, weight.primitive, extra), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let y = Tensor::<FlexTrain, D>::from_primitive(TensorPrimitive::Float(y));
    Ok(cast(y).expect("B is FlexTrain"))
}

/// The float primitives of `x`, `weight` and `bias`, once `x` has shown that `B` is `C`.
fn primitives<B: Backend, C: Backend, const D: usize, const DW: usize>(
    x: Tensor<C, D>,
    weight: Tensor<B, DW>,
    bias: Tensor<B, 1>,
) -> (
    C::FloatTensorPrimitive,
    C::FloatTensorPrimitive,
    C::FloatTensorPrimitive,
) {
    let same = "B is the input's backend";
    let weight = cast::<_, Tensor<C, DW>>(weight).expect(same);
    let bias = cast::<_, Tensor<C, 1>>(bias).expect(same);
    (
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    )
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

/// A one-input layer on flex: `forward` gives the output and the state `op`'s backward pass
/// needs (dropped without autodiff). `x` comes back untouched unless `B` is flex, with or
/// without autodiff, and `x` is f32.
fn try_unary<B: Backend, const D: usize, O: Backward<Flex, 1>>(
    x: Tensor<B, D>,
    op: O,
    forward: impl FnOnce(FlexTensor) -> (FlexTensor, O::State),
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = match cast::<_, Tensor<Flex, D>>(x) {
        Ok(x) => {
            let (y, _) = forward(x.into_primitive().tensor());
            let y = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(y));
            return Ok(cast(y).expect("B is Flex"));
        }
        Err(x) => x,
    };
    let x = cast::<_, Tensor<FlexTrain, D>>(x)?
        .into_primitive()
        .tensor();
    let (y, state) = forward(x.primitive);
    let y = match op
        .prepare::<NoCheckpointing>([x.node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let y = Tensor::<FlexTrain, D>::from_primitive(TensorPrimitive::Float(y));
    Ok(cast(y).expect("B is FlexTrain"))
}
