//! The standard LSTM layer in matmul shape, written with Burn's tensor API: the input
//! projections of all time steps in one matmul, then one matmul per step for all four gates,
//! the gate arithmetic as elementwise ops the fusing backends merge into few kernels, and
//! backpropagation through time derived by autodiff. Burn's `Lstm` runs eight matmuls and a
//! `slice_assign` per step. Whether a backend uses it is decided in [`super::rule`].

use burn::nn::activation::Activation;
use burn::nn::{GateController, Lstm, LstmState};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, tanh};

/// Whether `layer` is the standard cell that [`lstm`] (and levelset-flex's kernel, which checks the same) compute: sigmoid
/// gates, tanh candidate and output, batch-first, forward in time, no clipping, no coupled
/// input and forget gates.
pub fn standard_cell<B: Backend>(layer: &Lstm<B>) -> bool {
    layer.batch_first
        && !layer.reverse
        && layer.clip.is_none()
        && !layer.input_forget
        && matches!(layer.gate_activation, Activation::Sigmoid(_))
        && matches!(layer.cell_activation, Activation::Tanh(_))
        && matches!(layer.hidden_activation, Activation::Tanh(_))
}

/// `layer.forward(x, state)` for a [`standard_cell`]: the outputs [b, s, h] on x [b, s, d] and
/// the final state; any other layer runs Burn's forward.
pub fn lstm<B: Backend>(
    layer: &Lstm<B>,
    x: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
) -> (Tensor<B, 3>, LstmState<B, 2>) {
    if !standard_cell(layer) {
        return layer.forward(x, state);
    }
    let [batch, steps, d_in] = x.dims();
    let h = layer.d_hidden;
    let device = x.device();
    // Gates in the order of the columns: the three sigmoid gates first, so that one sigmoid
    // covers them, then the candidate.
    let gates = [
        &layer.input_gate,
        &layer.forget_gate,
        &layer.output_gate,
        &layer.cell_gate,
    ];
    let input_weight = Tensor::cat(gates.map(|g| g.input_transform.weight.val()).to_vec(), 1); // [d, 4h]
    let hidden_weight = Tensor::cat(gates.map(|g| g.hidden_transform.weight.val()).to_vec(), 1); // [h, 4h]
    let projected = x.reshape([batch * steps, d_in]).matmul(input_weight);
    let projected = match combined_bias(&gates) {
        Some(bias) => projected + bias.unsqueeze::<2>(),
        None => projected,
    }
    .reshape([batch, steps, 4 * h]);

    let (mut cell, mut hidden) = match state {
        Some(state) => (state.cell, state.hidden),
        None => (
            Tensor::zeros([batch, h], &device),
            Tensor::zeros([batch, h], &device),
        ),
    };
    let mut outputs = Vec::with_capacity(steps);
    for t in 0..steps {
        let pre = projected
            .clone()
            .slice([0..batch, t..t + 1])
            .reshape([batch, 4 * h])
            + hidden.matmul(hidden_weight.clone());
        let gated = sigmoid(pre.clone().slice([0..batch, 0..3 * h]));
        let input = gated.clone().slice([0..batch, 0..h]);
        let forget = gated.clone().slice([0..batch, h..2 * h]);
        let output = gated.slice([0..batch, 2 * h..3 * h]);
        let candidate = tanh(pre.slice([0..batch, 3 * h..4 * h]));
        cell = forget * cell + input * candidate;
        hidden = output * tanh(cell.clone());
        outputs.push(hidden.clone());
    }
    let outputs = Tensor::stack(outputs, 1); // [b, s, h]
    (outputs, LstmState::new(cell, hidden))
}

/// The sum of each gate's input and hidden biases, gates side by side: [4h], or `None` when the
/// layer has no biases at all.
fn combined_bias<B: Backend>(gates: &[&GateController<B>; 4]) -> Option<Tensor<B, 1>> {
    let biases = gates.map(|g| (&g.input_transform.bias, &g.hidden_transform.bias));
    if biases.iter().all(|(a, b)| a.is_none() && b.is_none()) {
        return None;
    }
    let parts = gates
        .iter()
        .zip(biases)
        .map(|(gate, pair)| match pair {
            (Some(a), Some(b)) => a.val() + b.val(),
            (Some(a), None) => a.val(),
            (None, Some(b)) => b.val(),
            (None, None) => {
                let [_, h] = gate.hidden_transform.weight.dims();
                Tensor::zeros([h], &gate.hidden_transform.weight.device())
            }
        })
        .collect();
    Some(Tensor::cat(parts, 0))
}
