//! A small cross-section of the backend-generic checks, in one test binary so that CI can also
//! build and run it on `wgpu` (through Mesa's lavapipe, on the CPU) in reasonable time:
//! `cargo test -p levelset-strings --features levelset-models/wgpu --test backend`.
//! It covers autodiff training, convolution and pooling, the stacked (grouped) evaluation
//! GPU backends use for segment checks, and a whole DSS connection.

mod common;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use indicatif::ProgressBar;
use levelset_data::load_mnist;
use levelset_data::testing::real_or_fixture_data_dir;
use levelset_models::backend::{Train, device};
use levelset_models::flat::{flatten, lerps, unflatten};
use levelset_models::landscape::pointwise_energies;
use levelset_models::nets::MnistConvConfig;
use levelset_models::optim::OptimizerConfig;
use levelset_models::tasks::{ImageTask, Pipeline};
use levelset_models::{Energy, Landscape};
use levelset_strings::{DssConfig, Evaluator, InsertAt, LengthOver, Order, Status, connect_dss};

use common::{adam, quadratic_pair};

fn small_mnist(energy: Energy) -> ImageTask<Train, MnistConvConfig> {
    // The committed MNIST extract holds these first images too.
    let mut split = load_mnist(&real_or_fixture_data_dir().join("mnist")).expect("real MNIST data");
    split.train.truncate(200);
    split.test.truncate(300);
    let config = MnistConvConfig {
        conv1: 4,
        conv2: 8,
        hidden: 16,
        dropout: 0.5,
    };
    ImageTask::new(
        config,
        Pipeline::Scale,
        split.train,
        &split.test,
        50,
        energy,
        &device(),
    )
    .unwrap()
}

#[test]
fn the_mnist_convnet_trains_and_its_stacked_energies_match() {
    let task = small_mnist(Energy::TestLoss);
    let template = task.init(0).valid();
    let a = flatten(&task.init(1).valid());
    let b = flatten(&task.init(2).valid());
    let round_trip = flatten(&unflatten(template.clone(), a.clone()));
    assert_eq!(round_trip.into_data(), a.clone().into_data());

    let points = lerps(&a, &b, &[0.0, 0.5, 1.0]);
    let stacked = task.energies(&template, points.clone());
    let pointwise = pointwise_energies(&task, &template, points);
    assert_ne!(pointwise[0], pointwise[2], "the two models differ");
    for (s, p) in stacked.iter().zip(&pointwise) {
        assert!(
            (s - p).abs() <= 1e-4 * p.abs(),
            "{stacked:?} vs {pointwise:?}"
        );
    }

    // Eight Adam steps on one batch lower its loss: gradients flow through conv and pooling.
    let batch = task.loader(3).iter().next().expect("a batch");
    let mut model = task.init(3);
    let optimizer = OptimizerConfig::Adam {
        lr: 1e-2,
        weight_decay: None,
    };
    let mut opt = optimizer.init::<Train, _>();
    let mut rng = task.carry(3, 0);
    let mut losses = vec![];
    for _ in 0..8 {
        let loss = task.loss(&model, batch.clone(), &mut rng);
        losses.push(loss.clone().into_scalar().elem::<f64>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(1e-2, model, grads);
    }
    assert!(
        losses[7] < losses[0],
        "loss did not fall over 8 steps: {losses:?}"
    );
}

#[test]
fn dss_connects_a_quadratic_pair_with_either_evaluation() {
    let (task, a, b) = quadratic_pair(0.05, [3, 4]);
    let stacked = Evaluator::with_stacking(&task, true).segment(&a, &b, 20);
    let pointwise = Evaluator::with_stacking(&task, false).segment(&a, &b, 20);
    for ((t, s), (_, p)) in stacked.iter().zip(&pointwise) {
        assert!((s - p).abs() <= 1e-4 * p.abs(), "t = {t}: {s} vs {p}");
    }
    let config = DssConfig {
        alpha: 0.95,
        slack: 1.1,
        grid: 20,
        insert_at: InsertAt::Midpoint,
        order: Order::BreadthFirst,
        max_depth: 6,
        max_beads: 64,
        first_bead_always: true,
        length_over: LengthOver::All,
        bead: None,
    };
    let (path, report) = connect_dss(
        &task,
        a,
        b,
        0.05,
        &config,
        &adam(0.02, 20_000),
        7,
        &ProgressBar::hidden(),
    )
    .expect("endpoints are valid");
    assert_eq!(report.status, Status::Connected, "{:?}", report.status);
    assert_eq!(path.beads.len(), report.beads);
    assert!(report.normalized_length >= 1.0, "{report:?}");
}
