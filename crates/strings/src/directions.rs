//! Li et al.'s (2018) filter-normalized random directions, along which `levelset surface`
//! draws a model's neighbourhood: a Gaussian direction whose every filter is rescaled to the
//! norm of the model's filter in its place, so that the picture's scale follows the scale of
//! each filter (which a ReLU net's function does not depend on) instead of the raw weights.
//!
//! A filter is one output unit's slice of a weight tensor: a convolution's output channel
//! (the first axis of Burn's `[out, in, k, k]`) or a linear layer's output unit (a column of
//! Burn's `[in, out]`, the transpose of PyTorch's layout). Parameters of rank one (biases, a
//! normalization's scale and shift) are zero in the direction, Li et al.'s default
//! (`--xignore biasbn`).

use burn::module::Module;
use burn::prelude::*;
use levelset_data::standard_normal;
use levelset_models::flat::{flatten, param_shapes};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A direction at `model` drawn from `seed` (standard normal entries from a ChaCha8 stream:
/// the same seed gives the same direction on every backend), filter-normalized to `model`.
pub fn filter_normalized<B: Backend, M: Module<B>>(model: &M, seed: u64) -> Tensor<B, 1> {
    let flat = flatten(model);
    let device = flat.device();
    let weights: Vec<f32> = flat.into_data().to_vec().expect("f32 parameters");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut direction: Vec<f32> = (0..weights.len())
        .map(|_| standard_normal(&mut rng))
        .collect();
    normalize_filters(&mut direction, &weights, &param_shapes(model));
    let n = direction.len();
    Tensor::from_data(TensorData::new(direction, [n]), &device)
}

/// The entries of each filter of a parameter of shape `shape` whose entries start at
/// `offset` of the flat vector; none for a parameter of rank one or zero.
fn filters(shape: &[usize], offset: usize) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    match shape.len() {
        0 | 1 => Vec::new(),
        // [in, out]: output unit j is column j.
        2 => (0..shape[1])
            .map(|j| (0..shape[0]).map(|i| offset + i * shape[1] + j).collect())
            .collect(),
        _ => {
            let size = n / shape[0].max(1);
            (0..shape[0])
                .map(|f| (offset + f * size..offset + (f + 1) * size).collect())
                .collect()
        }
    }
}

/// Rescales every filter of `direction` to the norm of the same filter of `weights`, and
/// zeroes the parameters of rank one; `shapes` are the parameters' in flat order.
pub fn normalize_filters(direction: &mut [f32], weights: &[f32], shapes: &[Vec<usize>]) {
    assert_eq!(
        direction.len(),
        weights.len(),
        "a direction of the model's size"
    );
    let mut offset = 0;
    for shape in shapes {
        let n: usize = shape.iter().product();
        if shape.len() <= 1 {
            direction[offset..offset + n].fill(0.0);
        }
        for filter in filters(shape, offset) {
            let norm = |v: &[f32]| {
                filter
                    .iter()
                    .map(|&i| f64::from(v[i]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            // Li et al.'s `d * (w.norm() / (d.norm() + 1e-10))`.
            let ratio = norm(weights) / (norm(direction) + 1e-10);
            for &i in &filter {
                direction[i] = (f64::from(direction[i]) * ratio) as f32;
            }
        }
        offset += n;
    }
    assert_eq!(offset, direction.len(), "shapes that cover the flat vector");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_output_units() {
        // A linear [in 2, out 3]: columns.
        assert_eq!(
            filters(&[2, 3], 10),
            vec![vec![10, 13], vec![11, 14], vec![12, 15]]
        );
        // A convolution [out 2, in 1, 1, 2]: contiguous blocks.
        assert_eq!(filters(&[2, 1, 1, 2], 0), vec![vec![0, 1], vec![2, 3]]);
        assert!(filters(&[4], 0).is_empty());
    }
}
