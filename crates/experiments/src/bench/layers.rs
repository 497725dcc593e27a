//! `bench --breakdown`'s per-layer part: each layer operation of a net with a description (the
//! described nets and the paper's MNIST net) timed on its own, the forward and the backward of
//! a training step and the forward of an evaluation batch, with the device synchronised before
//! and after each, so that on asynchronous (GPU) backends an operation's kernels are charged to
//! it. An operation is what the forward pass runs as one call (a fused convolution, ReLU and
//! pooling counts as one; [`Described::operations`]).

use std::ops::Range;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::nets::{Activations, Described, DescribedConfig};
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

/// Milliseconds per call of every operation of `net`, in each pass: training on images of
/// `batch` examples, evaluation on `eval_batch`; `plan.steps` calls per run. The inputs are
/// random images (the time of these layers does not depend on the values), the parameters
/// drawn from `plan.seed`.
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
    let train_inputs = inputs(&model, images(net.input, batch, plan.seed, &dev));
    let eval_model = model.valid();
    let eval_inputs = inputs(&eval_model, images(net.input, eval_batch, plan.seed, &dev));
    for (index, ops) in model.operations().into_iter().enumerate() {
        let op_name = model.operation_name(ops.clone());
        for pass in Pass::ALL {
            let run = || match pass {
                Pass::EvalForward => time_eval(&eval_model, &ops, &eval_inputs[index], plan.steps),
                Pass::TrainForward | Pass::TrainBackward => {
                    time_train(&model, &ops, &train_inputs[index], plan, pass)
                }
            };
            run(); // warm-up: first-use allocations and kernel compilation
            let workload = workload(pass, index, &op_name);
            record(measure(name, &workload, pass.report(), plan.repeats, run))?;
        }
    }
    Ok(())
}

/// Uniform random images [n, c, h, w] in [-1, 1), from `seed`.
fn images<B: Backend>(
    [c, h, w]: [usize; 3],
    n: usize,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..n * c * h * w)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_data(TensorData::new(values, [n, c, h, w]), device)
}

/// The input of every operation of `net` on `x` (the first is `x`), each a leaf of its own
/// graph that tracks its gradient, as inside a training step, except the images.
fn inputs<B: Backend>(net: &Described<B>, x: Tensor<B, 4>) -> Vec<Activations<B>> {
    let mut inputs = vec![Activations::Image(x)];
    for ops in net.operations() {
        let last = inputs.last().expect("the images are there").clone();
        inputs.push(net.forward_operation(ops, last, None).leaf(true));
    }
    inputs.pop(); // the logits are no operation's input
    inputs
}

/// Seconds spent in `steps` forwards of the operation `ops` on the evaluation backend, each
/// between two synchronisations.
fn time_eval(
    net: &Described<Compute>,
    ops: &Range<usize>,
    input: &Activations<Compute>,
    steps: usize,
) -> Timed {
    let dev = input_device(input);
    let mut seconds = 0.0;
    for _ in 0..steps {
        Compute::sync(&dev).expect("the device synchronises");
        let start = Instant::now();
        let y = net.forward_operation(ops.clone(), input.clone(), None);
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
/// ([`Pass::TrainBackward`]) of the operation `ops` on the training backend, each between two
/// synchronisations. Every forward is followed by its backward, as in a training step: the
/// graph a forward records is released only by its backward, and forwards run back to back
/// without one measured up to 5x slower on flex as their graphs piled up.
fn time_train<B: AutodiffBackend>(
    net: &Described<B>,
    ops: &Range<usize>,
    input: &Activations<B>,
    plan: Plan,
    pass: Pass,
) -> Timed {
    let dev = input_device(input);
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let (mut forward, mut backward) = (0.0, 0.0);
    for _ in 0..plan.steps {
        B::sync(&dev).expect("the device synchronises");
        let start = Instant::now();
        let y = net.forward_operation(ops.clone(), input.clone(), Some(&mut rng));
        B::sync(&dev).expect("the device synchronises");
        forward += start.elapsed().as_secs_f64();
        let loss = y.sum();
        B::sync(&dev).expect("the device synchronises");
        let start = Instant::now();
        let grads = loss.backward();
        B::sync(&dev).expect("the device synchronises");
        backward += start.elapsed().as_secs_f64();
        drop(grads);
    }
    Timed {
        seconds: if pass == Pass::TrainBackward {
            backward
        } else {
            forward
        },
        work: plan.steps as f64,
    }
}

fn input_device<B: Backend>(input: &Activations<B>) -> B::Device {
    match input {
        Activations::Image(x) => x.device(),
        Activations::Flat(x) => x.device(),
    }
}

#[cfg(test)]
mod tests {
    use levelset_models::nets::NetDescription;

    use super::*;

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
        let plan = Plan {
            repeats: 1,
            steps: 2,
            seed: 0,
        };
        let mut measured = Vec::new();
        layer_breakdown("small", &net, 4, 8, plan, &mut |m| {
            measured.push(m);
            Ok(())
        })
        .unwrap();
        let names: Vec<(&str, &str)> = measured
            .iter()
            .map(|m| (m.workload.as_str(), m.unit.as_str()))
            .collect();
        let mut expected = Vec::new();
        for (i, op) in [
            "conv2d+relu+max_pool2d",
            "flatten",
            "linear",
            "dropout",
            "linear",
        ]
        .iter()
        .enumerate()
        {
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
}
