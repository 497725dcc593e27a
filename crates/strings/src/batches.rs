//! The training batches a path method steps through: the landscape's loader, epoch after
//! epoch with each epoch's carry, exactly as `levelset_models::train` walks them.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::Landscape;

/// Calls `step(k, batch, carry)` for `k = 0..steps`, stopping at the first error.
pub(crate) fn for_each_batch<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    seed: u64,
    steps: usize,
    mut step: impl FnMut(usize, L::Batch, &mut L::Carry) -> Result<(), String>,
) -> Result<(), String> {
    if steps == 0 {
        return Ok(());
    }
    let loader = landscape.loader(seed);
    let mut done = 0;
    for epoch in 0.. {
        let mut carry = landscape.carry(seed, epoch);
        let mut batches = 0;
        for batch in loader.iter() {
            batches += 1;
            step(done, batch, &mut carry)?;
            done += 1;
            if done == steps {
                return Ok(());
            }
        }
        if batches == 0 {
            return Err("the training data loader produced no batch".into());
        }
    }
    unreachable!("the epoch loop only ends by returning")
}

/// The values of `losses` (read back at once), or an error naming the step when one is not
/// finite.
pub(crate) fn finite_losses<B: Backend>(
    losses: Tensor<B, 1>,
    step: usize,
) -> Result<Vec<f64>, String> {
    let values: Vec<f64> = losses.into_data().iter::<f64>().collect();
    match values.iter().find(|v| !v.is_finite()) {
        None => Ok(values),
        Some(bad) => Err(format!(
            "the training loss became {bad} at step {step} (lower the learning rate)"
        )),
    }
}
