//! Helpers shared by the integration tests. Each test binary uses a different subset, hence
//! the blanket `dead_code` allowance.
#![allow(dead_code)]

use std::sync::OnceLock;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_data::testing::{real_data_or_skip, real_or_fixture_data_dir};
use levelset_data::{Corpus, LabeledImages, load_cifar10, load_mnist, load_ptb};
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train};
use levelset_models::flat::{flatten, lerps};
use levelset_models::landscape::pointwise_energies;
use levelset_models::nets::{CifarConvConfig, LstmLmConfig, MnistConvConfig};
use levelset_models::optim::OptimizerConfig;

/// Host copy of any float tensor.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("float tensor data")
}

/// Energies of four points on the line between two random models (the endpoints included,
/// so the rows are different models), through the task's `energies` and one by one.
pub fn stacked_and_pointwise<L: Landscape<Train>>(task: &L) -> (Vec<f64>, Vec<f64>) {
    let template = task.init(0).valid();
    let a = flatten(&task.init(1).valid());
    let b = flatten(&task.init(2).valid());
    let points = lerps(&a, &b, &[0.0, 0.25, 0.5, 1.0]);
    let stacked = task.energies(&template, points.clone());
    let pointwise = pointwise_energies(task, &template, points);
    assert_ne!(pointwise[0], pointwise[3], "the two models differ");
    (stacked, pointwise)
}

/// A model's flat parameter vector on the host.
pub fn flat_host<B: Backend, M: Module<B>>(model: &M) -> Vec<f32> {
    host(flatten(model))
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let bound = tol * (1.0 + x.abs().max(y.abs()));
        assert!(
            (x - y).abs() <= bound,
            "{what}: index {i}: {x} vs {y} (tolerance {bound})"
        );
    }
}

/// Every float parameter of a module as (shape, values, id), in traversal order.
pub fn params<B: Backend, M: Module<B>>(model: &M) -> Vec<(Vec<usize>, Vec<f32>, ParamId)> {
    struct Collect(Vec<(Vec<usize>, Vec<f32>, ParamId)>);
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            self.0.push((value.dims().to_vec(), host(value), param.id));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// The gradient of every parameter of `model` from `grads`, concatenated in the same order as
/// `flatten` (a parameter without a gradient contributes zeros).
pub fn param_grads_flat<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &GradientsParams,
) -> Vec<f32> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<f32>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            match self.grads.get::<B::InnerBackend, D>(param.id) {
                Some(g) => self.out.extend(host(g)),
                None => self
                    .out
                    .extend(std::iter::repeat_n(0.0, param.shape().num_elements())),
            }
        }
    }
    let mut collect = Collect {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut collect);
    collect.out
}

/// Runs exactly `steps` optimizer steps with the landscape's own loader, carry and loss, the
/// same loop as `train_to_level` without the energy checks. `train_to_level` drops the model
/// when the level is not reached, so short trainings are run through this.
pub fn train_steps<L: Landscape<Train>>(
    task: &L,
    mut model: L::Model,
    optimizer: &OptimizerConfig,
    seed: u64,
    steps: usize,
) -> L::Model {
    let loader = task.loader(seed);
    let mut opt = optimizer.init::<Train, L::Model>();
    let mut done = 0;
    let mut epoch = 0;
    loop {
        let lr = optimizer.learning_rate(epoch);
        let mut carry = task.carry(seed, epoch);
        let mut batches = 0;
        for batch in loader.iter() {
            if done == steps {
                return model;
            }
            batches += 1;
            let loss = task.loss(&model, batch, &mut carry);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = opt.step(lr, model, grads);
            done += 1;
        }
        assert!(batches > 0, "the loader produced no batch");
        epoch += 1;
    }
}

pub fn small_mnist_config() -> MnistConvConfig {
    MnistConvConfig {
        conv1: 4,
        conv2: 8,
        hidden: 16,
        dropout: 0.5,
    }
}

pub fn small_cifar_config() -> CifarConvConfig {
    CifarConvConfig {
        conv1: 4,
        conv2: 4,
        fc1: 16,
        fc2: 8,
        ..CifarConvConfig::default()
    }
}

pub fn small_lstm_config(vocab: usize) -> LstmLmConfig {
    LstmLmConfig {
        vocab,
        embed: 8,
        hidden: 8,
        layers: 2,
        init_scale: 0.1,
    }
}

/// The first 1000 training and 700 test images of the real MNIST copy (the committed extract
/// holds exactly these). Loading decodes the whole gzipped set, so it is done once per test
/// binary.
pub fn mnist_subset() -> (LabeledImages, LabeledImages) {
    static CELL: OnceLock<(LabeledImages, LabeledImages)> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut split =
            load_mnist(&real_or_fixture_data_dir().join("mnist")).expect("real MNIST data");
        split.train.truncate(1000);
        split.test.truncate(700);
        (split.train, split.test)
    })
    .clone()
}

/// The first 300 training and 100 test images of the real CIFAR-10 copy; `None` (the test
/// reported skipped) without the real copies, of which no extract is committed.
pub fn cifar_subset() -> Option<(LabeledImages, LabeledImages)> {
    static CELL: OnceLock<(LabeledImages, LabeledImages)> = OnceLock::new();
    let dir = real_data_or_skip()?;
    Some(
        CELL.get_or_init(|| {
            let mut split = load_cifar10(&dir.join("cifar10")).expect("real CIFAR-10 data");
            split.train.truncate(300);
            split.test.truncate(100);
            (split.train, split.test)
        })
        .clone(),
    )
}

/// PTB with the validation text as training text (its vocabulary) and the test text held
/// out, both cut to their first `tokens` ids (at most about 2,600 from the committed extract,
/// whose vocabulary is smaller).
pub fn ptb_slice(tokens: usize) -> Corpus {
    static CELL: OnceLock<Corpus> = OnceLock::new();
    let mut corpus = CELL
        .get_or_init(|| {
            let dir = real_or_fixture_data_dir().join("ptb");
            load_ptb(&dir.join("ptb.valid.txt"), &dir.join("ptb.test.txt")).expect("real PTB")
        })
        .clone();
    corpus.train.truncate(tokens);
    corpus.heldout.truncate(tokens);
    corpus
}

/// A deterministic pseudo-random input tensor on the evaluation backend.
pub fn random_input<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Compute, D> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_data(
        TensorData::new(values, shape),
        &levelset_models::backend::device(),
    )
}
