//! Training to a level on the regression landscapes, and the optimizer configuration.

mod common;

use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::{flat_host, host, param_grads_flat, stacked_and_pointwise};
use indicatif::ProgressBar;
use levelset_data::{Polynomial, linear_regression, polynomial};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{distance, flatten};
use levelset_models::landscape::{StackedPass, cpu_backend};
use levelset_models::nets::described::Shape;
use levelset_models::nets::{Activation, Described, DescribedConfig, MlpConfig, NetDescription};
use levelset_models::optim::{LrDecay, OptimizerConfig, RateSchedule};
use levelset_models::tasks::{RegressionLoss, RegressionTask, TrainSample};
use levelset_models::train::{
    StopRule, TrainError, TrainSettings, train_to_level, train_to_levels, train_to_levels_observed,
};
use levelset_models::{Architecture, Energy, Landscape};

fn quadratic_task(energy: Energy, sample: TrainSample) -> Result<RegressionTask<Train>, String> {
    RegressionTask::<Train>::new(
        Architecture::Mlp(MlpConfig::quadratic()),
        RegressionLoss::Mae,
        energy,
        sample,
        &polynomial(Polynomial::Quadratic, 500, 1_000),
        0,
        None,
        &device(),
    )
}

fn fresh_quadratic() -> TrainSample {
    TrainSample::Fresh(Arc::new(|seed| {
        polynomial(Polynomial::Quadratic, 500, seed)
    }))
}

fn adam(lr: f64, check_every: usize, max_steps: usize) -> TrainSettings {
    TrainSettings {
        optimizer: OptimizerConfig::Adam {
            lr,
            weight_decay: None,
        },
        check_every,
        max_steps,
        stop: Default::default(),
    }
}

#[test]
fn quadratic_net_reaches_an_easy_level_deterministically() {
    let task = quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap();
    let settings = adam(1e-2, 10, 2_000);
    let level = 0.05;
    let run = || {
        let model = task.init(3);
        assert!(
            task.energy(&model.valid()) > level,
            "untrained model is already there"
        );
        train_to_level(&task, model, level, &settings, 3, &ProgressBar::hidden())
            .expect("an easy level is reached")
    };
    let first = run();
    assert!(first.energy <= level, "reported energy {}", first.energy);
    assert!(first.steps > 0 && first.steps <= settings.max_steps);
    assert_eq!(first.steps % settings.check_every, 0);
    // The reported energy is the model's.
    let again = task.energy(&first.model.valid());
    assert_eq!(again, first.energy);

    let second = run();
    assert_eq!(second.steps, first.steps);
    assert_eq!(
        flat_host(&second.model),
        flat_host(&first.model),
        "same seed, same model"
    );
}

#[test]
fn several_levels_along_one_trajectory_match_training_for_each_alone() {
    let task = quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap();
    let settings = adam(1e-2, 10, 400);
    let (high, low, unreachable) = (0.2, 0.05, 1e-9);
    let results = train_to_levels(
        &task,
        task.init(4),
        &[high, low, unreachable],
        &settings,
        4,
        &ProgressBar::hidden(),
    );
    assert_eq!(results.len(), 3);
    for (result, level) in results.iter().zip([high, low]) {
        let together = result.as_ref().expect("reachable level");
        let alone = train_to_level(
            &task,
            task.init(4),
            level,
            &settings,
            4,
            &ProgressBar::hidden(),
        )
        .unwrap();
        assert_eq!(together.steps, alone.steps, "level {level}");
        assert_eq!(together.energy, alone.energy, "level {level}");
        assert_eq!(flat_host(&together.model), flat_host(&alone.model));
    }
    let (first, second) = (results[0].as_ref().unwrap(), results[1].as_ref().unwrap());
    assert!(first.steps < second.steps, "the higher level comes first");
    // The level nobody reaches fails with its own target, after the whole budget.
    match &results[2] {
        Err(TrainError::NotReached {
            target, max_steps, ..
        }) => {
            assert_eq!(*target, unreachable);
            assert_eq!(*max_steps, settings.max_steps);
        }
        other => panic!(
            "expected NotReached, got {:?}",
            other.as_ref().map(|t| t.steps)
        ),
    }
}

/// The authors' endpoint rule: training stops at the first multiple of `check_every` steps
/// where the mean of the losses of those steps (each before its update) is at most the level.
#[test]
fn train_loss_mean_stops_where_the_window_mean_first_reaches_the_level() {
    let task = quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap();
    let settings = TrainSettings {
        stop: StopRule::TrainLossMean {
            energy_every: 1_000_000,
        },
        ..adam(1e-2, 5, 2_000)
    };
    let (level, seed) = (0.06, 3);
    let trained = train_to_level(
        &task,
        task.init(seed),
        level,
        &settings,
        seed,
        &ProgressBar::hidden(),
    )
    .expect("an easy level is reached");
    assert_eq!(trained.steps % 5, 0);

    // The same steps by hand, keeping every loss.
    let loader = task.loader(seed);
    let mut optimizer = settings.optimizer.init::<Train, Described<Train>>();
    let mut model = task.init(seed);
    let mut losses = Vec::new();
    'epochs: for epoch in 0.. {
        let lr = settings.optimizer.learning_rate(epoch);
        for batch in loader.iter() {
            let loss = task.loss(&model, batch, &mut task.carry(seed, epoch));
            losses.push(loss.clone().into_scalar().elem::<f64>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            if losses.len() == trained.steps {
                break 'epochs;
            }
        }
    }
    assert_eq!(flat_host(&model), flat_host(&trained.model));
    let means: Vec<f64> = losses
        .chunks(5)
        .map(|w| w.iter().sum::<f64>() / 5.0)
        .collect();
    let (last, earlier) = means.split_last().unwrap();
    assert!(*last <= level, "stopping window mean {last}");
    assert!(
        earlier.iter().all(|&m| m > level),
        "an earlier window reached it"
    );
    // The recorded energy is the model's test loss, not the training statistic.
    assert_eq!(trained.energy, task.energy(&model.valid()));
}

/// With its training-loss checks out of reach, the rule stops on the energy every
/// `energy_every` steps, as the energy rule does every `check_every`.
#[test]
fn train_loss_mean_also_stops_on_the_energy() {
    let task = quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap();
    let by_energy = adam(1e-2, 10, 2_000);
    let by_mean = TrainSettings {
        stop: StopRule::TrainLossMean { energy_every: 10 },
        ..adam(1e-2, 1_000_000, 2_000)
    };
    let run = |settings: &TrainSettings| {
        train_to_level(
            &task,
            task.init(6),
            0.05,
            settings,
            6,
            &ProgressBar::hidden(),
        )
        .unwrap()
    };
    let (a, b) = (run(&by_energy), run(&by_mean));
    assert_eq!((a.steps, a.energy), (b.steps, b.energy));
    assert_eq!(flat_host(&a.model), flat_host(&b.model));
}

#[test]
fn fixed_sample_minibatches_reach_a_level() {
    let train = Arc::new(polynomial(Polynomial::Quadratic, 400, 5));
    let task = RegressionTask::<Train>::new(
        Architecture::Mlp(MlpConfig::quadratic()),
        RegressionLoss::Mae,
        Energy::TrainLoss,
        TrainSample::Fixed(train),
        &polynomial(Polynomial::Quadratic, 10, 6),
        0,
        Some(100),
        &device(),
    )
    .unwrap();
    let trained = train_to_level(
        &task,
        task.init(1),
        0.05,
        &adam(1e-2, 5, 2_000),
        1,
        &ProgressBar::hidden(),
    )
    .expect("level reached with minibatches");
    assert!(trained.energy <= 0.05);
}

#[test]
fn a_model_already_below_the_level_takes_no_step() {
    let task = quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap();
    let model = task.init(0);
    let before = flat_host(&model);
    let trained = train_to_level(
        &task,
        model,
        10.0,
        &adam(1e-2, 1, 5),
        0,
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(trained.steps, 0);
    assert_eq!(flat_host(&trained.model), before);
}

#[test]
fn an_empty_training_sample_is_reported() {
    let empty = levelset_data::Regression {
        x: Vec::new(),
        y: Vec::new(),
        n: 0,
        d_in: 1,
        d_out: 1,
    };
    let task = quadratic_task(Energy::TestLoss, TrainSample::Fixed(Arc::new(empty))).unwrap();
    let err = train_to_level(
        &task,
        task.init(0),
        1e-9,
        &adam(1e-2, 1, 5),
        0,
        &ProgressBar::hidden(),
    )
    .unwrap_err();
    assert_eq!(err, TrainError::NoData);
}

#[test]
fn unreachable_level_reports_finite_best_and_last() {
    let task = quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap();
    let settings = adam(1e-2, 2, 5);
    let err = train_to_level(
        &task,
        task.init(0),
        1e-9,
        &settings,
        0,
        &ProgressBar::hidden(),
    )
    .unwrap_err();
    match &err {
        TrainError::NotReached {
            energy,
            target,
            max_steps,
            best,
            last,
        } => {
            assert_eq!(*energy, Energy::TestLoss);
            assert_eq!((*target, *max_steps), (1e-9, 5));
            assert!(best.is_finite() && last.is_finite(), "{err}");
            assert!(best <= last && *best > 1e-9);
        }
        other => panic!("expected NotReached, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("test_loss") && message.contains("5 steps"),
        "{message}"
    );
}

#[test]
fn diverging_training_is_reported_as_not_finite() {
    // Without clipping, plain SGD with an absurd learning rate on MSE overflows.
    let data = Arc::new(linear_regression(4, 2, 64, 0.0, 3));
    let config = MlpConfig {
        widths: vec![4, 8, 8, 2],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: false,
        weight_init: levelset_models::init::Init::Normal { std: 0.5 },
        bias_init: levelset_models::init::Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    };
    let task = RegressionTask::<Train>::new(
        Architecture::Mlp(config),
        RegressionLoss::Mse,
        Energy::TrainLoss,
        TrainSample::Fixed(data),
        &linear_regression(4, 2, 8, 0.0, 4),
        0,
        None,
        &device(),
    )
    .unwrap();
    let settings = TrainSettings {
        optimizer: OptimizerConfig::Sgd {
            lr: 1e6,
            momentum: None,
            clip_global_norm: None,
            decay: None,
            weight_decay: None,
            schedule: None,
        },
        check_every: 1,
        max_steps: 50,
        stop: Default::default(),
    };
    let err = train_to_level(
        &task,
        task.init(0),
        1e-12,
        &settings,
        0,
        &ProgressBar::hidden(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NotFinite {
                energy: Energy::TrainLoss,
                ..
            }
        ),
        "{err:?}"
    );

    // The same learning rate with global-norm clipping keeps every step bounded.
    let clipped = TrainSettings {
        optimizer: OptimizerConfig::Sgd {
            lr: 1e6,
            momentum: None,
            clip_global_norm: Some(1e-6),
            decay: None,
            weight_decay: None,
            schedule: None,
        },
        ..settings
    };
    let err = train_to_level(
        &task,
        task.init(0),
        1e-12,
        &clipped,
        0,
        &ProgressBar::hidden(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::NotReached { .. }), "{err:?}");
}

#[test]
fn deep_linear_net_reaches_a_level_with_mse() {
    let config = MlpConfig {
        widths: vec![4, 8, 8, 2],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: true,
        weight_init: levelset_models::init::Init::Normal { std: 0.3 },
        bias_init: levelset_models::init::Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    };
    let task = RegressionTask::<Train>::new(
        Architecture::Mlp(config),
        RegressionLoss::Mse,
        Energy::TestLoss,
        TrainSample::Fixed(Arc::new(linear_regression(4, 2, 256, 0.05, 11))),
        &linear_regression(4, 2, 128, 0.05, 11),
        0,
        None,
        &device(),
    )
    .unwrap();
    let model = task.init(2);
    let start = task.energy(&model.valid());
    let level = 0.02;
    assert!(start > level, "start {start}");
    let trained = train_to_level(
        &task,
        model,
        level,
        &adam(2e-2, 10, 2_000),
        2,
        &ProgressBar::hidden(),
    )
    .expect("a deep linear net fits a linear map");
    assert!(trained.energy <= level);
}

#[test]
fn stacked_regression_energies_match_one_by_one() {
    let relu_no_bias = MlpConfig {
        widths: vec![3, 8, 5, 2],
        hidden: Activation::Relu,
        output: Activation::Identity,
        bias: false,
        weight_init: levelset_models::init::Init::Normal { std: 1.0 },
        bias_init: levelset_models::init::Init::Constant { value: 0.0 },
        fan_in_scaled: true,
    };
    let linear = linear_regression(3, 2, 200, 0.1, 5);
    let tasks = [
        quadratic_task(Energy::TestLoss, fresh_quadratic()).unwrap(),
        RegressionTask::<Train>::new(
            Architecture::Mlp(relu_no_bias),
            RegressionLoss::Mse,
            Energy::TrainLoss,
            TrainSample::Fixed(Arc::new(linear.clone())),
            &linear,
            0,
            None,
            &device(),
        )
        .unwrap(),
    ];
    // The default only where it measured faster: on the GPU backends, not on the CPU.
    let expected = if cpu_backend::<Compute>(&device()) {
        StackedPass::Slower
    } else {
        StackedPass::Faster
    };
    for task in &tasks {
        assert_eq!(task.stacked_pass(&device()), expected);
        let (stacked, pointwise) = stacked_and_pointwise(task);
        for (s, p) in stacked.iter().zip(&pointwise) {
            assert!(
                (s - p).abs() <= 1e-5 * p.abs(),
                "{stacked:?} vs {pointwise:?}"
            );
        }
    }
}

#[test]
fn regression_rejects_energies_it_cannot_compute() {
    for energy in [
        Energy::TestError,
        Energy::TrainError,
        Energy::TestPerplexity,
        Energy::TrainPerplexity,
    ] {
        let err = quadratic_task(energy, fresh_quadratic())
            .err()
            .expect("unsupported energy");
        assert!(err.contains(energy.name()), "{err}");
        assert!(err.contains("regression"), "{err}");
    }
}

#[test]
fn regression_rejects_data_of_the_wrong_width() {
    let err = RegressionTask::<Train>::new(
        Architecture::Mlp(MlpConfig::quadratic()),
        RegressionLoss::Mae,
        Energy::TestLoss,
        fresh_quadratic(),
        &linear_regression(3, 1, 10, 0.0, 0),
        0,
        None,
        &device(),
    )
    .err()
    .expect("3 inputs for a 1-input net");
    assert!(err.contains("3 inputs"), "{err}");
}

/// A net described layer by layer with flat inputs is a regression net: the quadratic preset
/// written out gives the preset's energies; image inputs and dropout are refused with the
/// reason.
#[test]
fn regression_takes_described_nets_with_flat_inputs() {
    let task = |architecture| {
        RegressionTask::<Train>::new(
            architecture,
            RegressionLoss::Mae,
            Energy::TestLoss,
            fresh_quadratic(),
            &polynomial(Polynomial::Quadratic, 50, 0),
            0,
            None,
            &device(),
        )
    };
    let preset = MlpConfig::quadratic();
    let written = Architecture::Described(preset.described().unwrap());
    let (a, b) = (
        task(Architecture::Mlp(preset)).unwrap(),
        task(written).unwrap(),
    );
    for seed in [0, 5] {
        let (net_a, net_b) = (a.init(seed), b.init(seed));
        assert_eq!(
            a.energy(&net_a.valid()).to_bits(),
            b.energy(&net_b.valid()).to_bits()
        );
    }
    let described = |layers: &str, input: Shape| {
        let net: NetDescription = toml::from_str(&format!("layers = [{layers}]")).unwrap();
        Architecture::Described(DescribedConfig::new(net, input, 1).unwrap())
    };
    let tanh = described(
        r#"{ kind = "linear", features = 8 }, { kind = "tanh" }, { kind = "layer_norm" },
           { kind = "linear", features = 1 }"#,
        Shape::Flat(1),
    );
    let task_tanh = task(tanh).unwrap();
    assert!(task_tanh.energy(&task_tanh.init(1).valid()).is_finite());
    let err = task(described(
        r#"{ kind = "linear", features = 8 }, { kind = "dropout", p = 0.5 },
           { kind = "linear", features = 1 }"#,
        Shape::Flat(1),
    ))
    .err()
    .unwrap();
    assert!(err.contains("layers[1] (dropout)"), "{err}");
    let err = task(described(
        r#"{ kind = "flatten" }, { kind = "linear", features = 1 }"#,
        Shape::Image([1, 2, 2]),
    ))
    .err()
    .unwrap();
    assert!(err.contains("rows of features"), "{err}");
}

#[test]
fn train_loss_with_fresh_samples_uses_the_reference_sample() {
    let make = |reference| {
        RegressionTask::<Train>::new(
            Architecture::Mlp(MlpConfig::quadratic()),
            RegressionLoss::Mae,
            Energy::TrainLoss,
            fresh_quadratic(),
            &polynomial(Polynomial::Quadratic, 5, 0),
            reference,
            None,
            &device(),
        )
        .unwrap()
    };
    let model = MlpConfig::quadratic().init::<Compute>(4, &device());
    let by_hand = |seed| {
        let data = polynomial(Polynomial::Quadratic, 500, seed);
        let out = host(model.forward_flat(
            Tensor::from_data(TensorData::new(data.x.clone(), [500, 1]), &device()),
            None,
        ));
        out.iter()
            .zip(&data.y)
            .map(|(p, y)| f64::from((p - y).abs()))
            .sum::<f64>()
            / 500.0
    };
    for reference in [1, 2] {
        let got = make(reference).energy(&model);
        let expected = by_hand(reference);
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }
}

#[test]
fn learning_rate_decays_per_epoch_after_the_threshold() {
    let sgd = OptimizerConfig::Sgd {
        lr: 1.0,
        momentum: None,
        clip_global_norm: Some(5.0),
        decay: Some(LrDecay {
            after_epochs: 4,
            factor: 0.5,
        }),
        weight_decay: None,
        schedule: None,
    };
    let rates: Vec<f64> = (0..7).map(|e| sgd.learning_rate(e)).collect();
    assert_eq!(rates, [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]);
    assert!(sgd.validate().is_ok());
    let adam = OptimizerConfig::Adam {
        lr: 1e-3,
        weight_decay: None,
    };
    assert_eq!(adam.learning_rate(100), 1e-3);
}

#[test]
fn optimizer_validation_rejects_bad_values() {
    let sgd = |lr, momentum, clip| OptimizerConfig::Sgd {
        lr,
        momentum,
        clip_global_norm: clip,
        decay: None,
        weight_decay: None,
        schedule: None,
    };
    let bad = [
        (
            OptimizerConfig::Adam {
                lr: 0.0,
                weight_decay: None,
            },
            "lr",
        ),
        (
            OptimizerConfig::Adam {
                lr: -1e-3,
                weight_decay: None,
            },
            "lr",
        ),
        (
            OptimizerConfig::Adam {
                lr: f64::NAN,
                weight_decay: None,
            },
            "lr",
        ),
        (sgd(0.0, None, None), "lr"),
        (sgd(0.1, Some(1.0), None), "momentum"),
        (sgd(0.1, Some(-0.1), None), "momentum"),
        (sgd(0.1, None, Some(0.0)), "clip_global_norm"),
        (
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: None,
                clip_global_norm: None,
                decay: Some(LrDecay {
                    after_epochs: 1,
                    factor: 0.0,
                }),
                weight_decay: None,
                schedule: None,
            },
            "decay.factor",
        ),
    ];
    for (config, field) in bad {
        let err = config.validate().expect_err("invalid config accepted");
        assert!(err.contains(field), "{config:?}: {err}");
    }
    assert!(sgd(0.1, Some(0.9), Some(5.0)).validate().is_ok());

    let settings = |check_every, max_steps| TrainSettings {
        optimizer: OptimizerConfig::Adam {
            lr: 1e-3,
            weight_decay: None,
        },
        check_every,
        max_steps,
        stop: Default::default(),
    };
    assert!(settings(1, 1).validate().is_ok());
    let zero_energy_every = TrainSettings {
        stop: StopRule::TrainLossMean { energy_every: 0 },
        ..settings(1, 1)
    };
    assert!(
        zero_energy_every
            .validate()
            .unwrap_err()
            .contains("stop.energy_every")
    );
    assert!(
        settings(0, 1)
            .validate()
            .unwrap_err()
            .contains("check_every")
    );
    assert!(settings(1, 0).validate().unwrap_err().contains("max_steps"));
}

#[test]
fn optimizer_config_parses_the_documented_json() {
    let sgd: OptimizerConfig = serde_json::from_str(
        r#"{"kind": "sgd", "lr": 1.0, "clip_global_norm": 5.0,
            "decay": {"after_epochs": 4, "factor": 0.5}}"#,
    )
    .unwrap();
    assert_eq!(
        sgd,
        OptimizerConfig::Sgd {
            lr: 1.0,
            momentum: None,
            clip_global_norm: Some(5.0),
            decay: Some(LrDecay {
                after_epochs: 4,
                factor: 0.5
            }),
            weight_decay: None,
            schedule: None,
        }
    );
    assert!(
        serde_json::from_str::<OptimizerConfig>(r#"{"kind": "adam", "lr": 1, "beta": 2}"#).is_err()
    );
}

/// One SGD step's displacement and the gradient's global norm for the cubic net.
fn sgd_step(lr: f64, clip: Option<f64>) -> (f64, f64, Vec<f32>, Vec<f32>) {
    let dev = device();
    let model: Described<Train> = MlpConfig::cubic().init(8, &dev);
    let data = polynomial(Polynomial::Cubic, 64, 2);
    let x = Tensor::<Train, 2>::from_data(TensorData::new(data.x, [64, 1]), &dev);
    let y = Tensor::<Train, 2>::from_data(TensorData::new(data.y, [64, 1]), &dev);
    let loss = (model.forward_flat(x, None) - y).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let g = param_grads_flat(&model, &grads);
    let norm = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    let config = OptimizerConfig::Sgd {
        lr,
        momentum: None,
        clip_global_norm: clip,
        decay: None,
        weight_decay: None,
        schedule: None,
    };
    let mut opt = config.init::<Train, Described<Train>>();
    let before = flatten(&model).inner();
    let after = opt.step(lr, model, grads);
    let after_flat = flatten(&after).inner();
    let moved = distance(&before, &after_flat);
    let delta: Vec<f32> = host(after_flat)
        .iter()
        .zip(host(before))
        .map(|(a, b)| a - b)
        .collect();
    (moved, norm, delta, g)
}

#[test]
fn global_norm_clipping_bounds_the_step() {
    let (moved, norm, delta, g) = sgd_step(0.1, None);
    assert!(
        norm > 0.1,
        "the test needs a gradient larger than the clip, got {norm}"
    );
    assert!(
        (moved - 0.1 * norm).abs() < 1e-4 * norm,
        "unclipped step {moved}"
    );

    let clip = 0.05;
    let (moved_clipped, _, delta_clipped, _) = sgd_step(0.1, Some(clip));
    assert!(
        (moved_clipped - 0.1 * clip).abs() < 1e-6,
        "clipped step {moved_clipped}, expected {}",
        0.1 * clip
    );
    // Clipping rescales the whole gradient: the step keeps the gradient's direction.
    let scale = clip / norm;
    for ((d, dc), gi) in delta.iter().zip(&delta_clipped).zip(&g) {
        assert!(
            (f64::from(*dc) - scale * f64::from(*d)).abs() < 1e-6,
            "{dc} vs {d} * {scale}"
        );
        assert!((f64::from(*d) + 0.1 * f64::from(*gi)).abs() < 1e-5);
    }

    // A clip above the norm changes nothing.
    let (moved_loose, _, _, _) = sgd_step(0.1, Some(norm * 10.0));
    assert!((moved_loose - moved).abs() < 1e-7);
}

/// SGD at rate 0.1 with `schedule` and `weight_decay`.
fn scheduled(schedule: Option<RateSchedule>, weight_decay: Option<f64>) -> OptimizerConfig {
    OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: Some(0.9),
        clip_global_norm: None,
        decay: None,
        weight_decay,
        schedule,
    }
}

fn step_schedule(at: Vec<f64>, factor: f64) -> Option<RateSchedule> {
    Some(RateSchedule::Step { at, factor })
}

#[test]
fn step_and_cosine_schedules_give_their_rates_per_step() {
    let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    // He et al.: lr 0.1, divided by 10 at half and three quarters of the run.
    let he = scheduled(step_schedule(vec![0.5, 0.75], 0.1), Some(1e-4));
    assert_eq!(he.validate(), Ok(()));
    for (step, want) in [
        (0, 0.1),
        (49, 0.1),
        (50, 0.01),
        (74, 0.01),
        (75, 0.001),
        (99, 0.001),
    ] {
        // The epoch does not matter under a schedule.
        close(he.learning_rate_at(step, 100, 7), want);
    }
    // A milestone that is not a whole step is rounded: 0.25 of 10 steps is step 3 (2.5 up).
    let rounded = scheduled(step_schedule(vec![0.25], 0.5), None);
    close(rounded.learning_rate_at(2, 10, 0), 0.1);
    close(rounded.learning_rate_at(3, 10, 0), 0.05);
    // Cosine from lr to 0 over max_steps.
    let cosine = scheduled(Some(RateSchedule::Cosine {}), None);
    close(cosine.learning_rate_at(0, 100, 0), 0.1);
    close(
        cosine.learning_rate_at(25, 100, 0),
        0.05 * (1.0 + 0.5f64.sqrt()),
    );
    close(cosine.learning_rate_at(50, 100, 0), 0.05);
    close(
        cosine.learning_rate_at(75, 100, 0),
        0.05 * (1.0 - 0.5f64.sqrt()),
    );
    close(cosine.learning_rate_at(100, 100, 0), 0.0);
    // Without a schedule the step's rate is the epoch's, decay included.
    let decaying = OptimizerConfig::Sgd {
        lr: 1.0,
        momentum: None,
        clip_global_norm: None,
        decay: Some(LrDecay {
            after_epochs: 1,
            factor: 0.5,
        }),
        weight_decay: None,
        schedule: None,
    };
    assert_eq!(decaying.learning_rate_at(0, 100, 0), 1.0);
    assert_eq!(decaying.learning_rate_at(0, 100, 2), 0.25);
    let adam = OptimizerConfig::Adam {
        lr: 1e-3,
        weight_decay: Some(0.1),
    };
    assert_eq!(adam.learning_rate_at(99, 100, 9), 1e-3);
}

#[test]
fn schedule_and_weight_decay_values_are_checked_by_name() {
    let with_decay = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: None,
        clip_global_norm: None,
        decay: Some(LrDecay {
            after_epochs: 1,
            factor: 0.5,
        }),
        weight_decay: None,
        schedule: Some(RateSchedule::Cosine {}),
    };
    let bad: Vec<(OptimizerConfig, &[&str])> = vec![
        (with_decay, &["decay", "schedule", "keep one"]),
        (
            scheduled(step_schedule(vec![0.75, 0.5], 0.1), None),
            &["schedule.at", "increasing", "[0.75, 0.5]"],
        ),
        (
            scheduled(step_schedule(vec![0.5, 0.5], 0.1), None),
            &["schedule.at", "strictly increasing"],
        ),
        (
            scheduled(step_schedule(vec![0.0, 0.5], 0.1), None),
            &["schedule.at", "(0, 1)"],
        ),
        (
            scheduled(step_schedule(vec![0.5, 1.0], 0.1), None),
            &["schedule.at", "(0, 1)"],
        ),
        (
            scheduled(step_schedule(vec![], 0.1), None),
            &["schedule.at", "[]"],
        ),
        (
            scheduled(step_schedule(vec![0.5], 0.0), None),
            &["schedule.factor", "positive", "0"],
        ),
        (
            scheduled(step_schedule(vec![0.5], f64::NAN), None),
            &["schedule.factor", "NaN"],
        ),
        (
            scheduled(None, Some(-1e-4)),
            &["weight_decay", ">= 0", "-0.0001"],
        ),
        (
            scheduled(None, Some(f64::INFINITY)),
            &["weight_decay", "finite", "inf"],
        ),
        (
            OptimizerConfig::Adam {
                lr: 1e-3,
                weight_decay: Some(f64::NAN),
            },
            &["weight_decay", "NaN"],
        ),
    ];
    for (config, needles) in bad {
        let err = config.validate().expect_err("invalid config accepted");
        for needle in needles {
            assert!(err.contains(needle), "{config:?}: {err} lacks {needle}");
        }
    }
    assert_eq!(scheduled(None, Some(0.0)).validate(), Ok(()));
}

#[test]
fn schedule_and_weight_decay_parse_and_are_absent_from_old_configs() {
    let config: OptimizerConfig = toml::from_str(
        r#"
        kind = "sgd"
        lr = 0.1
        momentum = 0.9
        weight_decay = 1e-4
        schedule = { kind = "step", at = [0.5, 0.75], factor = 0.1 }
        "#,
    )
    .unwrap();
    assert_eq!(
        config,
        scheduled(step_schedule(vec![0.5, 0.75], 0.1), Some(1e-4))
    );
    let cosine: OptimizerConfig = toml::from_str(
        "kind = \"sgd\"\nlr = 0.1\nmomentum = 0.9\nschedule = { kind = \"cosine\" }",
    )
    .unwrap();
    assert_eq!(cosine, scheduled(Some(RateSchedule::Cosine {}), None));
    let adam: OptimizerConfig =
        toml::from_str("kind = \"adam\"\nlr = 0.001\nweight_decay = 5e-4").unwrap();
    assert_eq!(
        adam,
        OptimizerConfig::Adam {
            lr: 0.001,
            weight_decay: Some(5e-4)
        }
    );
    // Unknown keys and kinds stay errors, inside the schedule too.
    for text in [
        "kind = \"sgd\"\nlr = 0.1\nschedule = { kind = \"cosine\", at = [0.5] }",
        "kind = \"sgd\"\nlr = 0.1\nschedule = { kind = \"step\", at = [0.5], factr = 0.1 }",
        "kind = \"sgd\"\nlr = 0.1\nschedule = { kind = \"linear\" }",
        "kind = \"sgd\"\nlr = 0.1\nweight_decy = 0.1",
    ] {
        assert!(toml::from_str::<OptimizerConfig>(text).is_err(), "{text}");
    }
    // A config without the new keys serializes as before (results files compare configs).
    let json = serde_json::to_string(&scheduled(None, None)).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"sgd","lr":0.1,"momentum":0.9,"clip_global_norm":null,"decay":null}"#
    );
    let back: OptimizerConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}

/// The training loop takes the schedule's rate at every step, within an epoch: a step
/// schedule whose factor stops SGD at step 7 of 10-step epochs leaves the energy where the
/// seventh step left it, while without it the energy keeps moving.
#[test]
fn training_takes_the_scheduled_rate_every_step() {
    let task = RegressionTask::<Train>::new(
        Architecture::Mlp(MlpConfig::quadratic()),
        RegressionLoss::Mae,
        Energy::TestLoss,
        TrainSample::Fixed(Arc::new(polynomial(Polynomial::Quadratic, 500, 4))),
        &polynomial(Polynomial::Quadratic, 200, 1_000),
        0,
        Some(50),
        &device(),
    )
    .unwrap();
    let curve = |schedule: Option<RateSchedule>| {
        let settings = TrainSettings {
            optimizer: OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: None,
                clip_global_norm: None,
                decay: None,
                weight_decay: None,
                schedule,
            },
            check_every: 1,
            max_steps: 20,
            stop: Default::default(),
        };
        let mut energies = Vec::new();
        let results = train_to_levels_observed(
            &task,
            task.init(2),
            &[0.0],
            &settings,
            2,
            &ProgressBar::hidden(),
            |steps, energy| energies.push((steps, energy)),
        );
        assert!(results[0].is_err(), "a zero loss is out of reach");
        assert_eq!(energies.len(), 21);
        energies.into_iter().map(|(_, e)| e).collect::<Vec<f64>>()
    };
    // 0.35 of 20 steps: from step index 7 on, the rate is 0.05 * 1e-30.
    let stopped = curve(step_schedule(vec![0.35], 1e-30));
    let free = curve(None);
    assert_eq!(
        stopped[..=7],
        free[..=7],
        "the same rate up to the milestone"
    );
    for w in stopped[..=7].windows(2) {
        assert!(w[0] != w[1], "steps before the milestone move: {stopped:?}");
    }
    for e in &stopped[8..] {
        assert!((e - stopped[7]).abs() <= 1e-12 * stopped[7], "{stopped:?}");
    }
    assert!((free[20] - free[7]).abs() > 1e-6, "{free:?}");
}
