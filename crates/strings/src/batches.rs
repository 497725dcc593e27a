//! The training batches a path method steps through: the landscape's loader, epoch after
//! epoch with each epoch's carry, exactly as `levelset_models::train` walks them.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::Landscape;
use levelset_models::prefetch::Epoch;

/// Steps between reads of the training loss on the GPU backends.
const LOSS_READ_EVERY: usize = 25;

/// Whether step `step` of `steps` reads its loss back to the host. A read makes the host wait
/// for the step's kernels: on the GPU backends the loss is read every [`LOSS_READ_EVERY`]
/// steps and at the last one, so a non-finite loss is reported at the first read after it;
/// the CPU backends, where a read costs nothing, read every step.
pub(crate) fn reads_loss(on_cpu: bool, step: usize, steps: usize) -> bool {
    on_cpu || (step + 1).is_multiple_of(LOSS_READ_EVERY) || step + 1 == steps
}

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
        for batch in Epoch::of(&loader, landscape.device()) {
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
