//! Mean cross-entropy of logits against class ids on flex, in one pass over the rows each way.
//!
//! Burn's `log_softmax` and `gather` run as about ten flex ops over the logits, each a pass
//! on the calling thread alone (one of them libm's `expf`, an element at a time). For the PTB
//! model's [400, 10000] logits that was about a fifth of the training step's samples after
//! its LSTM layers were fused. Here the rows are split between the threads, and exp runs eight
//! lanes at a time.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::{DType, TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;
use wide::f32x8;

use super::sigmoid::map_lanes;
use super::{CHUNK, cast, on_flex, par_zeroed, primitive, tensor, try_op, values};

/// Logits and labels.
type Inputs<B> = (Tensor<B, 2>, Tensor<B, 1, Int>);

/// The mean over rows of -log softmax(logits)[label] for logits [n, classes] and labels [n],
/// when `B` is flex, with or without autodiff, the logits are f32 and the labels i32;
/// otherwise both back untouched.
///
/// # Panics
/// If a label is not a class index, as Burn's `gather` would.
pub(crate) fn try_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> Result<Tensor<B, 1>, Inputs<B>> {
    if !on_flex::<B>() || labels.dtype() != DType::I32 {
        return Err((logits, labels));
    }
    let ids = cast::<_, FlexTensor>(labels.clone().into_primitive())
        .expect("flex's int tensors are FlexTensors")
        .to_contiguous();
    let [n, classes] = logits.dims();
    let labels_host: Vec<usize> = ids
        .as_slice::<i32>()
        .expect("i32 labels")
        .iter()
        .map(|&label| match usize::try_from(label) {
            Ok(class) if class < classes => class,
            _ => panic!("label {label} is not a class index below {classes}"),
        })
        .collect();
    assert_eq!(labels_host.len(), n, "one label per row of logits");
    try_op::<B, _, 1>([primitive(logits)], CrossEntropyBackward, |[logits]| {
        let logits = logits.to_contiguous();
        let lse = log_sum_exps(values(&logits), classes);
        let xs = values(&logits);
        let total: f64 = lse
            .iter()
            .zip(&labels_host)
            .enumerate()
            .map(|(row, (lse, &label))| f64::from(lse - xs[row * classes + label]))
            .sum();
        let loss = FlexTensor::from_data(TensorData::new(vec![(total / n as f64) as f32], [1]));
        (
            loss,
            Saved {
                logits,
                lse,
                labels: labels_host,
            },
        )
    })
    .map(tensor)
    .map_err(|[logits]| (tensor(logits), labels))
}

/// What the backward pass needs: the logits, each row's log-sum-exp and the labels.
#[derive(Debug, Clone)]
struct Saved {
    logits: FlexTensor,
    lse: Vec<f32>,
    labels: Vec<usize>,
}

/// Rows of `classes` values per parallel task.
fn rows_per_task(classes: usize) -> usize {
    CHUNK.div_ceil(classes).max(1)
}

/// log(sum(exp(row))) of every row of `classes` values, shifted by the row's maximum so that
/// exp cannot overflow.
fn log_sum_exps(xs: &[f32], classes: usize) -> Vec<f32> {
    xs.par_chunks(classes * rows_per_task(classes))
        .flat_map_iter(|rows| rows.chunks(classes).map(log_sum_exp))
        .collect()
}

fn log_sum_exp(row: &[f32]) -> f32 {
    // The tail's lanes are padded with -inf, which adds nothing to either the max or the sum.
    let (lanes, tail) = row.as_chunks::<8>();
    let mut last = [f32::NEG_INFINITY; 8];
    last[..tail.len()].copy_from_slice(tail);
    let lanes = || lanes.iter().chain([&last]).map(|x| f32x8::from(*x));
    let max = lanes().fold(f32x8::splat(f32::NEG_INFINITY), f32x8::max);
    let max = f32x8::splat(max.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max));
    let sum = lanes().fold(f32x8::ZERO, |sum, x| sum + (x - max).exp());
    max.to_array()[0] + sum.reduce_add().ln()
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Some(node) = node else {
            return;
        };
        let Saved {
            logits,
            lse,
            labels,
        } = ops.state;
        let [n, classes] = logits.shape().dims();
        // d loss / d logits[r, j] = (softmax(logits[r])[j] - [j == label[r]]) * grad / n
        let scale = values(&grad)[0] / n as f32;
        let xs = values(&logits);
        let chunk = classes * rows_per_task(classes);
        let (dx, _) = par_zeroed(
            n * classes,
            chunk,
            || (),
            |(), task, dx| {
                let first = task * chunk / classes;
                let rows = dx
                    .chunks_mut(classes)
                    .zip(xs[task * chunk..].chunks(classes));
                for (row, (dx, x)) in rows.enumerate() {
                    let r = first + row;
                    softmax_scaled(x, lse[r], scale, dx);
                    dx[labels[r]] -= scale;
                }
            },
        );
        let dx = FlexTensor::from_data(TensorData::new(dx, [n, classes]));
        grads.register::<Flex>(node.id, dx);
    }
}

/// `dx` = exp(`x` - `lse`) * `scale`.
fn softmax_scaled(x: &[f32], lse: f32, scale: f32, dx: &mut [f32]) {
    let (lse, scale) = (f32x8::splat(lse), f32x8::splat(scale));
    dx.copy_from_slice(x);
    map_lanes(dx, |x| (x - lse).exp() * scale);
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Distribution, Tolerance};

    use super::super::FlexTrain;
    use super::*;

    fn burns<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let log_p = log_softmax(logits, 1);
        log_p.gather(1, labels.unsqueeze_dim(1)).mean().neg()
    }

    /// The loss and the logits' gradient of ours and Burn's, for logits of `n` rows of
    /// `classes` drawn around `offset`.
    fn check(n: usize, classes: usize, offset: f64) {
        let device = Default::default();
        let logits = Tensor::<FlexTrain, 2>::random(
            [n, classes],
            Distribution::Normal(offset, 3.0),
            &device,
        );
        let labels: Vec<i32> = (0..n).map(|i| ((i * 7919) % classes) as i32).collect();
        let labels = Tensor::<FlexTrain, 1, Int>::from_ints(labels.as_slice(), &device);
        let run = |f: &dyn Fn(
            Tensor<FlexTrain, 2>,
            Tensor<FlexTrain, 1, Int>,
        ) -> Tensor<FlexTrain, 1>| {
            let logits = logits.clone().require_grad();
            // A gradient other than one reaching the loss.
            let loss = f(logits.clone(), labels.clone());
            let grads = (loss.clone() * 3.0).backward();
            let dx = logits.grad(&grads).expect("tracked");
            [loss.into_data(), dx.into_data()]
        };
        let ours = run(&|x, y| try_cross_entropy(x, y).unwrap_or_else(|_| panic!("not handled")));
        let burns = run(&|x, y| burns(x, y));
        for (ours, burns) in ours.iter().zip(&burns) {
            assert_eq!(ours.shape, burns.shape);
            ours.assert_approx_eq::<f32>(burns, Tolerance::rel_abs(1e-4, 1e-6));
        }
        let plain = try_cross_entropy(logits.clone().inner(), labels.clone().inner())
            .unwrap_or_else(|_| panic!("not handled"));
        plain
            .into_data()
            .assert_approx_eq::<f32>(&ours[0], Tolerance::rel_abs(1e-6, 1e-7));
    }

    #[test]
    fn matches_burns_on_few_classes() {
        // 10 classes: one full lane and a tail.
        check(37, 10, 0.0);
    }

    #[test]
    fn matches_burns_on_rows_split_between_tasks() {
        // Six rows of 3001 classes per task, so two tasks, the last short.
        check(7, 3001, 0.0);
    }

    #[test]
    fn large_logits_do_not_overflow() {
        check(5, 19, 1000.0);
    }

    #[test]
    #[should_panic(expected = "label 10 is not a class index below 10")]
    fn labels_must_be_class_indices() {
        let device = Default::default();
        let logits = Tensor::<Flex, 2>::zeros([2, 10], &device);
        let labels = Tensor::<Flex, 1, Int>::from_ints([3, 10], &device);
        let _ = try_cross_entropy(logits, labels);
    }
}
