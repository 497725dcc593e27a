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

/// The mean over rows of -log softmax(logits)\[label\] for logits \[n, classes\] and labels \[n\],
/// when `B` is flex, with or without autodiff, the logits are f32 and the labels i32;
/// otherwise both back untouched.
///
/// # Panics
/// If a label is not a class index, as Burn's `gather` would.
pub fn try_cross_entropy<B: Backend>(
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
        let xs = values(&logits);
        let norms = normalizers(xs, classes);
        let total: f64 = norms
            .iter()
            .zip(&labels_host)
            .enumerate()
            .map(|(row, (norm, &label))| -f64::from(norm.log_softmax(xs[row * classes + label])))
            .sum();
        let loss = FlexTensor::from_data(TensorData::new(vec![(total / n as f64) as f32], [1]));
        (
            loss,
            Saved {
                logits,
                norms,
                labels: labels_host,
            },
        )
    })
    .map(tensor)
    .map_err(|[logits]| (tensor(logits), labels))
}

/// What the backward pass needs: the logits, each row's normalizer and the labels.
#[derive(Debug, Clone)]
struct Saved {
    logits: FlexTensor,
    norms: Vec<Normalizer>,
    labels: Vec<usize>,
}

/// Rows of `classes` values per parallel task.
fn rows_per_task(classes: usize) -> usize {
    CHUNK.div_ceil(classes).max(1)
}

/// What turns a row of logits into log-probabilities: log softmax(x) = (x - max) - log_sum.
/// The two parts are kept apart because their sum, the row's log-sum-exp, is as large as the
/// logits: rounded to f32 near 1000 it would be off by up to 3e-5, which shifts every
/// log-probability by as much (3e-4 relative in a gradient, seen).
#[derive(Debug, Clone, Copy)]
struct Normalizer {
    max: f32,
    /// log(sum(exp(x - max))) over the row.
    log_sum: f32,
}

impl Normalizer {
    fn log_softmax(&self, x: f32) -> f32 {
        (x - self.max) - self.log_sum
    }
}

/// The normalizer of every row of `classes` values.
fn normalizers(xs: &[f32], classes: usize) -> Vec<Normalizer> {
    xs.par_chunks(classes * rows_per_task(classes))
        .flat_map_iter(|rows| rows.chunks(classes).map(normalizer))
        .collect()
}

/// The row's maximum, and the log of its exps' sum shifted by it so that exp cannot overflow.
fn normalizer(row: &[f32]) -> Normalizer {
    // The tail's lanes are padded with -inf, which adds nothing to either the max or the sum.
    let (lanes, tail) = row.as_chunks::<8>();
    let mut last = [f32::NEG_INFINITY; 8];
    last[..tail.len()].copy_from_slice(tail);
    let lanes = || lanes.iter().chain([&last]).map(|x| f32x8::from(*x));
    let max = lanes().fold(f32x8::splat(f32::NEG_INFINITY), f32x8::max);
    let max = max.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    let shift = f32x8::splat(max);
    let sum = lanes().fold(f32x8::ZERO, |sum, x| sum + (x - shift).exp());
    Normalizer {
        max,
        log_sum: sum.reduce_add().ln(),
    }
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
            norms,
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
                    softmax_scaled(x, norms[r], scale, dx);
                    dx[labels[r]] -= scale;
                }
            },
        );
        let dx = FlexTensor::from_data(TensorData::new(dx, [n, classes]));
        grads.register::<Flex>(node.id, dx);
    }
}

/// `dx` = softmax(`x`) * `scale`, for the row `x` of normalizer `norm`.
fn softmax_scaled(x: &[f32], norm: Normalizer, scale: f32, dx: &mut [f32]) {
    let (max, log_sum) = (f32x8::splat(norm.max), f32x8::splat(norm.log_sum));
    let scale = f32x8::splat(scale);
    dx.copy_from_slice(x);
    map_lanes(dx, |x| ((x - max) - log_sum).exp() * scale);
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

    /// The loss and the gradient of three times the loss, in f64 from the logits' values: what
    /// both f32 computations approximate.
    fn exact(logits: &[f32], labels: &[i32], classes: usize) -> [TensorData; 2] {
        let n = labels.len();
        let (mut loss, mut dx) = (0.0, Vec::with_capacity(logits.len()));
        for (row, &label) in logits.chunks(classes).zip(labels) {
            let label = label as usize;
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
            let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
            let lse = max + sum.ln();
            loss += lse - f64::from(row[label]);
            dx.extend(row.iter().enumerate().map(|(j, &x)| {
                let p = (f64::from(x) - lse).exp() - f64::from(u8::from(j == label));
                (3.0 * p / n as f64) as f32
            }));
        }
        let loss = TensorData::new(vec![(loss / n as f64) as f32], [1]);
        [loss, TensorData::new(dx, [n, classes])]
    }

    /// The loss and the logits' gradient of ours against the exact values and, when
    /// `against_burn`, against Burn's, for logits of `n` rows of `classes` drawn around
    /// `offset`.
    fn check(n: usize, classes: usize, offset: f64, against_burn: bool) {
        let device = Default::default();
        let logits = Tensor::<FlexTrain, 2>::random(
            [n, classes],
            Distribution::Normal(offset, 3.0),
            &device,
        );
        let ids: Vec<i32> = (0..n).map(|i| ((i * 7919) % classes) as i32).collect();
        let labels = Tensor::<FlexTrain, 1, Int>::from_ints(ids.as_slice(), &device);
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
        let values = logits.clone().into_data().to_vec::<f32>().unwrap();
        let mut references = vec![exact(&values, &ids, classes)];
        if against_burn {
            references.push(run(&|x, y| burns(x, y)));
        }
        for reference in &references {
            for (ours, reference) in ours.iter().zip(reference) {
                assert_eq!(ours.shape, reference.shape);
                ours.assert_approx_eq::<f32>(reference, Tolerance::rel_abs(1e-4, 1e-6));
            }
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
        check(37, 10, 0.0, true);
    }

    #[test]
    fn matches_burns_on_rows_split_between_tasks() {
        // Six rows of 3001 classes per task, so two tasks, the last short.
        check(7, 3001, 0.0, true);
    }

    #[test]
    fn large_logits_do_not_overflow() {
        // Not against Burn's: near 1000 its log-softmax rounds the log-sum-exp to f32 and is
        // off from the exact values by about the tolerance (1.05e-4 relative, seen).
        check(5, 19, 1000.0, false);
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
