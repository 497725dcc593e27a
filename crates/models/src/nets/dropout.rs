//! Dropout with masks from the caller's seeded RNG. Burn's `Dropout` draws from the
//! process-global backend RNG, which breaks "same seed, same model" as soon as two trainings
//! run at once.

use burn::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Inverted dropout: zeroes each value with probability `p` and scales the rest by 1/(1-p).
pub fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    p: f64,
    rng: &mut ChaCha8Rng,
) -> Tensor<B, D> {
    if p <= 0.0 {
        return x;
    }
    let dims = x.dims();
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let mask: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_data(TensorData::new(mask, dims), &x.device());
    x * mask
}
