//! Plain SGD's update on flex, in place and on all threads.
//!
//! Burn's step, `tensor - grad * lr`, is two passes into fresh tensors on the calling thread
//! alone, while the workers wait (profile in `experiments/bench/README.md`). Here
//! one pass on the workers updates the parameter in place, with Burn's arithmetic, so the
//! values are the same bit for bit (tested).

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use rayon::prelude::*;

use super::adam::contiguous;
use super::{CHUNK, cast, values};

/// A parameter and its gradient.
pub type SgdArgs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>);

/// `tensor - grad * lr` when `B` is flex and both tensors are f32; otherwise the arguments
/// back untouched.
pub fn try_sgd_step<B: Backend, const D: usize>(
    lr: f64,
    args: SgdArgs<B, D>,
) -> Result<Tensor<B, D>, SgdArgs<B, D>> {
    if args.0.dtype() != DType::F32 || args.1.dtype() != DType::F32 {
        return Err(args);
    }
    let (tensor, grad) = cast::<SgdArgs<B, D>, SgdArgs<Flex, D>>(args)?;
    let g = grad.into_primitive().tensor().to_contiguous();
    let mut p = contiguous(tensor.into_primitive().tensor());
    let lr = lr as f32;
    let update = |p: &mut [f32], g: &[f32]| p.iter_mut().zip(g).for_each(|(p, g)| *p -= g * lr);
    let ps = p.storage_mut::<f32>();
    if ps.len() <= CHUNK {
        update(ps, values(&g));
    } else {
        ps.par_chunks_mut(CHUNK)
            .zip(values(&g).par_chunks(CHUNK))
            .for_each(|(p, g)| update(p, g));
    }
    let p = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(p));
    Ok(cast(p).unwrap_or_else(|_| unreachable!("B is Flex")))
}

#[cfg(test)]
mod tests {
    use burn::optim::{SgdConfig, SimpleOptimizer};
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn matches_burns_sgd_bit_for_bit() {
        let device = Default::default();
        // Past one parallel chunk, and a lone short one.
        for len in [CHUNK * 3 + 5, 7] {
            let random =
                || Tensor::<Flex, 1>::random([len], Distribution::Normal(0.0, 1.0), &device);
            let (p, g) = (random(), random());
            let sgd = SgdConfig::new().build::<Flex>();
            let (burns, _) = sgd.step(0.37, p.clone(), g.clone(), None);
            let ours = try_sgd_step(0.37, (p.clone(), g)).unwrap_or_else(|_| panic!("flex"));
            assert_eq!(ours.into_data(), burns.into_data());
        }
    }

    #[test]
    fn a_shared_parameter_is_copied_not_overwritten() {
        let device = Default::default();
        let p = Tensor::<Flex, 1>::from_floats([1.0, 2.0], &device);
        let g = Tensor::<Flex, 1>::from_floats([1.0, 1.0], &device);
        let stepped = try_sgd_step(0.5, (p.clone(), g)).unwrap_or_else(|_| panic!("flex"));
        assert_eq!(stepped.into_data().to_vec::<f32>().unwrap(), [0.5, 1.5]);
        assert_eq!(p.into_data().to_vec::<f32>().unwrap(), [1.0, 2.0]);
    }
}
