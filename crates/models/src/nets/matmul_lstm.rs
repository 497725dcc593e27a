//! The standard LSTM layer in matmul shape, written with Burn's tensor API: the input
//! projections of all time steps in one matmul, then one matmul per step for all four gates,
//! the gate arithmetic as elementwise ops the fusing backends merge into few kernels; on the
//! training backend the window is one autodiff op whose backpropagation through time is
//! written out. Burn's `Lstm` runs eight matmuls and a `slice_assign` per step. Whether a
//! backend uses it is decided in [`super::rule`].

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
    let [batch, steps, _] = x.dims();
    assert!(steps > 0, "an LSTM window has at least one step");
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
    let weights = Weights {
        input: Tensor::cat(gates.map(|g| g.input_transform.weight.val()).to_vec(), 1), // [d, 4h]
        hidden: Tensor::cat(gates.map(|g| g.hidden_transform.weight.val()).to_vec(), 1), // [h, 4h]
        bias: combined_bias(&gates),
    };
    let (cell, hidden) = match state {
        Some(state) => (state.cell, state.hidden),
        None => (
            Tensor::zeros([batch, h], &device),
            Tensor::zeros([batch, h], &device),
        ),
    };
    // [b, s + 1, h]: the outputs, then the final cell.
    let z = op::forward(x, weights, cell, hidden);
    let outputs = z.clone().slice([0..batch, 0..steps]);
    let cell = z.slice([0..batch, steps..steps + 1]).reshape([batch, h]);
    let hidden = outputs
        .clone()
        .slice([0..batch, steps - 1..steps])
        .reshape([batch, h]);
    (outputs, LstmState::new(cell, hidden))
}

/// A standard cell's parameters, gates side by side in columns: input, forget, output,
/// candidate.
struct Weights<B: Backend> {
    /// [d, 4h]
    input: Tensor<B, 2>,
    /// [h, 4h]
    hidden: Tensor<B, 2>,
    /// [4h], the input and hidden biases summed
    bias: Option<Tensor<B, 1>>,
}

/// One window's recurrence, with what its backward pass needs.
struct Window<B: Backend> {
    /// h_1 .. h_s, each [b, h]
    outputs: Vec<Tensor<B, 2>>,
    /// c_0 .. c_s
    cells: Vec<Tensor<B, 2>>,
    /// Each step's input, forget and output gates and candidate, after their activations.
    gates: Vec<[Tensor<B, 2>; 4]>,
}

impl<B: Backend> Window<B> {
    /// The input projections of all steps in one matmul, then one matmul per step for all four
    /// gates, from the initial `cell` and `hidden`.
    fn run(
        x: Tensor<B, 3>,
        weights: &Weights<B>,
        cell: Tensor<B, 2>,
        hidden: Tensor<B, 2>,
    ) -> Self {
        let [batch, steps, d_in] = x.dims();
        let [h, _] = weights.hidden.dims();
        let projected = x
            .reshape([batch * steps, d_in])
            .matmul(weights.input.clone());
        let projected = match &weights.bias {
            Some(bias) => projected + bias.clone().unsqueeze::<2>(),
            None => projected,
        }
        .reshape([batch, steps, 4 * h]);
        let mut window = Window {
            outputs: Vec::with_capacity(steps),
            cells: vec![cell],
            gates: Vec::with_capacity(steps),
        };
        let mut hidden = hidden;
        for t in 0..steps {
            let pre = projected
                .clone()
                .slice([0..batch, t..t + 1])
                .reshape([batch, 4 * h])
                + hidden.matmul(weights.hidden.clone());
            let gated = sigmoid(pre.clone().slice([0..batch, 0..3 * h]));
            let input = gated.clone().slice([0..batch, 0..h]);
            let forget = gated.clone().slice([0..batch, h..2 * h]);
            let output = gated.slice([0..batch, 2 * h..3 * h]);
            let candidate = tanh(pre.slice([0..batch, 3 * h..4 * h]));
            let previous = window.cells.last().expect("c_0 is there").clone();
            let cell = forget.clone() * previous + input.clone() * candidate.clone();
            hidden = output.clone() * tanh(cell.clone());
            window.cells.push(cell);
            window.outputs.push(hidden.clone());
            window.gates.push([input, forget, output, candidate]);
        }
        window
    }

    /// [b, s + 1, h]: the outputs, then the final cell.
    fn packed(&self) -> Tensor<B, 3> {
        let last = self.cells.last().expect("c_s is there").clone();
        Tensor::stack(
            self.outputs
                .iter()
                .cloned()
                .chain(std::iter::once(last))
                .collect(),
            1,
        )
    }
}

/// The window as one autodiff op on the training backend, with backpropagation through time
/// written out: per step one matmul and the gate arithmetic, then one matmul each for the
/// input, input-weight and hidden-weight gradients over all steps. Derived by autodiff, each
/// gate's slice of the step's matmul output costs a zero fill, a slice-assign and an add in
/// the backward pass (PTB: about 640 of its 1,011 backward launches per window on lavapipe).
/// Any other backend derives the backward from [`Window::run`]'s tensor ops.
#[cfg(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
))]
mod op {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::prelude::*;
    use burn::tensor::TensorPrimitive;
    use burn::tensor::activation::tanh;
    use burn::tensor::ops::FloatTensor;

    use super::{Weights, Window};
    use crate::backend::{Compute, Train};
    use crate::nets::cast::cast;

    pub fn forward<B: Backend>(
        x: Tensor<B, 3>,
        weights: Weights<B>,
        cell: Tensor<B, 2>,
        hidden: Tensor<B, 2>,
    ) -> Tensor<B, 3> {
        match cast::<
            _,
            (
                Tensor<Train, 3>,
                Weights<Train>,
                Tensor<Train, 2>,
                Tensor<Train, 2>,
            ),
        >((x, weights, cell, hidden))
        {
            Ok((x, weights, cell, hidden)) => {
                cast(tracked(x, weights, cell, hidden)).unwrap_or_else(|_| unreachable!())
            }
            Err((x, weights, cell, hidden)) => Window::run(x, &weights, cell, hidden).packed(),
        }
    }

    /// What the backward pass keeps: the input, the weights, and the window's gates, cells
    /// and the hidden states each step started from.
    #[derive(Debug, Clone)]
    struct Saved {
        x: FloatTensor<Compute>,
        input_weight: FloatTensor<Compute>,
        hidden_weight: FloatTensor<Compute>,
        gates: Vec<[FloatTensor<Compute>; 4]>,
        cells: Vec<FloatTensor<Compute>>,
        previous_hidden: Vec<FloatTensor<Compute>>,
    }

    fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
        t.into_primitive().tensor()
    }

    fn tensor<const D: usize>(t: FloatTensor<Compute>) -> Tensor<Compute, D> {
        Tensor::from_primitive(TensorPrimitive::Float(t))
    }

    fn tracked(
        x: Tensor<Train, 3>,
        weights: Weights<Train>,
        cell: Tensor<Train, 2>,
        hidden: Tensor<Train, 2>,
    ) -> Tensor<Train, 3> {
        let [_, h4] = weights.hidden.dims();
        let bias = weights
            .bias
            .unwrap_or_else(|| Tensor::zeros([h4], &x.device()));
        let inputs = [
            primitive(x),
            primitive(weights.input),
            primitive(weights.hidden),
            primitive(bias.unsqueeze::<2>()),
            primitive(cell),
            primitive(hidden),
        ];
        let inner = inputs.each_ref().map(|t| t.primitive.clone());
        let [x, input_weight, hidden_weight, bias, cell, hidden] = inner;
        let weights = Weights {
            input: tensor(input_weight.clone()),
            hidden: tensor(hidden_weight.clone()),
            bias: Some(tensor::<2>(bias).reshape([h4])),
        };
        let hidden = tensor::<2>(hidden);
        let window = Window::run(tensor(x.clone()), &weights, tensor(cell), hidden.clone());
        let y = primitive(window.packed());
        let steps = window.outputs.len();
        let saved = Saved {
            x,
            input_weight,
            hidden_weight,
            gates: window.gates.into_iter().map(|g| g.map(primitive)).collect(),
            cells: window.cells.into_iter().map(primitive).collect(),
            previous_hidden: std::iter::once(hidden)
                .chain(window.outputs.into_iter().take(steps - 1))
                .map(primitive)
                .collect(),
        };
        let y = match LstmWindow
            .prepare::<NoCheckpointing>(inputs.map(|t| t.node))
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Tensor::from_primitive(TensorPrimitive::Float(y))
    }

    #[derive(Debug)]
    struct LstmWindow;

    impl Backward<Compute, 6> for LstmWindow {
        type State = Saved;

        fn backward(self, ops: Ops<Saved, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [
                node_x,
                node_input_weight,
                node_hidden_weight,
                node_bias,
                node_cell,
                node_hidden,
            ] = ops.parents;
            let dz = tensor::<3>(grads.consume::<Compute>(&ops.node)); // [b, s + 1, h]
            let saved = ops.state;
            let [batch, steps_1, h] = dz.dims();
            let steps = steps_1 - 1;
            let hidden_weight = tensor::<2>(saved.hidden_weight);
            let hidden_weight_t = hidden_weight.transpose(); // [4h, h]
            let mut d_cell = dz
                .clone()
                .slice([0..batch, steps..steps + 1])
                .reshape([batch, h]);
            let mut d_hidden = Tensor::<Compute, 2>::zeros([batch, h], &dz.device());
            let mut d_pre = Vec::with_capacity(steps);
            for t in (0..steps).rev() {
                let [input, forget, output, candidate] = saved.gates[t].clone().map(tensor::<2>);
                let cell = tensor::<2>(saved.cells[t + 1].clone());
                let previous = tensor::<2>(saved.cells[t].clone());
                let tanh_cell = tanh(cell);
                let dh = dz.clone().slice([0..batch, t..t + 1]).reshape([batch, h]) + d_hidden;
                let dc = d_cell
                    + dh.clone() * output.clone() * (tanh_cell.clone().powi_scalar(2).neg() + 1.0);
                let sigmoid_grad = |gate: Tensor<Compute, 2>, d: Tensor<Compute, 2>| {
                    d * gate.clone() * (gate.neg() + 1.0)
                };
                let d_input = sigmoid_grad(input.clone(), dc.clone() * candidate.clone());
                let d_forget = sigmoid_grad(forget.clone(), dc.clone() * previous);
                let d_output = sigmoid_grad(output, dh * tanh_cell);
                let d_candidate = dc.clone() * input * (candidate.powi_scalar(2).neg() + 1.0);
                d_cell = dc * forget;
                let pre = Tensor::cat(vec![d_input, d_forget, d_output, d_candidate], 1); // [b, 4h]
                d_hidden = pre.clone().matmul(hidden_weight_t.clone());
                d_pre.push(pre);
            }
            d_pre.reverse();
            let d_pre = Tensor::stack::<3>(d_pre, 1).reshape([batch * steps, 4 * h]);
            let x = tensor::<3>(saved.x);
            let [_, _, d_in] = x.dims();
            if let Some(node) = node_x {
                let input_weight = tensor::<2>(saved.input_weight);
                let dx = d_pre
                    .clone()
                    .matmul(input_weight.transpose())
                    .reshape([batch, steps, d_in]);
                grads.register::<Compute>(node.id, primitive(dx));
            }
            if let Some(node) = node_input_weight {
                let rows = x.reshape([batch * steps, d_in]);
                grads.register::<Compute>(
                    node.id,
                    primitive(rows.transpose().matmul(d_pre.clone())),
                );
            }
            if let Some(node) = node_hidden_weight {
                let previous = Tensor::stack::<3>(
                    saved.previous_hidden.into_iter().map(tensor::<2>).collect(),
                    1,
                )
                .reshape([batch * steps, h]);
                grads.register::<Compute>(
                    node.id,
                    primitive(previous.transpose().matmul(d_pre.clone())),
                );
            }
            if let Some(node) = node_bias {
                grads.register::<Compute>(node.id, primitive(d_pre.sum_dim(0)));
            }
            if let Some(node) = node_cell {
                grads.register::<Compute>(node.id, primitive(d_cell));
            }
            if let Some(node) = node_hidden {
                grads.register::<Compute>(node.id, primitive(d_hidden));
            }
        }
    }
}

/// Without a backend there is no training backend to give an op of its own.
#[cfg(not(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
)))]
mod op {
    use burn::prelude::*;

    use super::{Weights, Window};

    pub fn forward<B: Backend>(
        x: Tensor<B, 3>,
        weights: Weights<B>,
        cell: Tensor<B, 2>,
        hidden: Tensor<B, 2>,
    ) -> Tensor<B, 3> {
        Window::run(x, &weights, cell, hidden).packed()
    }
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
