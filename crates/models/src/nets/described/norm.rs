//! Batch normalization as a landscape needs it: the scale and shift are coordinates of the
//! landscape, the running statistics are not (the flat vector skips them, see
//! `crate::flat`), and which statistics an evaluation uses is the caller's choice
//! ([`NormMode`]), not a property of the backend as in Burn's `BatchNorm`, whose forward is
//! in training mode on every autodiff backend (BURN-NOTES 8.1).

use burn::module::{Param, RunningState};
use burn::prelude::*;

use crate::kernels;

/// Which statistics a batch normalization layer normalizes with, and what it records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormMode {
    /// Training: each batch's own statistics, and the running statistics move towards them
    /// by the layer's momentum (PyTorch's `train()` mode).
    Train,
    /// Evaluation with the running statistics (PyTorch's `eval()` mode).
    Running,
    /// Evaluation with each batch's own statistics, recording nothing.
    Batch,
    /// The statistics pass: each batch's own statistics, and the running statistics become
    /// the cumulative average over the batches seen so far; `batch` counts from 0 (PyTorch's
    /// `momentum=None`, as in `torch.optim.swa_utils.update_bn`).
    Accumulate { batch: usize },
}

/// A batch normalization layer over the channels (dimension 1) of its input: `[n, c, h, w]`
/// images or `[n, c]` features.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// The learned scale, absent without `affine`.
    pub gamma: Option<Param<Tensor<B, 1>>>,
    /// The learned shift, absent without `affine`.
    pub beta: Option<Param<Tensor<B, 1>>>,
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// The running variance, updated with the unbiased batch variance as PyTorch does (the
    /// batch is normalized by the biased one).
    pub running_var: RunningState<Tensor<B, 1>>,
    pub momentum: f64,
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm<B> {
    /// A layer over `channels` with PyTorch's initial values: scale 1, shift 0, running mean
    /// 0 and variance 1.
    pub fn new(
        channels: usize,
        momentum: f64,
        epsilon: f64,
        affine: bool,
        device: &B::Device,
    ) -> Self {
        let param = |value: f32| Param::from_tensor(Tensor::full([channels], value, device));
        Self {
            gamma: affine.then(|| param(1.0)),
            beta: affine.then(|| param(0.0)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum,
            epsilon,
        }
    }

    /// The same layer with running statistics of its own, reset to mean 0 and variance 1.
    /// A cloned or mapped module shares its running statistics with the original (Burn's
    /// `RunningState` is one value behind an `Arc`), so every statistics pass starts here.
    pub fn with_fresh_statistics(mut self) -> Self {
        let device = self.running_mean.value().device();
        let channels = self.running_mean.value().dims()[0];
        self.running_mean = RunningState::new(Tensor::zeros([channels], &device));
        self.running_var = RunningState::new(Tensor::ones([channels], &device));
        self
    }

    /// The same layer with these running statistics (each `[channels]`).
    pub fn with_statistics(mut self, mean: Tensor<B, 1>, var: Tensor<B, 1>) -> Self {
        self.running_mean = RunningState::new(mean);
        self.running_var = RunningState::new(var);
        self
    }

    /// The running statistics, pending updates applied: (mean, variance).
    pub fn statistics(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        (
            self.running_mean.value_sync(),
            self.running_var.value_sync(),
        )
    }

    /// Normalizes `x` [n, c, ...] per channel as `mode` says.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, mode: NormMode) -> Tensor<B, D> {
        let momentum = match mode {
            NormMode::Running => return self.forward_running(x),
            NormMode::Train => Some(self.momentum),
            NormMode::Accumulate { batch } => Some(1.0 / (batch + 1) as f64),
            NormMode::Batch => None,
        };
        let dims = x.dims();
        let channels = dims[1];
        let device = x.device();
        let (gamma, beta) = self.scale_and_shift(channels, &device);
        let (y, mean, var) = match kernels::try_batch_norm(x, gamma, beta, self.epsilon) {
            Ok((y, mean, var)) => {
                let host = |v: Vec<f32>| Tensor::<B, 1>::from_floats(v.as_slice(), &device);
                (y, host(mean), host(var))
            }
            Err((x, gamma, beta)) => {
                let (mean, var) = batch_statistics(x.clone());
                let mut shape = [1; D];
                shape[1] = channels;
                let y = (x - mean.clone().reshape(shape))
                    / var.clone().add_scalar(self.epsilon).sqrt().reshape(shape)
                    * gamma.reshape(shape)
                    + beta.reshape(shape);
                (y, mean, var)
            }
        };
        if let Some(m) = momentum {
            let count = dims.iter().product::<usize>() / channels;
            // PyTorch records the unbiased variance (it normalizes by the biased).
            let unbiased = count as f64 / (count.max(2) - 1) as f64;
            let (running_mean, running_var) = self.statistics();
            self.running_mean
                .update(running_mean.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m));
            self.running_var
                .update(running_var.mul_scalar(1.0 - m) + var.detach().mul_scalar(m * unbiased));
        }
        y
    }

    /// Evaluation with the running statistics: one scale and shift per channel.
    fn forward_running<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let channels = x.dims()[1];
        let device = x.device();
        let (mean, var) = self.statistics();
        let (gamma, beta) = self.scale_and_shift(channels, &device);
        let scale = gamma / var.add_scalar(self.epsilon).sqrt();
        let shift = beta - mean * scale.clone();
        let x = match kernels::try_channel_affine(x, scale.clone(), shift.clone()) {
            Ok(y) => return y,
            Err(x) => x,
        };
        let mut shape = [1; D];
        shape[1] = channels;
        x * scale.reshape(shape) + shift.reshape(shape)
    }

    /// The learned scale and shift, or 1 and 0 without `affine`.
    fn scale_and_shift(&self, channels: usize, device: &B::Device) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let gamma = match &self.gamma {
            Some(gamma) => gamma.val(),
            None => Tensor::ones([channels], device),
        };
        let beta = match &self.beta {
            Some(beta) => beta.val(),
            None => Tensor::zeros([channels], device),
        };
        (gamma, beta)
    }
}

/// Per-channel mean and biased variance of `x` [n, c, ...], each `[c]`.
fn batch_statistics<B: Backend, const D: usize>(x: Tensor<B, D>) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let dims = x.dims();
    let channels = dims[1];
    let count = dims.iter().product::<usize>() / channels;
    let rows = x.swap_dims(0, 1).reshape([channels, count]);
    let mean = rows.clone().mean_dim(1);
    let var = (rows - mean.clone()).powi_scalar(2).mean_dim(1);
    (mean.reshape([channels]), var.reshape([channels]))
}
