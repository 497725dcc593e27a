//! Batch normalization on flex, per channel over contiguous planes.
//!
//! The generic layer (levelset-models' `nets::described::norm`) reduces a transposed copy and
//! broadcasts `[1, c, 1, 1]` statistics, scale and shift over `[n, c, h, w]`, each a strided
//! walk that flex takes one index at a time (BURN-NOTES 8.6: most of a ResNet-20 step). Here
//! each channel's statistics are two passes over its `n` planes, and the output one pass.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::{DType, TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{cast, lane_sum, primitive, tensor, try_op, values};

/// Batch statistics of one batch normalization: the output, and each channel's mean and
/// biased variance over the batch.
pub type Normalized<B, const D: usize> = (Tensor<B, D>, Vec<f32>, Vec<f32>);

/// `(x - mean) / sqrt(var + epsilon) * gamma + beta` of `x` [n, c, ...] with each channel's
/// mean and biased variance over the batch (training mode), differentiable in all three
/// inputs, when `B` is flex, with or without autodiff, and the tensors are f32; otherwise the
/// inputs back untouched.
#[allow(clippy::type_complexity)]
pub fn try_batch_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<Normalized<B, D>, (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>)> {
    let mut statistics = None;
    let inputs = [primitive(x), primitive(gamma), primitive(beta)];
    let y = try_op::<B, _, 3>(inputs, BatchNormBackward, |[x, gamma, beta]| {
        let x = x.to_contiguous();
        let planes = Planes::of(&x);
        let xs = values(&x);
        let (gamma, beta) = (gamma.to_contiguous(), beta.to_contiguous());
        let (mean, var) = planes.statistics(xs);
        let inv_std: Vec<f32> = var
            .iter()
            .map(|v| 1.0 / (v + epsilon as f32).sqrt())
            .collect();
        let (g, b) = (values(&gamma), values(&beta));
        let scale: Vec<f32> = (0..planes.c).map(|c| inv_std[c] * g[c]).collect();
        let shift: Vec<f32> = (0..planes.c).map(|c| b[c] - mean[c] * scale[c]).collect();
        let y = planes.affine(xs, &scale, &shift);
        statistics = Some((mean.clone(), var));
        let state = (x.clone(), gamma.clone(), mean, inv_std);
        (FlexTensor::from_data(TensorData::new(y, x.shape())), state)
    });
    match y {
        Ok(y) => {
            let (mean, var) = statistics.expect("the forward ran");
            Ok((tensor(y), mean, var))
        }
        Err([x, gamma, beta]) => Err((tensor(x), tensor(gamma), tensor(beta))),
    }
}

/// `x * scale + shift` per channel of `x` [n, c, ...] (batch normalization with fixed
/// statistics, folded into a scale and a shift) when `B` is flex without autodiff and `x` is
/// f32; otherwise `x` back untouched.
pub fn try_channel_affine<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if x.dtype() != DType::F32 || scale.dtype() != DType::F32 || shift.dtype() != DType::F32 {
        return Err(x);
    }
    let x = cast::<_, Tensor<Flex, D>>(x)?;
    let host = |t: Tensor<B, 1>| {
        let t = cast::<_, Tensor<Flex, 1>>(t).unwrap_or_else(|_| unreachable!("B is Flex"));
        values(&t.into_primitive().tensor().to_contiguous()).to_vec()
    };
    let (scale, shift) = (host(scale), host(shift));
    let xs = x.into_primitive().tensor().to_contiguous();
    let planes = Planes::of(&xs);
    assert_eq!(planes.c, scale.len(), "a scale per channel");
    let y = planes.affine(values(&xs), &scale, &shift);
    let y = Tensor::<Flex, D>::from_data(TensorData::new(y, xs.shape()), &Default::default());
    Ok(cast(y).unwrap_or_else(|_| unreachable!("B is Flex")))
}

/// The planes of a contiguous `[n, c, ...]` tensor: `n * c` of `len` values, channel `k % c`
/// in plane `k`.
#[derive(Debug, Clone, Copy)]
struct Planes {
    n: usize,
    c: usize,
    len: usize,
}

impl Planes {
    fn of(x: &FlexTensor) -> Self {
        let dims = x.shape().to_vec();
        let (n, c) = (dims[0], dims[1]);
        Planes {
            n,
            c,
            len: dims[2..].iter().product(),
        }
    }

    /// Channel `c`'s planes, image by image.
    fn channel<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.n).map(move |i| &values[(i * self.c + c) * self.len..][..self.len])
    }

    /// Elements per channel.
    fn count(&self) -> f32 {
        (self.n * self.len) as f32
    }

    /// Each channel's mean and biased variance (the mean of squared deviations).
    fn statistics(&self, xs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        (0..self.c)
            .into_par_iter()
            .map(|c| {
                let sum: f32 = self.channel(xs, c).map(|p| lane_sum(p, |v| v)).sum();
                let mean = sum / self.count();
                let squares: f32 = self
                    .channel(xs, c)
                    .map(|p| lane_sum(p, |v| (v - mean) * (v - mean)))
                    .sum();
                (mean, squares / self.count())
            })
            .unzip()
    }

    /// `x * scale[c] + shift[c]` plane by plane.
    fn affine(&self, xs: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; xs.len()];
        y.par_chunks_mut(self.len)
            .zip(xs.par_chunks(self.len))
            .enumerate()
            .for_each(|(k, (y, x))| {
                let (a, b) = (scale[k % self.c], shift[k % self.c]);
                for (y, x) in y.iter_mut().zip(x) {
                    *y = x * a + b;
                }
            });
        y
    }
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    /// The input, the scale, each channel's batch mean and `1 / sqrt(var + epsilon)`.
    type State = (FlexTensor, FlexTensor, Vec<f32>, Vec<f32>);

    /// With `xhat = (x - mean) * inv_std`: `dbeta = sum g`, `dgamma = sum g * xhat`, and
    /// `dx = gamma * inv_std / m * (m * g - dbeta - xhat * dgamma)` over a channel's `m`
    /// elements.
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x, gamma, mean, inv_std) = ops.state;
        let planes = Planes::of(&x);
        let (xs, gs, gamma) = (values(&x), values(&grad), values(&gamma));
        let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..planes.c)
            .into_par_iter()
            .map(|c| {
                let (m, s) = (mean[c], inv_std[c]);
                let dbeta: f32 = planes.channel(gs, c).map(|p| lane_sum(p, |v| v)).sum();
                let dgamma: f32 = planes
                    .channel(gs, c)
                    .zip(planes.channel(xs, c))
                    .map(|(g, x)| g.iter().zip(x).map(|(g, x)| g * (x - m) * s).sum::<f32>())
                    .sum();
                (dbeta, dgamma)
            })
            .unzip();
        if let Some(node) = node_x {
            let count = planes.count();
            let mut dx = vec![0f32; xs.len()];
            dx.par_chunks_mut(planes.len)
                .zip(xs.par_chunks(planes.len).zip(gs.par_chunks(planes.len)))
                .enumerate()
                .for_each(|(k, (dx, (x, g)))| {
                    let c = k % planes.c;
                    let (m, s) = (mean[c], inv_std[c]);
                    let factor = gamma[c] * s / count;
                    for ((dx, x), g) in dx.iter_mut().zip(x).zip(g) {
                        let xhat = (x - m) * s;
                        *dx = factor * (count * g - dbeta[c] - xhat * dgamma[c]);
                    }
                });
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(dx, x.shape())),
            );
        }
        if let Some(node) = node_gamma {
            let dgamma = TensorData::new(dgamma, [planes.c]);
            grads.register::<Flex>(node.id, FlexTensor::from_data(dgamma));
        }
        if let Some(node) = node_beta {
            let dbeta = TensorData::new(dbeta, [planes.c]);
            grads.register::<Flex>(node.id, FlexTensor::from_data(dbeta));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::super::FlexTrain;
    use super::*;

    /// Burn's `BatchNorm` in training mode (its forward on an autodiff backend) and ours give
    /// the same outputs and the same gradients for the input, the scale and the shift.
    #[test]
    fn equals_burns_batch_norm_in_training_mode() {
        let device = Default::default();
        for dims in [[4, 3, 5, 6], [2, 5, 1, 1], [8, 2, 3, 3]] {
            let mut bn = BatchNormConfig::new(dims[1]).init::<FlexTrain>(&device);
            bn.gamma = bn.gamma.map(|g| {
                Tensor::random(g.dims(), Distribution::Normal(1.0, 0.5), &device).require_grad()
            });
            bn.beta = bn.beta.map(|b| {
                Tensor::random(b.dims(), Distribution::Normal(0.0, 0.5), &device).require_grad()
            });
            let x = Tensor::<Flex, 4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
            let projection = Tensor::<Flex, 4>::random(dims, Distribution::Default, &device);
            let run = |ours: bool| {
                let x = Tensor::<FlexTrain, 4>::from_inner(x.clone()).require_grad();
                let y = if ours {
                    let (y, _, _) = try_batch_norm(x.clone(), bn.gamma.val(), bn.beta.val(), 1e-5)
                        .unwrap_or_else(|_| panic!("flex"));
                    y
                } else {
                    bn.forward(x.clone())
                };
                let p = Tensor::<FlexTrain, 4>::from_inner(projection.clone());
                let grads = (y.clone() * p).sum().backward();
                (
                    y.inner().into_data(),
                    x.grad(&grads).unwrap().into_data(),
                    bn.gamma.val().grad(&grads).unwrap().into_data(),
                    bn.beta.val().grad(&grads).unwrap().into_data(),
                )
            };
            let (ours, burns) = (run(true), run(false));
            let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
            ours.0.assert_approx_eq::<f32>(&burns.0, tolerance);
            ours.1.assert_approx_eq::<f32>(&burns.1, tolerance);
            ours.2.assert_approx_eq::<f32>(&burns.2, tolerance);
            ours.3.assert_approx_eq::<f32>(&burns.3, tolerance);
        }
    }

    /// The batch statistics it returns are the input's, and without autodiff the output is
    /// the same.
    #[test]
    fn returns_the_batch_statistics() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::random([3, 2, 4, 4], Distribution::Normal(1.0, 3.0), &device);
        let (gamma, beta) = (Tensor::ones([2], &device), Tensor::zeros([2], &device));
        let (y, mean, var) =
            try_batch_norm(x.clone(), gamma, beta, 1e-5).unwrap_or_else(|_| panic!("flex"));
        let rows = x.swap_dims(0, 1).reshape([2, 48]);
        let want_mean = rows.clone().mean_dim(1);
        let want_var = (rows.clone() - want_mean.clone())
            .powi_scalar(2)
            .mean_dim(1);
        TensorData::new(mean, [2]).assert_approx_eq::<f32>(
            &want_mean.reshape([2]).into_data(),
            Tolerance::rel_abs(1e-5, 1e-6),
        );
        TensorData::new(var, [2]).assert_approx_eq::<f32>(
            &want_var.reshape([2]).into_data(),
            Tolerance::rel_abs(1e-5, 1e-6),
        );
        let scaled = y.swap_dims(0, 1).reshape([2, 48]);
        let (m, v) = (
            scaled.clone().mean_dim(1),
            (scaled.clone()).powi_scalar(2).mean_dim(1),
        );
        m.into_data().assert_approx_eq::<f32>(
            &TensorData::new(vec![0f32; 2], [2, 1]),
            Tolerance::absolute(1e-5),
        );
        v.into_data().assert_approx_eq::<f32>(
            &TensorData::new(vec![1f32; 2], [2, 1]),
            Tolerance::absolute(1e-4),
        );
    }

    #[test]
    fn channel_affine_scales_and_shifts_each_channel() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::random([2, 3, 2, 2], Distribution::Default, &device);
        let s = Tensor::<Flex, 1>::from_floats([2.0, -1.0, 0.5], &device);
        let b = Tensor::<Flex, 1>::from_floats([0.1, 0.2, 0.3], &device);
        let y =
            try_channel_affine(x.clone(), s.clone(), b.clone()).unwrap_or_else(|_| panic!("flex"));
        let (s, b) = (s.reshape([1, 3, 1, 1]), b.reshape([1, 3, 1, 1]));
        y.into_data()
            .assert_approx_eq::<f32>(&(x * s + b).into_data(), Tolerance::rel_abs(1e-6, 1e-6));
        // Not flex without autodiff: handed back.
        let t = Tensor::<FlexTrain, 4>::zeros([1, 3, 1, 1], &device);
        let ones = Tensor::<FlexTrain, 1>::ones([3], &device);
        assert!(try_channel_affine(t, ones.clone(), ones).is_err());
    }
}
