//! Landscapes and endpoints shared by the path-method tests.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::nn::Linear;
use burn::prelude::*;
use indicatif::ProgressBar;
use levelset_data::{LabeledImages, Polynomial, Regression, polynomial, three_point_cycle};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{distance, flatten};
use levelset_models::init::Init;
use levelset_models::nets::described::Layer;
use levelset_models::nets::{Activation, Described, MlpConfig};
use levelset_models::optim::OptimizerConfig;
use levelset_models::tasks::{RegressionLoss, RegressionTask, TrainSample};
use levelset_models::train::{TrainSettings, train_to_level};
use levelset_models::{Architecture, Energy, EvalModel, Landscape};
use levelset_strings::ConnectError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn adam(lr: f64, max_steps: usize) -> TrainSettings {
    TrainSettings {
        optimizer: OptimizerConfig::Adam {
            lr,
            weight_decay: None,
        },
        check_every: 10,
        max_steps,
        stop: Default::default(),
    }
}

/// Every model trains on `train`; the energy is the loss on `test`.
pub fn regression(
    config: MlpConfig,
    loss: RegressionLoss,
    train: Regression,
    test: &Regression,
) -> RegressionTask<Train> {
    RegressionTask::new(
        Architecture::Mlp(config),
        loss,
        Energy::TestLoss,
        TrainSample::Fixed(Arc::new(train)),
        test,
        0,
        None,
        &device(),
    )
    .expect("valid task")
}

/// Figure 1's quadratic regression (400 fresh training points per model, MAE), on the net
/// with biases: it trains every seed these tests use on every backend, where the authors'
/// bias-free net can stall on a plateau.
pub fn quadratic_task() -> RegressionTask<Train> {
    let test = polynomial(Polynomial::Quadratic, 400, 99);
    RegressionTask::new(
        Architecture::Mlp(MlpConfig::quadratic_biased()),
        RegressionLoss::Mae,
        Energy::TestLoss,
        TrainSample::Fresh(Arc::new(|seed| {
            polynomial(Polynomial::Quadratic, 400, seed)
        })),
        &test,
        1,
        None,
        &device(),
    )
    .expect("valid task")
}

/// A model trained from `seed` to `level`, on the evaluation backend.
pub fn trained<L: Landscape<Train>>(
    task: &L,
    level: f64,
    seed: u64,
    settings: &TrainSettings,
) -> EvalModel<Train, L> {
    let trained = train_to_level(
        task,
        task.init(seed),
        level,
        settings,
        seed,
        &ProgressBar::hidden(),
    )
    .expect("the model reaches its level");
    trained.model.valid()
}

/// The flat parameters of a model trained from `seed` to `level`.
pub fn endpoint<L: Landscape<Train>>(
    task: &L,
    level: f64,
    seed: u64,
    settings: &TrainSettings,
) -> Tensor<Compute, 1> {
    flatten(&trained(task, level, seed, settings))
}

/// The quadratic task and two endpoints trained to `level` with Adam.
pub fn quadratic_pair(
    level: f64,
    seeds: [u64; 2],
) -> (
    RegressionTask<Train>,
    Tensor<Compute, 1>,
    Tensor<Compute, 1>,
) {
    let task = quadratic_task();
    let settings = adam(0.02, 20_000);
    let a = endpoint(&task, level, seeds[0], &settings);
    let b = endpoint(&task, level, seeds[1], &settings);
    (task, a, b)
}

/// Appendix E: the bias-free 2-3-2 ReLU net fitted to the three-point cycle (MSE below 1e-3),
/// and the same net with two hidden units exchanged: one function at two points.
pub fn appendix_e_pair() -> (
    RegressionTask<Train>,
    Tensor<Compute, 1>,
    Tensor<Compute, 1>,
) {
    let data = three_point_cycle();
    let config = MlpConfig {
        widths: vec![2, 3, 2],
        hidden: Activation::Relu,
        output: Activation::Identity,
        bias: false,
        weight_init: Init::Uniform {
            low: -1.0,
            high: 1.0,
        },
        bias_init: Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data.clone(), &data);
    let net = trained(&task, 1e-3, 5, &adam(0.01, 50_000));
    let a = flatten(&net);
    let b = flatten(&swap_hidden(net, 0, 1));
    assert!(distance(&a, &b) > 0.1);
    (task, a, b)
}

/// The linear layers of an MLP built from its description, in order.
pub fn linears(net: &mut Described<Compute>) -> Vec<&mut Linear<Compute>> {
    net.layers
        .iter_mut()
        .filter_map(|layer| match layer {
            Some(Layer::Linear(linear)) => Some(linear),
            _ => None,
        })
        .collect()
}

/// The 2-3-2 net with hidden units `i` and `j` exchanged: the same function, another point.
fn swap_hidden(mut net: Described<Compute>, i: usize, j: usize) -> Described<Compute> {
    let mut order: Vec<i64> = (0..3).collect();
    order.swap(i, j);
    let idx = Tensor::<Compute, 1, Int>::from_data(TensorData::new(order, [3]), &device());
    let mut layers = linears(&mut net);
    let w0 = layers[0].weight.val().select(1, idx.clone());
    let w1 = layers[1].weight.val().select(0, idx);
    layers[0].weight = layers[0].weight.clone().map(|_| w0);
    layers[1].weight = layers[1].weight.clone().map(|_| w1);
    net
}

/// A way to break a config, and the key its error message must start with.
pub type Breakage<C> = (&'static str, fn(&mut C));

/// Every broken copy of `good` fails `validate` naming its key, and `connect` refuses it as
/// a config error.
pub fn assert_breakages_name_their_keys<C: Clone, T>(
    good: &C,
    breakages: &[Breakage<C>],
    validate: impl Fn(&C) -> Result<(), String>,
    connect: impl Fn(&C) -> Result<T, ConnectError>,
) {
    for (key, break_it) in breakages {
        let mut config = good.clone();
        break_it(&mut config);
        let err = validate(&config).expect_err(key);
        assert!(err.starts_with(key), "{key}: {err}");
        match connect(&config) {
            Err(ConnectError::Config(e)) => assert_eq!(e, err),
            Err(other) => panic!("{key}: {other}"),
            Ok(_) => panic!("{key}: a broken config connected"),
        }
    }
}

/// Random 28x28 images with random labels: enough for a convnet to memorize.
pub fn noise_images(n: usize, seed: u64) -> LabeledImages {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    LabeledImages {
        images: (0..n * 28 * 28).map(|_| rng.random()).collect(),
        labels: (0..n).map(|_| rng.random_range(0..10)).collect(),
        channels: 1,
        height: 28,
        width: 28,
    }
}
