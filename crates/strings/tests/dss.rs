//! Dynamic String Sampling on landscapes whose answer is known.

use burn::prelude::*;
use indicatif::ProgressBar;
use levelset_data::linear_regression;
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train};
use levelset_models::init::Init;
use levelset_models::nets::{Activation, MlpConfig};
use levelset_models::tasks::RegressionLoss;
use levelset_models::train::TrainSettings;
use levelset_strings::{
    ConnectError, DssConfig, Evaluator, InsertAt, LengthOver, Order, PathReport, Status,
    connect_dss,
};

mod common;
use common::{
    Breakage, adam, appendix_e_pair, assert_breakages_name_their_keys, endpoint, quadratic_pair,
    regression,
};

fn dss(order: Order, insert_at: InsertAt, max_depth: usize) -> DssConfig {
    DssConfig {
        alpha: 0.95,
        slack: 1.1,
        grid: 20,
        insert_at,
        order,
        max_depth,
        max_beads: 64,
        first_bead_always: true,
        length_over: LengthOver::All,
        bead: None,
    }
}

fn run<L: Landscape<Train>>(
    task: &L,
    a: &Tensor<Compute, 1>,
    b: &Tensor<Compute, 1>,
    level: f64,
    config: &DssConfig,
    settings: &TrainSettings,
) -> PathReport {
    let (path, report) = connect_dss(
        task,
        a.clone(),
        b.clone(),
        level,
        config,
        settings,
        7,
        &ProgressBar::hidden(),
    )
    .expect("endpoints are valid");
    assert_eq!(path.beads.len(), report.beads);
    assert_eq!(report.segments.len(), report.beads - 1);
    report
}

/// Every segment of a connected string passed, and the certified maximum is within the slack.
fn assert_certified(report: &PathReport, config: &DssConfig) {
    assert_eq!(report.status, Status::Connected, "{:?}", report.status);
    assert!(report.segments.iter().all(|s| s.passed));
    assert!(
        report.max_energy <= config.slack * report.level,
        "{}",
        report.max_energy
    );
    for (k, e) in report.bead_energies.iter().enumerate() {
        assert!(*e <= report.level, "bead {k} at {e} above the level");
    }
}

#[test]
fn convex_problem_gives_a_straight_three_bead_string() {
    // A linear model with squared loss: every sublevel set is convex, so the straight line
    // stays inside it and the one midpoint bead barely moves.
    let data = linear_regression(3, 2, 300, 0.1, 5);
    let test = linear_regression(3, 2, 200, 0.1, 5);
    let config = MlpConfig {
        widths: vec![3, 2],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: true,
        weight_init: Init::Normal { std: 1.0 },
        bias_init: Init::Normal { std: 1.0 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data, &test);
    let settings = adam(0.01, 5000);
    let level = 0.05;
    let a = endpoint(&task, level, 1, &settings);
    let b = endpoint(&task, level, 2, &settings);
    let config = dss(Order::DepthFirst, InsertAt::Midpoint, 6);
    let report = run(&task, &a, &b, level, &config, &settings);
    assert_certified(&report, &config);
    assert_eq!(report.beads, 3);
    assert!(
        (report.normalized_length - 1.0).abs() < 1e-3,
        "{}",
        report.normalized_length
    );
    assert!(report.linear_barrier <= level);
}

#[test]
fn deep_linear_networks_connect_at_every_level() {
    // Prop 2.2: with hidden widths above min(input, output) the level sets are connected.
    let data = linear_regression(4, 2, 300, 0.1, 11);
    let test = linear_regression(4, 2, 200, 0.1, 11);
    let config = MlpConfig {
        widths: vec![4, 6, 6, 2],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: false,
        weight_init: Init::Normal { std: 0.5 },
        bias_init: Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data, &test);
    let settings = adam(0.01, 20_000);
    let config = dss(Order::BreadthFirst, InsertAt::Midpoint, 6);
    for level in [0.5, 0.2, 0.05] {
        let a = endpoint(&task, level, 3, &settings);
        let b = endpoint(&task, level, 4, &settings);
        let report = run(&task, &a, &b, level, &config, &settings);
        assert_certified(&report, &config);
        assert!(report.normalized_length >= 1.0);
    }
}

#[test]
fn both_orders_and_both_insertion_rules_connect_a_quadratic_pair() {
    let level = 0.05;
    let (task, a, b) = quadratic_pair(level, [10, 11]);
    let settings = adam(0.02, 20_000);
    for order in [Order::DepthFirst, Order::BreadthFirst] {
        for insert_at in [InsertAt::Midpoint, InsertAt::Argmax] {
            let config = dss(order, insert_at, 8);
            let report = run(&task, &a, &b, level, &config, &settings);
            assert_certified(&report, &config);
            assert!(
                report.beads >= 3,
                "{order:?} {insert_at:?}: {}",
                report.beads
            );
            assert!(report.normalized_length >= 1.0);
            assert!(report.bead_steps > 0 || report.bead_energies[1] <= 0.95 * level);
        }
    }
}

#[test]
fn first_bead_is_optional_when_the_straight_line_passes() {
    let data = linear_regression(3, 1, 200, 0.0, 8);
    let config = MlpConfig {
        widths: vec![3, 1],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: false,
        weight_init: Init::Normal { std: 1.0 },
        bias_init: Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data.clone(), &data);
    let settings = adam(0.01, 5000);
    let a = endpoint(&task, 0.1, 1, &settings);
    let b = endpoint(&task, 0.1, 2, &settings);
    let mut config = dss(Order::DepthFirst, InsertAt::Midpoint, 4);
    config.first_bead_always = false;
    let report = run(&task, &a, &b, 0.1, &config, &settings);
    assert_certified(&report, &config);
    assert_eq!(report.beads, 2);
    assert_eq!(report.normalized_length, 1.0);
}

#[test]
fn appendix_e_permuted_pair_connects_only_at_a_high_level() {
    let (task, a, b) = appendix_e_pair();
    let settings = adam(0.01, 50_000);

    let bead_settings = adam(0.01, 3000);
    let mut low = dss(Order::BreadthFirst, InsertAt::Argmax, 3);
    low.bead = Some(bead_settings.clone());
    let report = run(&task, &a, &b, 1e-3, &low, &settings);
    eprintln!(
        "LOW {:?} beads {} barrier {}",
        report.status, report.beads, report.linear_barrier
    );
    match &report.status {
        Status::NotConnected {
            failing_segments,
            depth,
            ..
        } => {
            assert!(!failing_segments.is_empty());
            assert!(*depth >= 1);
        }
        Status::Failed { reason } => assert!(reason.contains("did not reach"), "{reason}"),
        Status::Connected => panic!("a permuted pair connected at a low level: {report:?}"),
    }

    let high_level = 2.0;
    let high = dss(Order::BreadthFirst, InsertAt::Midpoint, 3);
    let report = run(&task, &a, &b, high_level, &high, &bead_settings);
    assert_certified(&report, &high);
}

#[test]
fn same_seed_gives_the_same_report() {
    let (task, a, b) = quadratic_pair(0.06, [20, 21]);
    let settings = adam(0.02, 20_000);
    let config = dss(Order::BreadthFirst, InsertAt::Argmax, 6);
    let mut first = run(&task, &a, &b, 0.06, &config, &settings);
    let mut second = run(&task, &a, &b, 0.06, &config, &settings);
    first.wall_seconds = 0.0;
    second.wall_seconds = 0.0;
    assert_eq!(first, second);
}

/// Endpoints stopped by their training loss may sit a little above the level in the energy:
/// up to `slack * level` they are accepted, and the string is held to the same limit.
#[test]
fn endpoints_within_the_slack_above_the_level_are_connected() {
    let (task, a, b) = quadratic_pair(0.08, [30, 31]);
    let settings = adam(0.02, 20_000);
    let config = dss(Order::BreadthFirst, InsertAt::Midpoint, 6);
    let evaluator = Evaluator::new(&task);
    let highest = evaluator.energy(&a).max(evaluator.energy(&b));
    // Both endpoints at most 1.05 times the level, one of them exactly.
    let level = highest / 1.05;
    let report = run(&task, &a, &b, level, &config, &settings);
    assert_eq!(report.level, level);
    assert!(report.bead_energies[0].max(*report.bead_energies.last().unwrap()) > level);
    assert!(report.max_energy <= config.slack * level || report.status != Status::Connected);
    // Just above the slack, the endpoint is refused, naming the limit.
    let err = connect_dss(
        &task,
        a.clone(),
        b.clone(),
        highest / 1.11,
        &config,
        &settings,
        0,
        &ProgressBar::hidden(),
    )
    .unwrap_err();
    assert!(matches!(err, ConnectError::AboveLevel { .. }), "{err}");
    assert!(err.to_string().contains("times the slack 1.1"), "{err}");
}

#[test]
fn endpoint_problems_are_errors() {
    let (task, a, b) = quadratic_pair(0.08, [30, 31]);
    let settings = adam(0.02, 20_000);
    let config = dss(Order::DepthFirst, InsertAt::Midpoint, 4);
    let hidden = ProgressBar::hidden();
    let err = connect_dss(
        &task,
        a.clone(),
        b.clone(),
        1e-6,
        &config,
        &settings,
        0,
        &hidden,
    )
    .unwrap_err();
    assert!(
        matches!(err, ConnectError::AboveLevel { which: 'A', .. }),
        "{err}"
    );
    assert!(err.to_string().contains("above the level"));

    let short = a.clone().narrow(0, 0, 10);
    let err = connect_dss(
        &task,
        short,
        b.clone(),
        0.08,
        &config,
        &settings,
        0,
        &hidden,
    )
    .unwrap_err();
    assert_eq!(err, ConnectError::ParameterCount { a: 10, b: 33 });

    let same = connect_dss(
        &task,
        b.clone(),
        b.clone(),
        0.08,
        &config,
        &settings,
        0,
        &hidden,
    );
    assert_eq!(same.unwrap_err(), ConnectError::SameModel);

    let nan = a.clone().mul_scalar(f64::NAN);
    let err = connect_dss(&task, nan, b, 0.08, &config, &settings, 0, &hidden).unwrap_err();
    assert!(
        matches!(err, ConnectError::NotFinite { which: 'A', .. }),
        "{err}"
    );
}

/// DSS refuses a broken config before any work, naming the key, as the other methods do.
#[test]
fn broken_configs_are_refused_naming_their_keys() {
    let (task, a, b) = quadratic_pair(0.08, [30, 31]);
    let settings = adam(0.02, 20_000);
    let good = dss(Order::DepthFirst, InsertAt::Midpoint, 4);
    let breakages: [Breakage<DssConfig>; 6] = [
        ("dss.alpha", |c| c.alpha = 0.0),
        ("dss.slack", |c| c.slack = f64::NAN),
        ("dss.grid must be at least", |c| c.grid = 1),
        ("dss.grid must be at most", |c| c.grid = 1 << 50),
        ("dss.max_beads must be at least", |c| c.max_beads = 2),
        ("dss.max_depth must be at most", |c| {
            c.max_depth = usize::MAX
        }),
    ];
    assert_breakages_name_their_keys(&good, &breakages, DssConfig::validate, |config| {
        let hidden = ProgressBar::hidden();
        connect_dss(
            &task,
            a.clone(),
            b.clone(),
            0.08,
            config,
            &settings,
            0,
            &hidden,
        )
    });
}

#[test]
fn a_bead_that_misses_its_target_fails_the_pair_with_the_reason() {
    let (task, a, b) = quadratic_pair(0.05, [40, 41]);
    let settings = adam(0.02, 20_000);
    let mut config = dss(Order::DepthFirst, InsertAt::Midpoint, 4);
    // A bead budget of one check can only succeed if the midpoint is already at 0.95 L0.
    config.alpha = 0.2;
    config.bead = Some(TrainSettings {
        check_every: 1,
        max_steps: 1,
        ..settings.clone()
    });
    let report = run(&task, &a, &b, 0.05, &config, &settings);
    match &report.status {
        Status::Failed { reason } => assert!(
            reason.contains("bead 1") && reason.contains("did not reach"),
            "{reason}"
        ),
        other => panic!("expected a failed pair, got {other:?}"),
    }
}

#[test]
fn stacked_and_one_by_one_segment_checks_agree() {
    let (task, a, b) = quadratic_pair(0.05, [3, 4]);
    let stacked = Evaluator::with_stacking(&task, true);
    let pointwise = Evaluator::with_stacking(&task, false);
    let (s, p) = (stacked.segment(&a, &b, 20), pointwise.segment(&a, &b, 20));
    assert_eq!(s.len(), 19);
    for ((ts, es), (tp, ep)) in s.iter().zip(&p) {
        assert_eq!(ts, tp);
        assert!((es - ep).abs() <= 1e-5 * ep.abs(), "t = {ts}: {es} vs {ep}");
    }
    assert_eq!(stacked.evaluations(), 19);
    let (cs, cp) = (
        stacked.check(&a, &b, 20, 0.06, 0),
        pointwise.check(&a, &b, 20, 0.06, 0),
    );
    assert_eq!((cs.argmax_t, cs.passed), (cp.argmax_t, cp.passed));
}
