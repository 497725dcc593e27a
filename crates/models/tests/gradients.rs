//! Gradients through flat vectors: curve training differentiates an energy with respect to the
//! flat vectors of the curve's control points, through `unflatten` and the model's ordinary
//! forward.

mod common;

use burn::optim::GradientsParams;
use burn::prelude::*;
use common::{assert_close, host, param_grads_flat};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{flatten, lerp, unflatten};
use levelset_models::nets::{Described, MlpConfig};

fn batch() -> (Tensor<Train, 2>, Tensor<Train, 2>) {
    let dev = device();
    let x: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
    let y: Vec<f32> = x.iter().map(|v| 0.5 * v * v + 0.25 * v + 0.1).collect();
    (
        Tensor::from_data(TensorData::new(x, [16, 1]), &dev),
        Tensor::from_data(TensorData::new(y, [16, 1]), &dev),
    )
}

fn mse<B: Backend>(model: &Described<B>, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 1> {
    (model.forward_flat(x, None) - y).powi_scalar(2).mean()
}

#[test]
fn flat_gradient_equals_the_parameter_gradients() {
    let dev = device();
    let config = MlpConfig::cubic();
    let model = config.init::<Train>(3, &dev);
    let (x, y) = batch();

    let grads = mse(&model, x.clone(), y.clone()).backward();
    let expected = param_grads_flat(&model, &GradientsParams::from_grads(grads, &model));

    let flat = flatten(&model).detach().require_grad();
    let through = unflatten(config.init::<Train>(99, &dev), flat.clone());
    let grads = mse(&through, x, y).backward();
    let got = host(flat.grad(&grads).expect("the flat vector has a gradient"));

    assert_eq!(got.len(), model.num_params());
    assert!(got.iter().any(|&g| g != 0.0));
    assert_close(&got, &expected, 1e-6, "flat vs per-parameter gradient");
}

#[test]
fn flat_gradient_matches_finite_differences() {
    let dev = device();
    let config = MlpConfig::quadratic();
    let base = host(flatten(&config.init::<Compute>(5, &dev)));
    let (x, y) = batch();
    let (xc, yc) = (x.clone().inner(), y.clone().inner());

    let flat = Tensor::<Train, 1>::from_floats(base.as_slice(), &dev).require_grad();
    let model = unflatten(config.init::<Train>(0, &dev), flat.clone());
    let grad = host(flat.grad(&mse(&model, x, y).backward()).unwrap());

    let loss_at = |values: &[f32]| -> f64 {
        let flat = Tensor::<Compute, 1>::from_floats(values, &dev);
        let m = unflatten(config.init::<Compute>(0, &dev), flat);
        mse(&m, xc.clone(), yc.clone()).into_scalar().elem::<f64>()
    };
    // The three largest components, so f32 rounding in the difference quotient stays small
    // relative to the gradient.
    let mut order: Vec<usize> = (0..grad.len()).collect();
    order.sort_by(|&i, &j| grad[j].abs().total_cmp(&grad[i].abs()));
    let eps = 1e-2_f32;
    for &i in &order[..3] {
        let (mut plus, mut minus) = (base.clone(), base.clone());
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
        let g = f64::from(grad[i]);
        assert!(
            (fd - g).abs() <= 0.02 * g.abs() + 1e-5,
            "coordinate {i}: autodiff {g}, finite difference {fd}"
        );
    }
}

#[test]
fn lerp_splits_the_gradient_between_endpoints() {
    let dev = device();
    let config = MlpConfig::quadratic();
    let a = flatten(&config.init::<Train>(1, &dev))
        .detach()
        .require_grad();
    let b = flatten(&config.init::<Train>(2, &dev))
        .detach()
        .require_grad();
    let t = 0.3;
    let point = unflatten(config.init::<Train>(0, &dev), lerp(&a, &b, t));
    let (x, y) = batch();
    let grads = mse(&point, x, y).backward();
    let ga = host(a.grad(&grads).expect("gradient reaches a"));
    let gb = host(b.grad(&grads).expect("gradient reaches b"));
    assert_eq!(ga.len(), gb.len());
    assert!(gb.iter().any(|&g| g != 0.0));
    // d/da = (1 - t) g and d/db = t g for the common gradient g at the point.
    let scaled_a: Vec<f32> = ga.iter().map(|g| g * t as f32).collect();
    let scaled_b: Vec<f32> = gb.iter().map(|g| g * (1.0 - t) as f32).collect();
    assert_close(&scaled_a, &scaled_b, 1e-5, "t * grad_a vs (1 - t) * grad_b");
    for (ga, gb) in ga.iter().zip(&gb) {
        if gb.abs() > 1e-4 {
            let ratio = ga / gb;
            assert!((ratio - 0.7 / 0.3).abs() < 1e-3, "ratio {ratio}");
        }
    }
}
