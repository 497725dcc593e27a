//! `bench --breakdown`'s per-layer part: each layer operation of a net timed on its own, the
//! forward and the backward of a training step and the forward of an evaluation batch, with the
//! device synchronised before and after each, so that on asynchronous (GPU) backends an
//! operation's kernels are charged to it. For the nets with a description (the described nets
//! and the paper's MNIST net) an operation is what the forward pass runs as one call (a fused
//! convolution, ReLU and pooling counts as one; [`Described::operations`]); for the PTB model
//! the embedding, each LSTM layer and the output layer.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::nets::described::{NormMode, Shape};
use levelset_models::nets::{Activations, Described, DescribedConfig, DescribedLmConfig, LstmLm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::measure::{Measurement, Report, Timed, measure};
use super::workloads::Plan;

/// What each operation is timed on, apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The operation's forward on the training backend (dropout on), recording its graph.
    TrainForward,
    /// `backward()` of the sum of the operation's outputs: the operation's backward, the
    /// gradients of its input (except the first operation's: the images need none) and of its
    /// parameters, plus one fill for the sum's own gradient.
    TrainBackward,
    /// The operation's forward on the evaluation backend, on an evaluation batch.
    EvalForward,
}

impl Pass {
    const ALL: [Pass; 3] = [Pass::TrainForward, Pass::TrainBackward, Pass::EvalForward];

    fn workload(self) -> &'static str {
        match self {
            Pass::TrainForward => "layer_forward",
            Pass::TrainBackward => "layer_backward",
            Pass::EvalForward => "layer_eval",
        }
    }

    fn report(self) -> Report {
        let unit = match self {
            Pass::TrainForward | Pass::TrainBackward => "ms/step",
            Pass::EvalForward => "ms/batch",
        };
        Report::PerWork { unit, scale: 1e3 }
    }
}

/// The workload name of operation `index` in `pass`: `layer_forward/3/linear`.
fn workload(pass: Pass, index: usize, name: &str) -> String {
    format!("{}/{index}/{name}", pass.workload())
}

/// Milliseconds per call of every operation of `net`, in each pass: training on batches of
/// `batch` examples, evaluation on `eval_batch`; `plan.steps` calls per run. The inputs are
/// random images or features (the time of these layers does not depend on the values), the
/// parameters drawn from `plan.seed`.
pub fn layer_breakdown(
    name: &str,
    net: &DescribedConfig,
    batch: usize,
    eval_batch: usize,
    plan: Plan,
    record: &mut dyn FnMut(Measurement) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dev = device();
    let model: Described<Train> = net.init(plan.seed, &dev);
    let train_inputs = inputs(&model, random_inputs(net.input, batch, plan.seed, &dev));
    let eval_model = model.valid();
    let eval_inputs = inputs(
        &eval_model,
        random_inputs(net.input, eval_batch, plan.seed, &dev),
    );
    for (index, ops) in model.operations().into_iter().enumerate() {
        let (input, eval_input) = (&train_inputs[index], &eval_inputs[index]);
        record_operation(
            (name, index, &model.operation_name(ops.clone())),
            plan,
            record,
            |rng| model.forward_operation(ops.clone(), input.clone(), Some(rng), NormMode::Train),
            || {
                eval_model.forward_operation(
                    ops.clone(),
                    eval_input.clone(),
                    None,
                    NormMode::Running,
                )
            },
        )?;
    }
    Ok(())
}

/// [`layer_breakdown`] for a language model (the paper's PTB net or a described one): its
/// embedding, each LSTM layer (from a zero state) and its output layer, on windows of random
/// tokens [batch, steps], the shape of its training and evaluation windows alike.
pub fn lm_layer_breakdown(
    name: &str,
    config: &DescribedLmConfig,
    [batch, steps]: [usize; 2],
    plan: Plan,
    record: &mut dyn FnMut(Measurement) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dev = device();
    let model: LstmLm<Train> = config.init(plan.seed, &dev);
    let eval_model = model.valid();
    let layers = model.lstm.len();
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let ids: Vec<i64> = (0..batch * steps)
        .map(|_| rng.random_range(0..config.vocab as i64))
        .collect();
    let tokens = Tensor::<Train, 2, Int>::from_data(TensorData::new(ids, [batch, steps]), &dev);
    let eval_tokens = tokens.clone().inner();
    // Each layer's input: a leaf that tracks its gradient, as inside a training step.
    let mut train_inputs = vec![model.embed(tokens.clone()).detach().require_grad()];
    let mut eval_inputs = vec![eval_model.embed(eval_tokens.clone())];
    for i in 0..layers {
        let (y, _) = model.recur(i, train_inputs[i].clone(), None);
        train_inputs.push(y.detach().require_grad());
        eval_inputs.push(eval_model.recur(i, eval_inputs[i].clone(), None).0);
    }
    record_operation(
        (name, 0, "embedding"),
        plan,
        record,
        |_| model.embed(tokens.clone()),
        || eval_model.embed(eval_tokens.clone()),
    )?;
    for i in 0..layers {
        let (input, eval_input) = (&train_inputs[i], &eval_inputs[i]);
        record_operation(
            (name, i + 1, "lstm"),
            plan,
            record,
            |_| model.recur(i, input.clone(), None).0,
            || eval_model.recur(i, eval_input.clone(), None).0,
        )?;
    }
    let (input, eval_input) = (&train_inputs[layers], &eval_inputs[layers]);
    record_operation(
        (name, layers + 1, "linear"),
        plan,
        record,
        |_| model.decode(input.clone()),
        || eval_model.decode(eval_input.clone()),
    )
}

/// What an operation's training forward gives: outputs whose sum its backward starts from.
trait Outputs<B: Backend> {
    fn total(self) -> Tensor<B, 1>;
}

impl<B: Backend> Outputs<B> for Activations<B> {
    fn total(self) -> Tensor<B, 1> {
        self.sum()
    }
}

impl<B: Backend> Outputs<B> for Tensor<B, 3> {
    fn total(self) -> Tensor<B, 1> {
        self.sum()
    }
}

/// Times one operation, `(model, index, operation name)`, in every pass and records the
/// measurements: `train` is its forward on the training backend (given the dropout RNG),
/// `eval` its forward on the evaluation backend.
fn record_operation<O: Outputs<Train>, E>(
    (name, index, op_name): (&str, usize, &str),
    plan: Plan,
    record: &mut dyn FnMut(Measurement) -> anyhow::Result<()>,
    train: impl Fn(&mut ChaCha8Rng) -> O,
    eval: impl Fn() -> E,
) -> anyhow::Result<()> {
    for pass in Pass::ALL {
        let run = || match pass {
            Pass::EvalForward => time_eval(plan.steps, &eval),
            Pass::TrainForward | Pass::TrainBackward => time_train(plan, pass, &train),
        };
        run(); // warm-up: first-use allocations and kernel compilation
        let workload = workload(pass, index, op_name);
        record(measure(name, &workload, pass.report(), plan.repeats, run))?;
    }
    Ok(())
}

/// `n` uniform random inputs of `shape` in [-1, 1), from `seed`: images [n, c, h, w] or
/// features [n, d].
fn random_inputs<B: Backend>(
    shape: Shape,
    n: usize,
    seed: u64,
    device: &B::Device,
) -> Activations<B> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw =
        |count: usize| -> Vec<f32> { (0..count).map(|_| rng.random_range(-1.0..1.0)).collect() };
    match shape {
        Shape::Image([c, h, w]) => Activations::Image(Tensor::from_data(
            TensorData::new(draw(n * c * h * w), [n, c, h, w]),
            device,
        )),
        Shape::Flat(d) => Activations::Flat(Tensor::from_data(
            TensorData::new(draw(n * d), [n, d]),
            device,
        )),
    }
}

/// The input of every operation of `net` on `x` (the first is `x`), each a leaf of its own
/// graph that tracks its gradient, as inside a training step, except the net's inputs.
fn inputs<B: Backend>(net: &Described<B>, x: Activations<B>) -> Vec<Activations<B>> {
    let mut inputs = vec![x];
    for ops in net.operations() {
        let last = inputs.last().expect("the net's inputs are there").clone();
        inputs.push(
            net.forward_operation(ops, last, None, NormMode::Running)
                .leaf(),
        );
    }
    inputs.pop(); // the logits are no operation's input
    inputs
}

/// Seconds spent in `steps` calls of `forward` on the evaluation backend, each between two
/// synchronisations.
fn time_eval<E>(steps: usize, forward: &impl Fn() -> E) -> Timed {
    let dev = device();
    let mut seconds = 0.0;
    for _ in 0..steps {
        Compute::sync(&dev).expect("the device synchronises");
        let start = Instant::now();
        let y = forward();
        Compute::sync(&dev).expect("the device synchronises");
        seconds += start.elapsed().as_secs_f64();
        drop(y);
    }
    Timed {
        seconds,
        work: steps as f64,
    }
}

/// Seconds spent in `plan.steps` forwards (`pass` [`Pass::TrainForward`]) or backwards
/// ([`Pass::TrainBackward`]) of an operation on the training backend, each between two
/// synchronisations. Every forward is followed by its backward, as in a training step: the
/// graph a forward records is released only by its backward, and forwards run back to back
/// without one measured up to 5x slower on flex as their graphs piled up.
fn time_train<O: Outputs<Train>>(
    plan: Plan,
    pass: Pass,
    forward: &impl Fn(&mut ChaCha8Rng) -> O,
) -> Timed {
    let dev = device();
    let sync = || Train::sync(&dev).expect("the device synchronises");
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let (mut forward_seconds, mut backward_seconds) = (0.0, 0.0);
    for _ in 0..plan.steps {
        sync();
        let start = Instant::now();
        let y = forward(&mut rng);
        sync();
        forward_seconds += start.elapsed().as_secs_f64();
        let loss = y.total();
        sync();
        let start = Instant::now();
        let grads = loss.backward();
        sync();
        backward_seconds += start.elapsed().as_secs_f64();
        drop(grads);
    }
    Timed {
        seconds: match pass {
            Pass::TrainBackward => backward_seconds,
            _ => forward_seconds,
        },
        work: plan.steps as f64,
    }
}

#[cfg(test)]
mod tests {
    use levelset_models::nets::NetDescription;

    use super::*;

    /// `net`'s breakdown times its operations `ops`, in order, in every pass.
    fn times_every_operation(net: &DescribedConfig, ops: &[&str]) {
        let plan = Plan {
            repeats: 1,
            steps: 2,
            seed: 0,
        };
        let mut measured = Vec::new();
        layer_breakdown("small", net, 4, 8, plan, &mut |m| {
            measured.push(m);
            Ok(())
        })
        .unwrap();
        let names: Vec<(&str, &str)> = measured
            .iter()
            .map(|m| (m.workload.as_str(), m.unit.as_str()))
            .collect();
        let mut expected = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            for pass in Pass::ALL {
                expected.push((workload(pass, i, op), pass.report().unit()));
            }
        }
        let expected: Vec<(&str, &str)> = expected.iter().map(|(w, u)| (w.as_str(), *u)).collect();
        assert_eq!(names, expected);
        for m in &measured {
            assert_eq!(m.model, "small");
            assert_eq!(m.samples.len(), 1, "{m:?}");
            assert!(m.median.is_finite() && m.median >= 0.0, "{m:?}");
        }
    }

    #[test]
    fn every_operation_is_timed_in_every_pass() {
        let description: NetDescription = toml::from_str(
            r#"
            layers = [
                { kind = "conv2d", channels = 2, kernel = 3, padding = 1 },
                { kind = "relu" },
                { kind = "max_pool2d", kernel = 2 },
                { kind = "flatten" },
                { kind = "linear", features = 6 },
                { kind = "dropout", p = 0.5 },
                { kind = "linear", features = 3 },
            ]
            "#,
        )
        .unwrap();
        let net = DescribedConfig::new(description, [1, 6, 6], 3).unwrap();
        let ops = [
            "conv2d+relu+max_pool2d",
            "flatten",
            "linear",
            "dropout",
            "linear",
        ];
        times_every_operation(&net, &ops);
        // A net with flat inputs: the paper's cubic-task MLP.
        let cubic = levelset_models::nets::MlpConfig::cubic()
            .described()
            .unwrap();
        let ops = ["linear", "sigmoid", "linear", "sigmoid", "linear"];
        times_every_operation(&cubic, &ops);
    }

    #[test]
    fn every_layer_of_the_language_model_is_timed_in_every_pass() {
        let config = levelset_models::nets::LstmLmConfig {
            vocab: 12,
            embed: 5,
            hidden: 4,
            layers: 2,
            init_scale: 0.1,
        }
        .described()
        .unwrap();
        let plan = Plan {
            repeats: 1,
            steps: 2,
            seed: 0,
        };
        let mut measured = Vec::new();
        lm_layer_breakdown("lm", &config, [3, 4], plan, &mut |m| {
            measured.push(m);
            Ok(())
        })
        .unwrap();
        let names: Vec<&str> = measured.iter().map(|m| m.workload.as_str()).collect();
        let expected: Vec<String> = ["embedding", "lstm", "lstm", "linear"]
            .iter()
            .enumerate()
            .flat_map(|(i, op)| Pass::ALL.map(|pass| workload(pass, i, op)))
            .collect();
        assert_eq!(names, expected);
        assert!(
            measured
                .iter()
                .all(|m| m.median.is_finite() && m.median >= 0.0),
            "{measured:?}"
        );
    }
}
