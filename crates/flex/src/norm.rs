//! The sum of a gradient's squares on flex, for the global gradient norm that SGD's clipping
//! computes every step: Burn's `powi_scalar(2).sum()` squares into a fresh tensor and sums it
//! on the calling thread alone, while the workers wait.

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

use super::{CHUNK, cast, lane_sum, values};

/// The sum of the squares of `x` when `B` is flex and `x` is f32 (on all threads, without
/// a tensor of squares); otherwise `x` back untouched.
pub fn try_square_sum<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, 1>, Tensor<B, D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = cast::<_, Tensor<Flex, D>>(x)?;
    let xs = x.into_primitive().tensor().to_contiguous();
    let partial: Vec<f32> = values(&xs)
        .par_chunks(CHUNK)
        .map(|chunk| lane_sum(chunk, |v| v * v))
        .collect();
    let sum = Tensor::<Flex, 1>::from_floats([partial.iter().sum::<f32>()], &Default::default());
    Ok(cast(sum).unwrap_or_else(|_| unreachable!("B is Flex")))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    #[test]
    fn square_sums_match_burns() {
        let device = Default::default();
        // Within one parallel chunk and across several, with a tail of lanes.
        for len in [13, 3 * CHUNK + 5] {
            let x = Tensor::<Flex, 2>::random([len, 3], Distribution::Normal(0.0, 2.0), &device);
            let ours = try_square_sum(x.clone()).unwrap_or_else(|_| panic!("flex"));
            let burns = x.powi_scalar(2).sum();
            ours.into_data()
                .assert_approx_eq::<f32>(&burns.into_data(), Tolerance::rel_abs(1e-5, 0.0));
        }
    }
}
