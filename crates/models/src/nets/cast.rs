//! Moving a value between types that are the same type: how a generic layer hands its tensors
//! to the training backend's own autodiff op when `B` is that backend.

use std::any::Any;

/// `value` as type `U` when `T` is `U`, else `value` back.
pub(super) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(target) => Ok(target.take().expect("slot filled above")),
        None => Err(slot.expect("slot untouched")),
    }
}
