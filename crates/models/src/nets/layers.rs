//! Layer operations of the nets that flex runs with levelset's own kernels (`crate::kernels`);
//! every other backend runs Burn's layers or their matmul forms, as `super::rule` decides.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, Lstm, LstmState};
use burn::prelude::*;

use super::rule::{LayerRule, layer_rule};
use super::{matmul_conv, matmul_lstm};

/// `conv.forward(x)`.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let x = match crate::kernels::try_conv2d(conv, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    match layer_rule::<B>(&x.device()) {
        LayerRule::Matmul => matmul_conv::conv2d(conv, x),
        LayerRule::Burn => conv.forward(x),
    }
}

/// `layer.forward(x)`.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let x = match crate::kernels::try_linear(layer, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    layer.forward(x)
}

/// `relu(conv.forward(x))`.
pub fn conv2d_relu<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let x = match crate::kernels::try_conv2d_relu(conv, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    burn::tensor::activation::relu(conv2d(conv, x))
}

/// `pool.forward(x)`.
pub fn max_pool2d<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let x = match crate::kernels::try_max_pool2d(pool, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    pool.forward(x)
}

/// `pool.forward(relu(x))`.
pub fn relu_max_pool2d<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let x = match crate::kernels::try_relu_max_pool2d(pool, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    pool.forward(burn::tensor::activation::relu(x))
}

/// `pool.forward(relu(conv.forward(x)))`.
pub fn conv2d_relu_max_pool2d<B: Backend>(
    conv: &Conv2d<B>,
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let x = match crate::kernels::try_conv2d_relu_max_pool2d(conv, pool, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    max_pool2d(pool, conv2d_relu(conv, x))
}

/// `layer.forward(x, state)`: the outputs [b, s, h] of an LSTM layer on x [b, s, d], and its
/// final state.
pub fn lstm<B: Backend>(
    layer: &Lstm<B>,
    x: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
) -> (Tensor<B, 3>, LstmState<B, 2>) {
    let (x, state) = match crate::kernels::try_lstm(layer, x, state) {
        Ok(y) => return y,
        Err(x) => x,
    };
    match layer_rule::<B>(&x.device()) {
        LayerRule::Matmul => matmul_lstm::lstm(layer, x, state),
        LayerRule::Burn => layer.forward(x, state),
    }
}

/// The logistic function.
pub fn sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = match crate::kernels::try_sigmoid(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    burn::tensor::activation::sigmoid(x)
}
