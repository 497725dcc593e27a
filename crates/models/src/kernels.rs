//! The one place levelset-models calls levelset-flex, the CPU kernels: each `try_*` computes
//! its operation with flex's kernel where it applies (the flex backend, f32 tensors, the
//! shapes the kernel handles) and otherwise hands its input back, as the kernels do. Without
//! the `flex` feature every one hands its input back, so callers carry no feature switches,
//! and dropping the kernels is one dependency line.

#![cfg_attr(not(feature = "flex"), allow(unused_variables))]

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, Lstm, LstmState};
use burn::optim::AdamState;
use burn::prelude::*;

/// An LSTM layer's input and initial state.
pub type LstmInput<B> = (Tensor<B, 3>, Option<LstmState<B, 2>>);
/// An LSTM layer's output and final state.
pub type LstmOutput<B> = (Tensor<B, 3>, LstmState<B, 2>);
/// A parameter, its gradient and its Adam state.
pub type AdamArgs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Option<AdamState<B, D>>);
/// Logits [n, classes] and class ids [n].
pub type Classified<B> = (Tensor<B, 2>, Tensor<B, 1, Int>);
/// A parameter and its Adam state after a step.
pub type AdamStep<B, const D: usize> = (Tensor<B, D>, Option<AdamState<B, D>>);

/// Batch normalization of `x` [n, c, ...] with its batch's statistics, and each channel's
/// batch mean and biased variance.
#[allow(clippy::type_complexity)]
pub fn try_batch_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<(Tensor<B, D>, Vec<f32>, Vec<f32>), (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>)> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_batch_norm(x, gamma, beta, epsilon);
    #[cfg(not(feature = "flex"))]
    Err((x, gamma, beta))
}

/// `x * scale + shift` per channel of `x` [n, c, ...], without autodiff.
pub fn try_channel_affine<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_channel_affine(x, scale, shift);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `conv.forward(x)`.
pub fn try_conv2d<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_conv2d(conv, x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `relu(conv.forward(x))`.
pub fn try_conv2d_relu<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_conv2d_relu(conv, x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `pool.forward(relu(conv.forward(x)))`.
pub fn try_conv2d_relu_max_pool2d<B: Backend>(
    conv: &Conv2d<B>,
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_conv2d_relu_max_pool2d(conv, pool, x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `layer.forward(x)`.
pub fn try_linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_linear(layer, x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `pool.forward(x)`.
pub fn try_max_pool2d<B: Backend>(
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_max_pool2d(pool, x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `pool.forward(relu(x))`.
pub fn try_relu_max_pool2d<B: Backend>(
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_relu_max_pool2d(pool, x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// `layer.forward(x, state)`.
pub fn try_lstm<B: Backend>(
    layer: &Lstm<B>,
    x: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
) -> Result<LstmOutput<B>, LstmInput<B>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_lstm(layer, x, state);
    #[cfg(not(feature = "flex"))]
    Err((x, state))
}

/// The logistic function.
pub fn try_sigmoid<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_sigmoid(x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// Local response normalization of `x` [b, c, h, w] over `2 * depth_radius + 1` channels
/// (`nets::lrn::Lrn`, whose fields these are: plain numbers, so that this module names no
/// other of the crate's).
pub fn try_lrn<B: Backend>(
    depth_radius: usize,
    [bias, alpha, beta]: [f64; 3],
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_lrn(
        &levelset_flex::LrnWindow {
            depth_radius,
            bias,
            alpha,
            beta,
        },
        x,
    );
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// Mean cross-entropy of `logits` [n, classes] against class ids `labels` [n].
pub fn try_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> Result<Tensor<B, 1>, Classified<B>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_cross_entropy(logits, labels);
    #[cfg(not(feature = "flex"))]
    Err((logits, labels))
}

/// The sum of the squares of `x`'s values.
pub fn try_square_sum<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, 1>, Tensor<B, D>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_square_sum(x);
    #[cfg(not(feature = "flex"))]
    Err(x)
}

/// Plain SGD's step, `tensor - grad * lr`.
pub fn try_sgd_step<B: Backend, const D: usize>(
    lr: f64,
    args: (Tensor<B, D>, Tensor<B, D>),
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_sgd_step(lr, args);
    #[cfg(not(feature = "flex"))]
    Err(args)
}

/// Adam's step with the constants `[beta_1, beta_2, epsilon]` (`optim::AdamHyper`'s).
pub fn try_adam_step<B: Backend, const D: usize>(
    [beta_1, beta_2, epsilon]: [f32; 3],
    lr: f64,
    args: AdamArgs<B, D>,
) -> Result<AdamStep<B, D>, AdamArgs<B, D>> {
    #[cfg(feature = "flex")]
    return levelset_flex::try_adam_step(
        &levelset_flex::AdamConstants {
            beta_1,
            beta_2,
            epsilon,
        },
        lr,
        args,
    );
    #[cfg(not(feature = "flex"))]
    Err(args)
}
