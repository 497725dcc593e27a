//! Layers of a [`Stacked`](crate::flat::Stacked) module: each layer's own parameters, reshaped
//! so that one call runs the layer of all `k` models.

use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::matmul_conv;
use super::rule::{LayerRule, layer_rule};

/// `k` linear layers, model `j` on `x[j]`; an input of batch size 1 is shared by all models.
/// [k | 1, n, d_in] -> [k, n, d_out]
pub fn linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>, k: usize) -> Tensor<B, 3> {
    let [rows, d_out] = layer.weight.dims();
    let [batch, n, d_in] = x.dims();
    // Burn's Linear weight is [d_in, d_out]; stacked it is [k * d_in, d_out].
    let weight = layer.weight.val().reshape([k, rows / k, d_out]);
    let x = if batch == k {
        x
    } else {
        x.expand([k, n, d_in])
    };
    let y = x.matmul(weight);
    match &layer.bias {
        Some(bias) => y + bias.val().reshape([k, 1, d_out]),
        None => y,
    }
}

/// `k` convolutions, model `j` reading channels `j * c_in .. (j + 1) * c_in`: one grouped
/// convolution, whose weight layout is the stacked one.
/// [b, k * c_in, h, w] -> [b, k * c_out, h', w']
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let mut grouped = conv.clone();
    grouped.groups *= k;
    match layer_rule::<B>(&x.device()) {
        LayerRule::Matmul => matmul_conv::conv2d(&grouped, x),
        LayerRule::Burn => grouped.forward(x),
    }
}
