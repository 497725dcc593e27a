//! The networks: seeded initialization as the paper's code draws it, output shapes, and the
//! hand-written layers (LRN) against a direct computation.

mod common;

use burn::prelude::*;
use common::{flat_host, host, params, random_input, small_cifar_config, small_lstm_config};
use levelset_models::backend::{Compute, device};
use levelset_models::flat::{flatten, unflatten};
use levelset_models::nets::described::{Activations, NormMode, Op};
use levelset_models::nets::{
    CifarConvConfig, Described, DescribedConfig, Lrn, MlpConfig, ResnetConfig, Shortcut,
};
use levelset_models::pattern::Pattern;

#[test]
fn same_seed_same_parameters_different_seed_different_parameters() {
    let dev = device();
    let mlp = MlpConfig::quadratic();
    let mnist = common::small_mnist_config();
    let cifar = small_cifar_config();
    let lstm = small_lstm_config(50);
    let pairs = [
        (
            flat_host(&mlp.init::<Compute>(7, &dev)),
            flat_host(&mlp.init::<Compute>(7, &dev)),
            flat_host(&mlp.init::<Compute>(8, &dev)),
        ),
        (
            flat_host(&mnist.init::<Compute>(7, &dev)),
            flat_host(&mnist.init::<Compute>(7, &dev)),
            flat_host(&mnist.init::<Compute>(8, &dev)),
        ),
        (
            flat_host(&cifar.init::<Compute>(7, &dev)),
            flat_host(&cifar.init::<Compute>(7, &dev)),
            flat_host(&cifar.init::<Compute>(8, &dev)),
        ),
        (
            flat_host(&lstm.init::<Compute>(7, &dev)),
            flat_host(&lstm.init::<Compute>(7, &dev)),
            flat_host(&lstm.init::<Compute>(8, &dev)),
        ),
    ];
    for (i, (a, again, other)) in pairs.iter().enumerate() {
        assert_eq!(a, again, "network {i}: same seed");
        assert_ne!(a, other, "network {i}: different seed");
    }
}

#[test]
fn initialization_does_not_depend_on_the_global_backend_rng() {
    // Burn's own initializers draw from a process-wide RNG; levelset's must not, or parallel
    // trainings would change each other's models.
    let dev = device();
    let config = MlpConfig::cubic();
    let first = flat_host(&config.init::<Compute>(3, &dev));
    Compute::seed(&dev, 12345);
    let _ = Tensor::<Compute, 1>::random([100], burn::tensor::Distribution::Default, &dev);
    assert_eq!(first, flat_host(&config.init::<Compute>(3, &dev)));
}

#[test]
fn polynomial_mlp_draws_weights_and_biases_from_u_minus1_1() {
    let values = flat_host(&MlpConfig::quadratic_biased().init::<Compute>(11, &device()));
    assert_eq!(values.len(), 33);
    assert!(values.iter().all(|v| (-1.0..1.0).contains(v)), "{values:?}");
    // Spread over the interval, not e.g. a constant or Burn's small default init.
    let (min, max) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(min < -0.5 && max > 0.5, "range [{min}, {max}]");
}

#[test]
fn fan_in_scaling_divides_each_layer_by_the_root_of_its_inputs() {
    use levelset_models::init::Init;
    use levelset_models::nets::Activation;
    let (d_in, width) = (4, 400);
    let config = MlpConfig {
        widths: vec![d_in, width, 1],
        hidden: Activation::Relu,
        output: Activation::Identity,
        bias: false,
        weight_init: Init::Normal { std: 2f32.sqrt() },
        bias_init: Init::Constant { value: 0.0 },
        fan_in_scaled: true,
    };
    // Without biases, the parameters are the layers' weights in order.
    let weights = params(&config.init::<Compute>(5, &device()));
    let std = |layer: usize| {
        let w = &weights[layer].1;
        (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt()
    };
    // He init: N(0, 2 / fan-in) per layer (1,600 and 400 draws: within 10%).
    let expected = |fan_in: usize| (2.0 / fan_in as f32).sqrt();
    for (layer, fan_in) in [(0, d_in), (1, width)] {
        let ratio = std(layer) / expected(fan_in);
        assert!(
            (0.9..1.1).contains(&ratio),
            "layer {layer}: std ratio {ratio}"
        );
    }
    // Unscaled, both layers share one spread.
    let plain = MlpConfig {
        fan_in_scaled: false,
        ..config
    }
    .init::<Compute>(5, &device());
    let w = &params(&plain)[1].1;
    let plain_std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((plain_std / 2f32.sqrt() - 1.0).abs() < 0.1, "{plain_std}");
}

#[test]
fn mnist_conv_biases_are_0_1_and_weights_are_truncated_normal() {
    let model = common::small_mnist_config().init::<Compute>(4, &device());
    let mut weights = Vec::new();
    let mut bias_count = 0;
    for (shape, values, _) in params(&model) {
        if shape.len() == 1 {
            bias_count += 1;
            assert!(values.iter().all(|&b| b == 0.1), "bias {shape:?}");
        } else {
            weights.extend(values);
        }
    }
    assert_eq!(bias_count, 4);
    assert!(
        weights.iter().all(|w| w.abs() <= 0.2),
        "weights outside two standard deviations"
    );
    // A normal truncated at 2 sigma has std 0.88 sigma; a cut at 1 sigma would give 0.54.
    let n = weights.len() as f64;
    let mean = weights.iter().map(|&w| f64::from(w)).sum::<f64>() / n;
    let std = (weights
        .iter()
        .map(|&w| (f64::from(w) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(mean.abs() < 0.005, "mean {mean}");
    assert!((std - 0.088).abs() < 0.004, "std {std}");
    assert!(weights.iter().any(|w| w.abs() > 0.18));
}

#[test]
fn cifar_conv_follows_the_tutorial_init_table() {
    let model = small_cifar_config().init::<Compute>(2, &device());
    // Weight and bias of conv1, conv2, fc1, fc2, fc3, in order.
    let params: Vec<Vec<f32>> = common::params(&model)
        .into_iter()
        .map(|(_, values, _)| values)
        .collect();
    assert_eq!(params.len(), 10);
    for (bias, value) in [(1, 0.0), (3, 0.1), (5, 0.1), (7, 0.1), (9, 0.0)] {
        assert!(params[bias].iter().all(|&v| v == value), "parameter {bias}");
    }
    for (weight, std) in [(0, 5e-2), (2, 5e-2), (4, 0.04), (6, 0.04), (8, 1.0 / 192.0)] {
        let values = &params[weight];
        assert!(
            values.iter().all(|v| v.abs() <= 2.0 * std) && values.iter().any(|&v| v != 0.0),
            "parameter {weight}"
        );
    }
}

#[test]
fn lstm_parameters_are_uniform_in_init_scale() {
    let config = small_lstm_config(50);
    let values = flat_host(&config.init::<Compute>(1, &device()));
    let s = config.init_scale;
    assert!(values.iter().all(|v| (-s..s).contains(v)));
    assert!(values.iter().any(|v| v.abs() > 0.9 * s));
}

#[test]
fn mnist_conv_maps_images_to_ten_logits() {
    let model = common::small_mnist_config().init::<Compute>(0, &device());
    let x = random_input([2, 1, 28, 28], 3);
    assert_eq!(model.forward(x.clone(), None).dims(), [2, 10]);

    // Evaluation (no RNG) is deterministic; training applies dropout to the hidden layer.
    assert_eq!(
        host(model.forward(x.clone(), None)),
        host(model.forward(x.clone(), None))
    );
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let train = host(model.forward(x.clone(), Some(&mut rng)));
    assert_eq!(train.len(), 20);
    assert_ne!(train, host(model.forward(x, None)));
}

#[test]
fn default_cifar_conv_maps_24x24_crops_to_ten_logits() {
    let model = CifarConvConfig::default().init::<Compute>(0, &device());
    // fc1 sees 64 channels of 6x6 after the two stride-2 pools (24 -> 12 -> 6).
    assert_eq!(common::params(&model)[4].0, vec![6 * 6 * 64, 384]);
    let out = model.forward(random_input([2, 3, 24, 24], 1), None);
    assert_eq!(out.dims(), [2, 10]);
    assert!(host(out).iter().all(|v| v.is_finite()));
}

#[test]
fn cifar_weight_penalty_is_decay_times_half_squared_norm_of_hidden_fc_weights() {
    let model = small_cifar_config().init::<Compute>(0, &device());
    let params = common::params(&model);
    let sq = |values: &[f32]| values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
    let expected = 0.004 * (sq(&params[4].1) + sq(&params[6].1)) / 2.0;
    let got = model
        .weight_penalty()
        .expect("the hidden layers are decayed")
        .into_scalar()
        .elem::<f64>();
    assert!(
        (got - expected).abs() < 1e-4 * expected,
        "{got} vs {expected}"
    );
}

#[test]
fn lstm_lm_shapes_and_carried_state() {
    let config = small_lstm_config(50);
    let model = config.init::<Compute>(0, &device());
    let ids: Vec<i64> = (0..15).map(|i| (i * 11) % 50).collect();
    let tokens = Tensor::<Compute, 2, Int>::from_data(TensorData::new(ids, [3, 5]), &device());
    let (logits, state) = model.forward(tokens.clone(), None);
    assert_eq!(logits.dims(), [3, 5, 50]);
    assert_eq!(state.len(), 2);
    for layer in &state {
        assert_eq!(layer.hidden.dims(), [3, 8]);
        assert_eq!(layer.cell.dims(), [3, 8]);
    }
    let fresh = host(logits);
    assert_eq!(fresh, host(model.forward(tokens.clone(), None).0));
    let (carried, _) = model.forward(tokens, Some(state));
    let carried = host(carried);
    assert_ne!(fresh, carried, "a carried state must change the output");
}

#[test]
fn lstm_lm_is_causal_and_keeps_streams_apart() {
    // Truncated BPTT over parallel streams relies on the LSTM reading [batch, steps] input
    // batch-first: a token may only influence later positions of its own stream.
    let model = small_lstm_config(50).init::<Compute>(3, &device());
    let run = |ids: Vec<i64>| {
        let tokens = Tensor::<Compute, 2, Int>::from_data(TensorData::new(ids, [2, 6]), &device());
        host(model.forward(tokens, None).0)
    };
    let base: Vec<i64> = (0..12).map(|i| (i * 13) % 50).collect();
    let logits = run(base.clone());
    let at = |v: &[f32], stream: usize, step: usize| v[(stream * 6 + step) * 50..][..50].to_vec();

    let mut later = base.clone();
    later[4] = (later[4] + 1) % 50; // stream 0, step 4
    let changed = run(later);
    for step in 0..4 {
        assert_eq!(
            at(&changed, 0, step),
            at(&logits, 0, step),
            "step {step} saw the future"
        );
    }
    assert_ne!(at(&changed, 0, 4), at(&logits, 0, 4));
    for step in 0..6 {
        assert_eq!(
            at(&changed, 1, step),
            at(&logits, 1, step),
            "stream 1 saw stream 0"
        );
    }
}

#[test]
fn lstm_config_rejects_a_non_positive_init_scale() {
    let mut config = small_lstm_config(50);
    assert!(config.validate().is_ok());
    for bad in [0.0, -0.1, f32::NAN] {
        config.init_scale = bad;
        let err = config.validate().expect_err("init_scale must be positive");
        assert!(err.contains("init_scale"), "{err}");
    }
}

#[test]
fn lrn_matches_tensorflow_formula() {
    let lrn = Lrn::tf_cifar10();
    let (c, h, w) = (12, 2, 2);
    // Large inputs so the normalization is far from the identity.
    let x = random_input([1, c, h, w], 9).mul_scalar(30.0);
    let xs = host(x.clone());
    let got = host(lrn.forward(x));
    let at = |ch: usize, i: usize, j: usize| f64::from(xs[(ch * h + i) * w + j]);
    let r = lrn.depth_radius;
    let mut moved = 0.0_f64;
    for ch in 0..c {
        for i in 0..h {
            for j in 0..w {
                let lo = ch.saturating_sub(r);
                let hi = (ch + r).min(c - 1);
                let sum: f64 = (lo..=hi).map(|k| at(k, i, j).powi(2)).sum();
                let expected = at(ch, i, j) / (lrn.bias + lrn.alpha * sum).powf(lrn.beta);
                let g = f64::from(got[(ch * h + i) * w + j]);
                assert!(
                    (g - expected).abs() < 1e-5 * (1.0 + expected.abs()),
                    "channel {ch} ({i},{j}): {g} vs {expected}"
                );
                moved = moved.max((at(ch, i, j) - expected).abs());
            }
        }
    }
    assert!(moved > 0.1, "the test input should be visibly normalized");
}

#[test]
fn initialization_is_independent_of_data_drawn_from_the_same_seed() {
    // Experiments pass one seed both to `init` and to the data generators (fresh polynomial
    // samples per model); the generators read stream 0 of ChaCha8(seed), so the initializer
    // must read another stream or the weights would be a function of the training inputs.
    let seed = 17;
    let weights = flat_host(&MlpConfig::quadratic().init::<Compute>(seed, &device()));
    let data = levelset_data::polynomial(levelset_data::Polynomial::Quadratic, weights.len(), seed);
    let tied = weights
        .iter()
        .zip(&data.x)
        .filter(|&(w, x)| (w - (2.0 * x - 1.0)).abs() < 1e-3)
        .count();
    assert!(
        tied <= 1,
        "{tied} of {} weights equal 2x - 1 of the training inputs",
        weights.len()
    );
}

/// The patterned forward (ReLU and max pooling recording or holding the activation pattern,
/// every op run alone) computes the ordinary fused forward at the point it records: on the
/// paper's convnets (fused convolution, ReLU and pooling; the CIFAR-10 net's TensorFlow
/// 'same' pools, padded more on one side) and a ResNet (blocks, batch normalization).
#[test]
fn a_patterned_forward_records_and_holds_the_ordinary_forward() {
    let resnet = ResnetConfig {
        width: 1,
        ..ResnetConfig::new(8, Shortcut::A)
    };
    let resnet = DescribedConfig::new(resnet.description(10).unwrap(), [3, 16, 16], 10).unwrap();
    let dev = device();
    let (mnist, cifar) = (common::small_mnist_config(), small_cifar_config());
    // Each net with an input batch and another seed's net.
    type Case = (
        &'static str,
        Described<Compute>,
        Tensor<Compute, 4>,
        Described<Compute>,
    );
    let nets: [Case; 3] = [
        (
            "mnist",
            mnist.init(1, &dev),
            random_input([3, 1, 28, 28], 2),
            mnist.init(2, &dev),
        ),
        (
            "cifar10",
            cifar.init(1, &dev),
            random_input([3, 3, 24, 24], 3),
            cifar.init(2, &dev),
        ),
        (
            "resnet8",
            resnet.init(1, &dev),
            random_input([4, 3, 16, 16], 4),
            resnet.init(2, &dev),
        ),
    ];
    for (what, net, x, other) in nets {
        let switching = net
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Relu | Op::MaxPool2d(_)))
            .count();
        let plain = host(net.forward_with(x.clone(), None, NormMode::Batch));
        let mut pattern = Pattern::recording();
        let image = || Activations::Image(x.clone());
        let recorded = host(net.forward_patterned(image(), NormMode::Batch, &mut pattern));
        assert_eq!(pattern.switching_layers(), switching, "{what}");
        let held = host(net.forward_patterned(image(), NormMode::Batch, &mut pattern.held()));
        common::assert_close(&plain, &recorded, 1e-5, what);
        common::assert_close(&plain, &held, 1e-5, what);
        // Held at other weights (halfway to another seed's), the net stays on the recorded
        // piece: its outputs are not the ordinary ones there.
        let halfway = (flatten(&net) + flatten(&other)).mul_scalar(0.5);
        let moved = unflatten(net.clone(), halfway);
        let ordinary = host(moved.forward_with(x.clone(), None, NormMode::Batch));
        let kept = host(moved.forward_patterned(image(), NormMode::Batch, &mut pattern.held()));
        let scale = ordinary.iter().fold(0f32, |m, a| m.max(a.abs()));
        assert!(
            ordinary
                .iter()
                .zip(&kept)
                .any(|(a, b)| (a - b).abs() > 1e-3 * scale),
            "{what}: a held pattern changed nothing at other weights"
        );
    }
}
