//! levelset's own kernels for the flex backend, where Burn 0.21's are slow for the nets'
//! layers. Each `try_*` function takes a generic tensor and either computes the layer (when
//! the backend is flex, with or without autodiff) or hands the tensor back for Burn's
//! generic layer, so the nets stay backend-generic. Measured in
//! `experiments/bench/README.md`.

use std::any::Any;

use burn::backend::{Autodiff, Flex};

mod conv;
mod pool;
mod sigmoid;

pub(super) use conv::try_conv2d;
pub(super) use pool::try_relu_max_pool2d;
pub(super) use sigmoid::try_sigmoid;

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
