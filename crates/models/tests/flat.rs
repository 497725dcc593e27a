//! Flat parameter vectors: every path method moves models through these, so a round trip that
//! loses or reorders a single value would silently corrupt every curve.

mod common;

use std::collections::HashSet;

use burn::module::Module;
use burn::prelude::*;
use common::{assert_close, flat_host, host, params, random_input};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{distance, flatten, lerp, load_flat, num_params, unflatten};
use levelset_models::nets::described::Layer;
use levelset_models::nets::{CifarConvConfig, Described, LstmLmConfig, MlpConfig, MnistConvConfig};

/// Checks the flat-vector contract on one architecture: `build(seed)` makes a model,
/// `forward` runs it on a fixed input.
fn check_round_trip<M: Module<Compute>>(
    build: impl Fn(u64) -> M,
    forward: impl Fn(&M) -> Vec<f32>,
) {
    let model = build(1);
    let flat = flatten(&model);
    let values = host(flat.clone());
    assert_eq!(values.len(), num_params(&model));
    assert_eq!(values.len(), model.num_params());

    // A differently seeded template must not leak into the result.
    let rebuilt = unflatten(build(2), flat.clone());
    assert_eq!(flat_host(&rebuilt), values, "unflatten then flatten");
    assert_eq!(forward(&rebuilt), forward(&model), "unflatten forward");

    let loaded = load_flat(build(3), flat);
    assert_eq!(flat_host(&loaded), values, "load_flat then flatten");
    assert_eq!(forward(&loaded), forward(&model), "load_flat forward");

    // Each parameter tensor keeps its own shape and values (no reordering between tensors
    // of equal size).
    for ((shape_a, a, _), (shape_b, b, _)) in params(&model).iter().zip(params(&loaded).iter()) {
        assert_eq!(shape_a, shape_b);
        assert_eq!(a, b);
    }
}

#[test]
fn mlp_quadratic_and_cubic_round_trip() {
    // 1-4-4-1 without biases: 4 + 16 + 4 weights; with biases (1+1)*4 + (4+1)*4 + (4+1)*1.
    let configs = [
        (MlpConfig::quadratic(), 24),
        (MlpConfig::quadratic_biased(), 33),
        (MlpConfig::cubic(), 33),
    ];
    for (config, params) in configs {
        check_round_trip(
            |seed| config.init::<Compute>(seed, &device()),
            |m| host(m.forward_flat(random_input([5, 1], 7), None)),
        );
        assert_eq!(config.init::<Compute>(0, &device()).num_params(), params);
    }
}

#[test]
fn mnist_conv_round_trip() {
    let config = MnistConvConfig {
        conv1: 4,
        conv2: 8,
        hidden: 16,
        dropout: 0.5,
    };
    check_round_trip(
        |seed| config.init::<Compute>(seed, &device()),
        |m| host(m.forward(random_input([2, 1, 28, 28], 7), None)),
    );
}

#[test]
fn cifar_conv_round_trip() {
    let config = common::small_cifar_config();
    check_round_trip(
        |seed| config.init::<Compute>(seed, &device()),
        |m| host(m.forward(random_input([2, 3, 24, 24], 7), None)),
    );
}

#[test]
fn lstm_lm_round_trip() {
    let config = LstmLmConfig {
        vocab: 50,
        embed: 8,
        hidden: 8,
        layers: 2,
        init_scale: 0.1,
    };
    let tokens = || {
        let ids: Vec<i64> = (0..12).map(|i| (i * 7) % 50).collect();
        Tensor::<Compute, 2, Int>::from_data(TensorData::new(ids, [2, 6]), &device())
    };
    check_round_trip(
        |seed| config.init::<Compute>(seed, &device()),
        |m| host(m.forward(tokens(), None).0),
    );
}

#[test]
fn default_cifar_conv_has_the_tutorial_parameter_count() {
    let model = CifarConvConfig::default().init::<Compute>(0, &device());
    // conv 5x5x3x64, conv 5x5x64x64, fc 2304x384, fc 384x192, fc 192x10, with biases.
    let expected = (75 * 64 + 64)
        + (1600 * 64 + 64)
        + (2304 * 384 + 384)
        + (384 * 192 + 192)
        + (192 * 10 + 10);
    assert_eq!(num_params(&model), expected);
}

#[test]
fn lerp_hits_the_endpoints_and_distance_is_euclidean() {
    let dev = device();
    let a = Tensor::<Compute, 1>::from_floats([1.0, -2.0, 3.5, 0.0], &dev);
    let b = Tensor::<Compute, 1>::from_floats([4.0, 2.0, 3.5, -1.0], &dev);
    assert_eq!(host(lerp(&a, &b, 0.0)), host(a.clone()));
    // a + (b - a) may differ from b by rounding, so t = 1 is compared to a tolerance.
    assert_close(&host(lerp(&a, &b, 1.0)), &host(b.clone()), 1e-6, "lerp(1)");
    assert_close(
        &host(lerp(&a, &b, 0.25)),
        &[1.75, -1.0, 3.5, -0.25],
        1e-6,
        "lerp(0.25)",
    );
    // sqrt(3^2 + 4^2 + 0 + 1^2)
    assert!((distance(&a, &b) - 26f64.sqrt()).abs() < 1e-6);
    assert_eq!(distance(&a, &a), 0.0);

    // On real models: the distance of two initializations equals the host computation, and
    // the midpoint is half way.
    let config = MlpConfig::quadratic();
    let fa = flatten(&config.init::<Compute>(1, &dev));
    let fb = flatten(&config.init::<Compute>(2, &dev));
    let (ha, hb) = (host(fa.clone()), host(fb.clone()));
    let by_hand = ha
        .iter()
        .zip(&hb)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        .sqrt();
    let d = distance(&fa, &fb);
    assert!((d - by_hand).abs() < 1e-5 * by_hand, "{d} vs {by_hand}");
    let mid = lerp(&fa, &fb, 0.5);
    assert!((distance(&fa, &mid) - d / 2.0).abs() < 1e-5 * d);
    assert!((distance(&mid, &fb) - d / 2.0).abs() < 1e-5 * d);
}

#[test]
#[should_panic(expected = "flat vector of")]
fn unflatten_rejects_a_vector_of_another_model() {
    let dev = device();
    let small = MnistConvConfig {
        conv1: 2,
        conv2: 4,
        hidden: 8,
        dropout: 0.5,
    };
    let large = MnistConvConfig {
        conv1: 4,
        ..small.clone()
    };
    let flat = flatten(&small.init::<Compute>(0, &dev));
    let _: Described<Compute> = unflatten(large.init::<Compute>(0, &dev), flat);
}

#[test]
#[should_panic(expected = "flat vector of")]
fn load_flat_rejects_a_longer_vector() {
    let dev = device();
    let model = MlpConfig::quadratic().init::<Compute>(0, &dev);
    let flat = Tensor::cat(vec![flatten(&model), Tensor::zeros([1], &dev)], 0);
    let _ = load_flat(model, flat);
}

#[test]
fn load_flat_gives_fresh_trainable_leaves() {
    let dev = device();
    let template = MlpConfig::quadratic().init::<Train>(0, &dev);
    let template_ids: HashSet<_> = params(&template).into_iter().map(|p| p.2).collect();
    // A flat vector that is part of a graph (the sum of two models), as a path point is.
    let graph = flatten(&template) + flatten(&MlpConfig::quadratic().init::<Train>(1, &dev));
    let loaded = load_flat(template.clone(), graph);
    let loaded_params = params(&loaded);
    assert!(
        loaded_params.iter().all(|p| !template_ids.contains(&p.2)),
        "load_flat must give new parameter ids so optimizers keep copies apart"
    );
    let ids: HashSet<_> = loaded_params.iter().map(|p| p.2).collect();
    assert_eq!(ids.len(), loaded_params.len(), "ids are distinct");

    struct Leaves(Vec<bool>);
    impl burn::module::ModuleVisitor<Train> for Leaves {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<Train, D>>) {
            self.0.push(param.val().is_require_grad());
        }
    }
    let mut leaves = Leaves(Vec::new());
    loaded.visit(&mut leaves);
    assert!(
        leaves.0.iter().all(|&r| r),
        "loaded parameters require grad"
    );

    // Being leaves, their gradients exist on their own and do not reach the source graph.
    let out = loaded.forward_flat(Tensor::ones([3, 1], &dev), None).sum();
    let grads = out.backward();
    let first_weight = |net: &Described<Train>| match &net.layers[0] {
        Some(Layer::Linear(linear)) => linear.weight.val(),
        _ => panic!("an MLP begins with a linear layer"),
    };
    assert!(first_weight(&loaded).grad(&grads).is_some());
    assert!(first_weight(&template).grad(&grads).is_none());
}

#[test]
fn weight_mask_selects_the_weight_entries_of_the_flat_vector() {
    let model = MlpConfig::quadratic_biased().init::<Compute>(0, &device());
    let mask = host(levelset_models::flat::weight_mask(&model));
    assert_eq!(mask.len(), num_params(&model));
    // Per layer, Linear visits its weight then its bias: 1x4 + 4, 4x4 + 4, 4x1 + 1.
    let expected: Vec<f32> = [(4, 4), (16, 4), (4, 1)]
        .iter()
        .flat_map(|&(w, b)| std::iter::repeat_n(1.0, w).chain(std::iter::repeat_n(0.0, b)))
        .collect();
    assert_eq!(mask, expected);
}
