//! The Hessian's top eigenvalues and trace against a Hessian known exactly: a linear
//! regression's squared error, `2/n sum [x;1][x;1]^T`, on inputs built so that it is diagonal
//! with known entries.

use burn::prelude::*;
use levelset_data::Regression;
use levelset_models::DataSplit;
use levelset_models::Landscape;
use levelset_models::backend::Compute;
use levelset_models::flat::flatten;
use levelset_models::init::Init;
use levelset_models::nets::{Activation, MlpConfig};
use levelset_models::tasks::RegressionLoss;
use levelset_strings::hessian::Curvature;
use levelset_strings::{HessianConfig, hessian};

mod common;
use common::regression;

/// The 8 corners of a box with half-sides `sides`, each input's target a fixed linear
/// function plus a bump: the squared error's Hessian in (w, b) is `2 diag(sides^2, 1)`.
fn corners(sides: [f32; 3]) -> Regression {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for corner in 0..8 {
        let point: Vec<f32> = (0..3)
            .map(|axis| {
                if corner >> axis & 1 == 1 {
                    sides[axis]
                } else {
                    -sides[axis]
                }
            })
            .collect();
        y.push(0.5 * point[0] - point[1] + 0.25 + if corner == 5 { 1.0 } else { 0.0 });
        x.extend(point);
    }
    Regression {
        x,
        y,
        n: 8,
        d_in: 3,
        d_out: 1,
    }
}

#[test]
fn lanczos_and_hutchinson_recover_a_linear_regressions_exact_hessian() {
    let data = corners([3.0, 2.0, 0.5]);
    let config = MlpConfig {
        widths: vec![3, 1],
        hidden: Activation::Identity,
        output: Activation::Identity,
        bias: true,
        weight_init: Init::Normal { std: 0.5 },
        bias_init: Init::Normal { std: 0.1 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data.clone(), &data);
    let point = flatten(&task.init(4)).inner();
    let exact = [18.0, 8.0, 2.0, 0.5];
    for split in [DataSplit::Train, DataSplit::Test] {
        let report = hessian(
            &task,
            point.clone(),
            &HessianConfig {
                top: 4,
                iterations: 4,
                probes: 400,
                split,
                examples: 8,
                seed: 1,
            },
        )
        .expect("a regression net");
        let found: Vec<f64> = report.top_eigenvalues.iter().map(|e| e.value).collect();
        for (f, e) in found.iter().zip(exact) {
            assert!((f - e).abs() < 1e-3 * e, "{found:?} vs {exact:?}");
        }
        for e in &report.top_eigenvalues {
            assert!(e.residual < 1e-2, "{report:?}");
        }
        let trace = report.trace.expect("probes asked");
        let total: f64 = exact.iter().sum();
        // Rademacher probes of a diagonal matrix have no variance: z^T D z = trace(D).
        assert!((trace.estimate - total).abs() < 1e-3 * total, "{trace:?}");
        assert_eq!(report.num_params, 4);
        assert_eq!(report.hessian_vector_products, 4 + 4 + 400);
    }
    // More examples than the split holds, and nothing asked, are refused.
    let error = hessian(
        &task,
        point.clone(),
        &HessianConfig {
            top: 1,
            iterations: 2,
            probes: 0,
            split: DataSplit::Test,
            examples: 9,
            seed: 0,
        },
    )
    .unwrap_err();
    assert!(
        error.contains("9 examples") && error.contains("holds 8"),
        "{error}"
    );
    let nothing = HessianConfig {
        top: 0,
        iterations: 0,
        probes: 0,
        split: DataSplit::Train,
        examples: 8,
        seed: 0,
    };
    assert!(
        hessian(&task, point, &nothing)
            .unwrap_err()
            .contains("nothing to measure")
    );
}

/// A ReLU net at a point where every hidden unit sits exactly on its switch for some
/// examples (inputs at the origin, zero biases): a difference step that let the units switch
/// would measure the jump of the gradient there, which no matrix gives. Holding the point's
/// activation pattern, the products are those of one symmetric matrix.
#[test]
fn products_hold_a_relu_nets_pattern_across_its_switches() {
    let mut data = corners([1.0, 0.7, 0.4]);
    // Three of the eight inputs at the origin.
    for i in [1, 4, 6] {
        data.x[3 * i..3 * i + 3].fill(0.0);
    }
    let config = MlpConfig {
        widths: vec![3, 6, 1],
        hidden: Activation::Relu,
        output: Activation::Identity,
        bias: true,
        weight_init: Init::Normal { std: 0.8 },
        bias_init: Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data.clone(), &data);
    let point = flatten(&task.init(3)).inner();
    let mut curvature = Curvature::new(&task, point.clone(), DataSplit::Train, 8).expect("MSE");
    assert_eq!(curvature.held_switching_layers(), 1);
    let n = curvature.num_params();
    let device = point.device();
    let direction = |seed: u64| {
        let values: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 7919 + seed * 104_729) % 13) as f32 - 6.0)
            .collect();
        let v = Tensor::<Compute, 1>::from_floats(values.as_slice(), &device);
        let norm = v.clone().powi_scalar(2).sum().into_scalar().sqrt();
        v.div_scalar(norm)
    };
    let (u, v) = (direction(1), direction(2));
    let hu = curvature.product(&u).expect("a product");
    let hv = curvature.product(&v).expect("a product");
    let (uhv, vhu) = (
        (u.clone() * hv).sum().into_scalar(),
        (v.clone() * hu).sum().into_scalar(),
    );
    assert!(
        (uhv - vhu).abs() <= 1e-3 * uhv.abs().max(vhu.abs()).max(1e-3),
        "u'Hv {uhv} against v'Hu {vhu}"
    );
    let report = hessian(
        &task,
        point,
        &HessianConfig {
            top: 2,
            iterations: n,
            probes: 0,
            split: DataSplit::Train,
            examples: 8,
            seed: 5,
        },
    )
    .expect("a regression net");
    assert!(report.warnings.is_empty(), "{report:?}");
    let top = report.top_eigenvalues[0].value;
    for e in &report.top_eigenvalues {
        assert!(e.residual < 1e-2 * top, "{report:?}");
    }
    assert_eq!(report.held_switching_layers, 1);
}
