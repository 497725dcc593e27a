//! Bezier and polychain curves trained by autodiff.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use indicatif::ProgressBar;
use levelset_data::linear_regression;
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train};
use levelset_models::flat::{flatten, unflatten};
use levelset_models::init::Init;
use levelset_models::nets::{Activation, MlpConfig};
use levelset_models::optim::{LrDecay, OptimizerConfig, RateSchedule};
use levelset_models::tasks::{RegressionLoss, RegressionTask};
use levelset_strings::{
    Curve, CurveConfig, CurveKind, Knots, LengthOver, LrSchedule, PathReport, Status, connect_curve,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;
use common::{
    Breakage, adam, appendix_e_pair, assert_breakages_name_their_keys, endpoint, quadratic_pair,
    regression,
};

fn curve(kind: CurveKind, bends: usize, steps: usize, lr: f64) -> CurveConfig {
    CurveConfig {
        kind,
        bends,
        steps,
        t_per_step: 1,
        optimizer: OptimizerConfig::Adam {
            lr,
            weight_decay: None,
        },
        schedule: LrSchedule::garipov(),
        eval_points: 61,
        init_noise: 0.0,
        slack: 1.1,
        length_over: LengthOver::All,
    }
}

fn run<L: Landscape<Train>>(
    task: &L,
    a: &Tensor<Compute, 1>,
    b: &Tensor<Compute, 1>,
    level: f64,
    config: &CurveConfig,
    seed: u64,
) -> PathReport {
    let (path, report) = connect_curve(
        task,
        a.clone(),
        b.clone(),
        level,
        config,
        seed,
        &ProgressBar::hidden(),
    )
    .expect("valid endpoints and config");
    assert_eq!(report.method, config.kind.name());
    assert_eq!(path.beads.len(), config.eval_points);
    assert_eq!(report.segments.len(), report.beads - 1);
    // The endpoints are never trained: the first and last samples are them, bit for bit.
    for (bead, end) in [(&path.beads[0], a), (path.beads.last().unwrap(), b)] {
        bead.to_data().assert_eq(&end.to_data(), true);
    }
    report
}

/// Equations in the convex problem: one fewer than its five parameters.
const ROWS: usize = 4;

/// Noise-free linear regression with one equation fewer than parameters: a convex loss whose
/// minima form a line, rising in every other direction, so the straight path between two
/// minimizers is the only good one.
fn underdetermined() -> RegressionTask<Train> {
    let data = linear_regression(4, 1, ROWS, 0.0, 3);
    let config = MlpConfig {
        widths: vec![4, 1],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: true,
        weight_init: Init::Normal { std: 1.0 },
        bias_init: Init::Normal { std: 1.0 },
        fan_in_scaled: false,
    };
    regression(config, RegressionLoss::Mse, data.clone(), &data)
}

#[test]
fn gradients_reach_every_control_point_and_never_the_endpoints() {
    let task = underdetermined();
    let a = Tensor::<Train, 1>::from_inner(flatten(&task.init(1).valid()));
    let b = Tensor::<Train, 1>::from_inner(flatten(&task.init(2).valid()));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let knots = Knots::on_segment(&a, &b, 3, 0.1, &mut rng);
    let batch = task.loader(0).iter().next().expect("one batch");
    // Polychain control points sit at t = 1/4, 1/2, 3/4: t = 0.3 lies between the first two.
    for (kind, touched) in [
        (CurveKind::Bezier, [true, true, true]),
        (CurveKind::Polychain, [true, true, false]),
    ] {
        let curve = Curve {
            kind,
            first: a.clone(),
            controls: knots.points.val(),
            last: b.clone(),
        };
        let model = unflatten(task.init(0), curve.point(0.3));
        let grads = task.loss(&model, batch.clone(), &mut ()).backward();
        let g = knots
            .points
            .grad(&grads)
            .expect("control points get a gradient");
        let norms: Vec<f64> = g
            .powi_scalar(2)
            .sum_dim(1)
            .into_data()
            .iter::<f64>()
            .collect();
        for (k, (norm, touched)) in norms.iter().zip(touched).enumerate() {
            assert_eq!(*norm > 0.0, touched, "{kind:?} control point {k}: {norm}");
        }
        assert!(a.grad(&grads).is_none() && b.grad(&grads).is_none());
        // The optimizer sees the control points and nothing else.
        assert_eq!(GradientsParams::from_grads(grads, &knots).len(), 1);
    }
}

#[test]
fn a_curve_between_minima_of_a_convex_loss_stays_straight() {
    let task = underdetermined();
    let settings = adam(0.01, 20_000);
    let a = endpoint(&task, 1e-6, 1, &settings);
    let b = endpoint(&task, 1e-6, 2, &settings);
    for kind in [CurveKind::Bezier, CurveKind::Polychain] {
        // The control points start off the line; training must bring them back.
        let mut config = curve(kind, 2, 0, 0.01);
        config.init_noise = 0.1;
        let start = run(&task, &a, &b, 1e-4, &config, 1);
        config.steps = 1000;
        let trained = run(&task, &a, &b, 1e-4, &config, 1);
        assert!(
            start.normalized_length > 1.0 + 5e-3,
            "{}",
            start.normalized_length
        );
        assert_eq!(trained.status, Status::Connected, "{kind:?}");
        assert!(
            (trained.normalized_length - 1.0).abs() < 1e-3,
            "{kind:?}: {}",
            trained.normalized_length
        );
        assert_eq!(trained.bead_steps, 1000);
    }
}

#[test]
fn trained_curves_connect_a_pair_the_straight_line_does_not() {
    let level = 0.05;
    let (task, a, b) = quadratic_pair(level, [40, 41]);
    for kind in [CurveKind::Bezier, CurveKind::Polychain] {
        let report = run(&task, &a, &b, level, &curve(kind, 1, 1000, 0.02), 3);
        assert!(
            report.linear_barrier > 2.0 * level,
            "{}",
            report.linear_barrier
        );
        assert_eq!(report.status, Status::Connected, "{kind:?}");
        assert!(report.max_energy <= 1.1 * level);
        assert!(
            report.normalized_length > 1.05,
            "{}",
            report.normalized_length
        );
    }
}

#[test]
fn same_seed_gives_the_same_curve() {
    let (task, a, b) = appendix_e_pair();
    let mut config = curve(CurveKind::Bezier, 2, 100, 0.02);
    config.init_noise = 0.1;
    config.t_per_step = 2;
    let runs: Vec<PathReport> = [5, 5, 6]
        .into_iter()
        .map(|seed| PathReport {
            wall_seconds: 0.0,
            ..run(&task, &a, &b, 2.0, &config, seed)
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0].bead_energies, runs[2].bead_energies);
}

#[test]
fn bad_configs_name_the_key() {
    let (task, a, b) = appendix_e_pair();
    let good = curve(CurveKind::Bezier, 1, 10, 0.01);
    let breakages: [Breakage<CurveConfig>; 11] = [
        ("curve.bends must be at most", |c| c.bends = usize::MAX),
        ("curve.eval_points must be at most", |c| {
            c.eval_points = 1 << 50
        }),
        ("curve.t_per_step must be at most", |c| {
            c.t_per_step = usize::MAX
        }),
        ("curve.bends", |c| c.bends = 0),
        ("curve.t_per_step", |c| c.t_per_step = 0),
        ("curve.eval_points", |c| c.eval_points = 2),
        ("curve.init_noise", |c| c.init_noise = f64::NAN),
        ("curve.slack", |c| c.slack = 0.5),
        ("curve.optimizer.lr", |c| {
            c.optimizer = OptimizerConfig::Adam {
                lr: -1.0,
                weight_decay: None,
            }
        }),
        ("curve.optimizer.decay", |c| {
            c.optimizer = OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: None,
                clip_global_norm: None,
                decay: Some(LrDecay {
                    after_epochs: 1,
                    factor: 0.5,
                }),
                weight_decay: None,
                schedule: None,
            }
        }),
        ("curve.optimizer.schedule", |c| {
            c.optimizer = OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: None,
                clip_global_norm: None,
                decay: None,
                weight_decay: None,
                schedule: Some(RateSchedule::Cosine {}),
            }
        }),
    ];
    assert_breakages_name_their_keys(&good, &breakages, CurveConfig::validate, |config| {
        connect_curve(
            &task,
            a.clone(),
            b.clone(),
            2.0,
            config,
            0,
            &ProgressBar::hidden(),
        )
    });
    let mut config = good;
    config.schedule = LrSchedule::LinearDecay {
        hold: 0.9,
        until: 0.5,
        final_factor: 0.01,
    };
    assert!(
        config
            .validate()
            .unwrap_err()
            .starts_with("curve.schedule.until")
    );
}

#[test]
fn a_diverging_curve_fails_with_the_reason() {
    let (task, a, b) = appendix_e_pair();
    let mut config = curve(CurveKind::Bezier, 1, 50, 0.01);
    config.optimizer = OptimizerConfig::Sgd {
        lr: 1e30,
        momentum: None,
        clip_global_norm: None,
        decay: None,
        weight_decay: None,
        schedule: None,
    };
    let report = run(&task, &a, &b, 2.0, &config, 0);
    match &report.status {
        Status::Failed { reason } => assert!(reason.contains("loss became"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn coefficients_are_a_partition_of_unity_that_interpolates_where_it_should() {
    for kind in [CurveKind::Bezier, CurveKind::Polychain] {
        for bends in 1..4 {
            for k in 0..=20 {
                let w = kind.coefficients(bends, k as f64 / 20.0);
                assert_eq!(w.len(), bends + 2);
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert!(w.iter().all(|&x| x >= 0.0));
            }
            assert_eq!(kind.coefficients(bends, 0.0)[0], 1.0);
            assert_eq!(kind.coefficients(bends, 1.0)[bends + 1], 1.0);
        }
    }
    // A polychain passes through its control points; t = 0.5 is the middle one of three.
    assert_eq!(
        CurveKind::Polychain.coefficients(3, 0.5),
        vec![0.0, 0.0, 1.0, 0.0, 0.0]
    );
    // Quadratic Bezier: (1-t)^2, 2t(1-t), t^2.
    let w = CurveKind::Bezier.coefficients(1, 0.25);
    assert_eq!(w, vec![0.5625, 0.375, 0.0625]);
}

#[test]
fn stacked_points_are_the_curve_at_each_t() {
    let device = Default::default();
    let random = |shape: [usize; 2], seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
            .collect();
        Tensor::<Compute, 2>::from_data(TensorData::new(values, shape), &device)
    };
    for kind in [CurveKind::Bezier, CurveKind::Polychain] {
        let curve = Curve {
            kind,
            first: random([1, 7], 1).reshape([7]),
            controls: random([3, 7], 2),
            last: random([1, 7], 3).reshape([7]),
        };
        let ts = [0.0, 0.1, 0.5, 0.77, 1.0];
        let stacked = curve.points(&ts);
        for (j, &t) in ts.iter().enumerate() {
            let row = stacked.clone().narrow(0, j, 1).reshape([7]);
            assert_eq!(
                row.into_data(),
                curve.point(t).into_data(),
                "{kind:?} at {t}"
            );
        }
    }
}
