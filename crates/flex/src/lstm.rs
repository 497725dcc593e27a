//! LSTM layers on flex: one autodiff op per layer and window.
//!
//! Burn's `Lstm` runs each time step as eight small matmuls and about fifteen elementwise
//! ops, every one its own autodiff node and all on the calling thread. In a profile of the
//! PTB model's training step, the calling thread spent about half of all samples in the two
//! layers' forward and backward passes while the workers waited. Here the input projections
//! of all steps are one GEMM on all threads; each step is one small GEMM for its recurrent
//! part and one pass of gate arithmetic; and backpropagation through time runs in one pass,
//! whose weight and input gradients are again GEMMs over all steps at once.
//!
//! Gates are laid out [input, forget, output, candidate] along the columns of the
//! concatenated weights, and the activations are kept time-major ([step, batch, ..]), so that
//! each step's rows are contiguous.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::activation::Activation;
use burn::nn::{GateController, Lstm, LstmState};
use burn::prelude::*;
use burn::tensor::{DType, TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::matrix::{Matrix, column_sums, gemm, product, swap_outer};
use super::sigmoid::{map_lanes, sigmoid8, tanh8};
use super::{on_flex, primitive, tensor, try_op, values};

/// An LSTM layer's input and initial state.
type Input<B> = (Tensor<B, 3>, Option<LstmState<B, 2>>);

/// An LSTM layer's output and final state.
type Output<B> = (Tensor<B, 3>, LstmState<B, 2>);

/// `layer.forward(x, state)` when `B` is flex, with or without autodiff, the tensors are
/// f32, the window has a step and the layer is the `standard_cell` with biases; otherwise
/// `x` and `state` back (a missing state as zeros).
pub fn try_lstm<B: Backend>(
    layer: &Lstm<B>,
    x: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
) -> Result<Output<B>, Input<B>> {
    let [b, s, _] = x.dims();
    let gates = [
        &layer.input_gate,
        &layer.forget_gate,
        &layer.output_gate,
        &layer.cell_gate,
    ];
    let biased = gates.iter().all(|gate| {
        let linears = [&gate.input_transform, &gate.hidden_transform];
        linears.iter().all(|linear| linear.bias.is_some())
    });
    if s == 0 || x.dtype() != DType::F32 || !biased || !standard_cell(layer) || !on_flex::<B>() {
        return Err((x, state));
    }
    let weights = |part: fn(&GateController<B>) -> &burn::nn::Linear<B>| {
        Tensor::cat(gates.map(|gate| part(gate).weight.val()).to_vec(), 1)
    };
    let w_x = weights(|gate| &gate.input_transform); // [d, 4h]
    let w_h = weights(|gate| &gate.hidden_transform); // [h, 4h]
    let bias = Tensor::cat(gates.map(gate_bias).to_vec(), 0); // [4h]
    let h = layer.d_hidden;
    let LstmState { cell, hidden } = state.unwrap_or_else(|| {
        let zeros = || Tensor::zeros([b, h], &x.device());
        LstmState::new(zeros(), zeros())
    });
    let inputs = [
        primitive(x),
        primitive(w_x),
        primitive(w_h),
        primitive(bias),
        primitive(cell),
        primitive(hidden),
    ];
    let packed = try_op::<B, _, 6>(inputs, LstmBackward, |[x, w_x, w_h, bias, c0, h0]| {
        forward(x, w_x, w_h, bias, c0, h0)
    });
    match packed {
        Ok(packed) => {
            // The outputs first, so that they are a contiguous view (and the next layer reads
            // them without a copy).
            let packed: Tensor<B, 2> = tensor(packed);
            let y = packed.clone().slice([0..b * s, 0..h]).reshape([b, s, h]);
            let cell = packed.slice([b * s..b * s + b, 0..h]);
            let hidden = y.clone().slice([0..b, s - 1..s, 0..h]).reshape([b, h]);
            Ok((y, LstmState::new(cell, hidden)))
        }
        Err([x, .., c0, h0]) => Err((tensor(x), Some(LstmState::new(tensor(c0), tensor(h0))))),
    }
}

/// The summed input and hidden biases of a gate that has both.
fn gate_bias<B: Backend>(gate: &GateController<B>) -> Tensor<B, 1> {
    let bias = |linear: &burn::nn::Linear<B>| linear.bias.as_ref().expect("checked").val();
    bias(&gate.input_transform) + bias(&gate.hidden_transform)
}

/// The sizes of a window: batch, steps, input features, hidden units.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    s: usize,
    d: usize,
    h: usize,
}

/// What the backward pass needs of a window; the activations time-major.
#[derive(Debug, Clone)]
struct Saved {
    dims: Dims,
    w_x: FlexTensor,
    w_h: FlexTensor,
    /// The input [s, b, d].
    x: Vec<f32>,
    /// The gates after their activations [s, b, 4h].
    gates: Vec<f32>,
    /// The cell states [s + 1, b, h], c_0 first.
    cells: Vec<f32>,
    /// tanh of the cell states [s, b, h], from c_1.
    tanh_cells: Vec<f32>,
    /// The hidden states [s + 1, b, h], h_0 first.
    hidden: Vec<f32>,
}

/// x [b, s, d], w_x [d, 4h], w_h [h, 4h], bias [4h], c_0 and h_0 [b, h]: the hidden state of
/// every step [b * s, h] (batch-major), and then the last cell state [b, h].
fn forward(
    x: &FlexTensor,
    w_x: &FlexTensor,
    w_h: &FlexTensor,
    bias: &FlexTensor,
    c0: &FlexTensor,
    h0: &FlexTensor,
) -> (FlexTensor, Saved) {
    let [x, w_x, w_h, bias, c0, h0] = [x, w_x, w_h, bias, c0, h0].map(|t| t.to_contiguous());
    let [b, s, d] = x.shape().dims();
    let h = w_h.shape()[0];
    let (bh, g4) = (b * h, 4 * h);
    let x = swap_outer(values(&x), b, s); // [s, b, d]
    // The input projections of all steps at once; each step adds its recurrent part below.
    let mut gates = product(Matrix::rows(&x, s * b), Matrix::rows(values(&w_x), d)); // [s * b, 4h]
    let mut cells = vec![0f32; (s + 1) * bh];
    let mut hidden = vec![0f32; (s + 1) * bh];
    let mut tanh_cells = vec![0f32; s * bh];
    cells[..bh].copy_from_slice(values(&c0));
    hidden[..bh].copy_from_slice(values(&h0));
    let (recurrent, bias) = (Matrix::rows(values(&w_h), h), values(&bias));
    let part = rows_per_part(b);
    part_rows(&mut gates, b * g4, part * g4)
        .into_par_iter()
        .zip(part_rows(&mut cells, bh, part * h))
        .zip(part_rows(&mut tanh_cells, bh, part * h))
        .zip(part_rows(&mut hidden, bh, part * h))
        .for_each(|(((mut gates, mut cells), mut tanh_cells), mut hidden)| {
            let n = cells[0].len() / h;
            for t in 0..s {
                let (hidden_done, hidden_next) = hidden.split_at_mut(t + 1);
                gemm(gates[t], Matrix::rows(hidden_done[t], n), recurrent, true);
                let (cells_done, cells_next) = cells.split_at_mut(t + 1);
                let rows = gates[t]
                    .chunks_mut(g4)
                    .zip(cells_done[t].chunks(h))
                    .zip(cells_next[0].chunks_mut(h))
                    .zip(tanh_cells[t].chunks_mut(h))
                    .zip(hidden_next[0].chunks_mut(h));
                for ((((a, c_prev), c), tc), h_new) in rows {
                    cell_forward(a, bias, c_prev, c, tc, h_new);
                }
            }
        });
    let mut packed = swap_outer(&hidden[bh..], s, b);
    packed.extend_from_slice(&cells[s * bh..]);
    let packed = FlexTensor::from_data(TensorData::new(packed, [b * s + b, h]));
    let saved = Saved {
        dims: Dims { b, s, d, h },
        w_x,
        w_h,
        x,
        gates,
        cells,
        tanh_cells,
        hidden,
    };
    (packed, saved)
}

/// Batch rows per parallel part of the recurrence. Each row is a sequence of its own, so the
/// rows are split between the threads, and each part runs all the window's steps for its rows
/// without waiting for the others (a product per step on all threads synchronized them at
/// every step).
fn rows_per_part(b: usize) -> usize {
    b.div_ceil(rayon::current_num_threads().max(1))
}

/// A time-major buffer of `step` values per step cut into the parts' rows, `part` values per
/// part and step: for each part, its rows of every step.
fn part_rows(values: &mut [f32], step: usize, part: usize) -> Vec<Vec<&mut [f32]>> {
    let mut parts: Vec<Vec<&mut [f32]>> = Vec::new();
    for step in values.chunks_mut(step) {
        for (index, rows) in step.chunks_mut(part).enumerate() {
            match parts.get_mut(index) {
                Some(part) => part.push(rows),
                None => parts.push(vec![rows]),
            }
        }
    }
    parts
}

/// One batch row of a step: the gates' pre-activations `a` [4h], still without `bias`, in and
/// their activations out; the new cell state `c` from the previous one, its tanh `tc`, and
/// the new hidden state `h`.
fn cell_forward(
    a: &mut [f32],
    bias: &[f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
) {
    let n = c.len();
    a.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
    let (ifo, g) = a.split_at_mut(3 * n);
    map_lanes(ifo, sigmoid8);
    map_lanes(g, tanh8);
    let (i, fo) = ifo.split_at(n);
    let (f, o) = fo.split_at(n);
    for ((((c, c_prev), i), f), g) in c.iter_mut().zip(c_prev).zip(i).zip(f).zip(&*g) {
        *c = f * c_prev + i * g;
    }
    tc.copy_from_slice(c);
    map_lanes(tc, tanh8);
    for ((h, o), tc) in h.iter_mut().zip(o).zip(&*tc) {
        *h = o * tc;
    }
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Flex, 6> for LstmBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w_x, node_w_h, node_bias, node_c0, node_h0] =
            ops.parents.map(|node| node.map(|node| node.id));
        let saved = ops.state;
        let Dims { b, s, d, h } = saved.dims;
        let (bh, g4, rows) = (b * h, 4 * h, s * b);
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let grad = values(&grad); // [b * s + b, h]
        let out = |row: usize, t: usize| &grad[(row * s + t) * h..][..h];
        // The gates' pre-activation gradients [s, b, 4h]; the gradients of the cell and the
        // hidden state reaching the step at hand from the later ones.
        let mut da = vec![0f32; rows * g4];
        let mut dc = grad[b * s * h..].to_vec();
        let mut dh = vec![0f32; bh];
        let recurrent = Matrix::rows(values(&saved.w_h), h);
        let part = rows_per_part(b);
        part_rows(&mut da, b * g4, part * g4)
            .into_par_iter()
            .zip(dc.par_chunks_mut(part * h))
            .zip(dh.par_chunks_mut(part * h))
            .enumerate()
            .for_each(|(index, ((mut da, dc), dh))| {
                let (first, n) = (index * part, dc.len() / h);
                for t in (0..s).rev() {
                    // This part's rows of step t in a time-major buffer of rows of `len`.
                    let rows = |len: usize| (t * b + first) * len..(t * b + first + n) * len;
                    let rows_t = da[t]
                        .chunks_mut(g4)
                        .zip(saved.gates[rows(g4)].chunks(g4))
                        .zip(saved.cells[rows(h)].chunks(h))
                        .zip(saved.tanh_cells[rows(h)].chunks(h))
                        .zip(dc.chunks_mut(h).zip(dh.chunks(h)))
                        .enumerate();
                    for (row, ((((da, gates), c_prev), tc), (dc, dh))) in rows_t {
                        let incoming = Incoming {
                            out: out(first + row, t),
                            dh,
                        };
                        cell_backward(gates, c_prev, tc, incoming, dc, da);
                    }
                    gemm(dh, Matrix::rows(da[t], n), recurrent.t(), false);
                }
            });
        let da = Matrix::rows(&da, rows); // [s * b, 4h]
        let mut register = |id: NodeId, values: Vec<f32>, shape: Vec<usize>| {
            let data = TensorData::new(values, shape);
            grads.register::<Flex>(id, FlexTensor::from_data(data));
        };
        if let Some(id) = node_bias {
            register(id, column_sums(da.data, g4), vec![g4]);
        }
        if let Some(id) = node_w_x {
            let dw = product(Matrix::rows(&saved.x, rows).t(), da);
            register(id, dw, vec![d, g4]);
        }
        if let Some(id) = node_w_h {
            let dw = product(Matrix::rows(&saved.hidden[..rows * h], rows).t(), da);
            register(id, dw, vec![h, g4]);
        }
        if let Some(id) = node_x {
            let dx = product(da, Matrix::rows(values(&saved.w_x), d).t()); // [s * b, d]
            register(id, swap_outer(&dx, s, b), vec![b, s, d]);
        }
        if let Some(id) = node_c0 {
            register(id, dc, vec![b, h]);
        }
        if let Some(id) = node_h0 {
            register(id, dh, vec![b, h]);
        }
    }
}

/// The gradients reaching a row's new hidden state: from the layer's output and from the
/// next step.
struct Incoming<'a> {
    out: &'a [f32],
    dh: &'a [f32],
}

/// One batch row of a step, backwards: the gates' pre-activation gradients `da` [4h] from
/// their activations, the previous cell state, tanh of the new one and the gradients reaching
/// the new hidden state. `dc` comes in as the new cell state's gradient and leaves as the
/// previous one's.
fn cell_backward(
    gates: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    incoming: Incoming,
    dc: &mut [f32],
    da: &mut [f32],
) {
    let n = dc.len();
    let (i, rest) = gates.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (o, g) = rest.split_at(n);
    let (da_i, rest) = da.split_at_mut(n);
    let (da_f, rest) = rest.split_at_mut(n);
    let (da_o, da_g) = rest.split_at_mut(n);
    let (out, dh_next) = (&incoming.out[..n], &incoming.dh[..n]);
    let (c_prev, tc, g) = (&c_prev[..n], &tc[..n], &g[..n]);
    for j in 0..n {
        let dh = out[j] + dh_next[j];
        let dc_j = dc[j] + dh * o[j] * (1.0 - tc[j] * tc[j]);
        da_i[j] = dc_j * g[j] * i[j] * (1.0 - i[j]);
        da_f[j] = dc_j * c_prev[j] * f[j] * (1.0 - f[j]);
        da_o[j] = dh * tc[j] * o[j] * (1.0 - o[j]);
        da_g[j] = dc_j * i[j] * (1.0 - g[j] * g[j]);
        dc[j] = dc_j * f[j];
    }
}

/// Whether `layer` is the cell this kernel computes: sigmoid gates, tanh candidate and
/// output, batch-first, forward in time, no clipping, no coupled input and forget gates.
fn standard_cell<B: Backend>(layer: &Lstm<B>) -> bool {
    layer.batch_first
        && !layer.reverse
        && layer.clip.is_none()
        && !layer.input_forget
        && matches!(layer.gate_activation, Activation::Sigmoid(_))
        && matches!(layer.cell_activation, Activation::Tanh(_))
        && matches!(layer.hidden_activation, Activation::Tanh(_))
}

#[cfg(test)]
mod tests {
    use burn::module::AutodiffModule;
    use burn::nn::LstmConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::super::FlexTrain;
    use super::*;

    type Layer = fn(
        &Lstm<FlexTrain>,
        Tensor<FlexTrain, 3>,
        Option<LstmState<FlexTrain, 2>>,
    ) -> Output<FlexTrain>;

    fn ours(
        layer: &Lstm<FlexTrain>,
        x: Tensor<FlexTrain, 3>,
        state: Option<LstmState<FlexTrain, 2>>,
    ) -> Output<FlexTrain> {
        try_lstm(layer, x, state).unwrap_or_else(|_| panic!("not handled by flex"))
    }

    fn burns(
        layer: &Lstm<FlexTrain>,
        x: Tensor<FlexTrain, 3>,
        state: Option<LstmState<FlexTrain, 2>>,
    ) -> Output<FlexTrain> {
        layer.forward(x, state)
    }

    fn random<const D: usize>(dims: [usize; D]) -> Tensor<FlexTrain, D> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// A layer's input, initial state (if any) and the weights of its outputs in the loss.
    struct Case {
        x: Tensor<FlexTrain, 3>,
        state: Option<[Tensor<FlexTrain, 2>; 2]>,
        weights: (
            Tensor<FlexTrain, 3>,
            Tensor<FlexTrain, 2>,
            Tensor<FlexTrain, 2>,
        ),
    }

    /// The outputs, the final state and the gradients of every parameter, the input and the
    /// initial state (when given) of a random weighting of all three outputs.
    fn outputs(layer: &Lstm<FlexTrain>, case: &Case, f: Layer) -> Vec<TensorData> {
        let x = case.x.clone().require_grad();
        let state = case.state.clone().map(|s| s.map(|t| t.require_grad()));
        let initial = state.clone().map(|[c, h]| LstmState::new(c, h));
        let (y, last) = f(layer, x.clone(), initial);
        let (ry, rc, rh) = case.weights.clone();
        let loss = (y.clone() * ry).sum()
            + (last.cell.clone() * rc).sum()
            + (last.hidden.clone() * rh).sum();
        let grads = loss.backward();
        let mut results = vec![
            y.into_data(),
            last.cell.into_data(),
            last.hidden.into_data(),
        ];
        for gate in [
            &layer.input_gate,
            &layer.forget_gate,
            &layer.output_gate,
            &layer.cell_gate,
        ] {
            for linear in [&gate.input_transform, &gate.hidden_transform] {
                let bias = linear.bias.as_ref().expect("a bias");
                results.push(linear.weight.grad(&grads).expect("tracked").into_data());
                results.push(bias.grad(&grads).expect("tracked").into_data());
            }
        }
        results.push(x.grad(&grads).expect("tracked").into_data());
        for t in state.iter().flatten() {
            results.push(t.grad(&grads).expect("tracked").into_data());
        }
        results
    }

    fn check(d: usize, h: usize, [b, s]: [usize; 2], with_state: bool) {
        let layer = LstmConfig::new(d, h, true).init::<FlexTrain>(&Default::default());
        let case = Case {
            x: random([b, s, d]),
            state: with_state.then(|| [random([b, h]), random([b, h])]),
            weights: (random([b, s, h]), random([b, h]), random([b, h])),
        };
        let ours = outputs(&layer, &case, ours);
        let burns = outputs(&layer, &case, burns);
        assert_eq!(ours.len(), 3 + 16 + 1 + 2 * usize::from(with_state));
        for (i, (ours, burns)) in ours.iter().zip(&burns).enumerate() {
            assert_eq!(ours.shape, burns.shape, "output {i}");
            ours.assert_approx_eq::<f32>(burns, Tolerance::rel_abs(1e-4, 1e-5));
        }
    }

    #[test]
    fn matches_burns_layer_with_a_carried_state() {
        check(5, 6, [3, 7], true);
    }

    #[test]
    fn matches_burns_layer_from_a_zero_state() {
        // Wide enough that gemm splits the input projection between threads.
        check(40, 64, [8, 9], false);
    }

    #[test]
    fn matches_burns_layer_without_autodiff() {
        let layer = LstmConfig::new(4, 3, true)
            .init::<FlexTrain>(&Default::default())
            .valid();
        let x = random([2, 5, 4]).inner();
        let Ok((y, last)) = try_lstm(&layer, x.clone(), None) else {
            panic!("not handled by flex");
        };
        let (y_burn, last_burn) = layer.forward(x, None);
        let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
        let pairs = [
            (y.into_data(), y_burn.into_data()),
            (last.cell.into_data(), last_burn.cell.into_data()),
            (last.hidden.into_data(), last_burn.hidden.into_data()),
        ];
        for (ours, burns) in pairs {
            ours.assert_approx_eq::<f32>(&burns, tolerance);
        }
    }

    #[test]
    fn other_cells_are_left_to_burn() {
        let device = Default::default();
        let x = || Tensor::<FlexTrain, 3>::zeros([1, 2, 3], &device);
        let clipped = LstmConfig::new(3, 2, true)
            .with_clip(Some(1.0))
            .init(&device);
        assert!(try_lstm(&clipped, x(), None).is_err());
        let coupled = LstmConfig::new(3, 2, true)
            .with_input_forget(true)
            .init(&device);
        assert!(try_lstm(&coupled, x(), None).is_err());
        let unbiased = LstmConfig::new(3, 2, false).init(&device);
        assert!(try_lstm(&unbiased, x(), None).is_err());
        let empty = Tensor::<FlexTrain, 3>::zeros([1, 0, 3], &device);
        assert!(try_lstm(&LstmConfig::new(3, 2, true).init(&device), empty, None).is_err());
    }
}
