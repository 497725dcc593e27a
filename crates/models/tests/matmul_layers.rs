//! The matmul forms of the layers against Burn's: the convolution (unfold + batched matmul)
//! against `Conv2d` and the LSTM (fused gate matmuls) against `Lstm`, with the same values and
//! the same gradients for the input, the initial state and every parameter, on the backend this
//! build selects (CI runs it on flex, ndarray and wgpu through lavapipe). Also the nets through
//! them: the paper's convnets and LSTM give the same losses and gradients under either rule.

mod common;

use std::sync::{Mutex, MutexGuard};

use burn::module::AutodiffModule;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Lstm, LstmConfig, LstmState};
use burn::prelude::*;
use common::{assert_close, host, param_grads_flat, random_input};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::nets::rule::{LayerRule, layer_rule, override_layer_rule};
use levelset_models::nets::{CifarConvConfig, LstmLmConfig, MnistConvConfig};
use levelset_models::nets::{matmul_conv, matmul_lstm};

/// Burn 0.21's autodiff can drop another thread's gradient when two threads call `backward`
/// at once (tracel-ai/burn#5573), and the tests of one binary run in parallel: each test that
/// calls `backward` holds this lock.
fn one_backward_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A convolution's output on a fixed input, the gradients of a fixed projection of that output
/// for the input and every parameter.
struct Pass {
    output: Vec<f32>,
    input_grad: Vec<f32>,
    param_grads: Vec<f32>,
}

fn pass(
    conv: &Conv2d<Train>,
    input: Tensor<Compute, 4>,
    forward: impl Fn(&Conv2d<Train>, Tensor<Train, 4>) -> Tensor<Train, 4>,
) -> Pass {
    let x = Tensor::<Train, 4>::from_inner(input).require_grad();
    let y = forward(conv, x.clone());
    let projection = Tensor::<Train, 4>::from_inner(random_input(y.dims(), 99));
    let grads = (y.clone() * projection).sum().backward();
    let input_grad = x.grad(&grads).expect("the input is tracked");
    let params = burn::optim::GradientsParams::from_grads(grads, conv);
    Pass {
        output: host(y.inner()),
        input_grad: host(input_grad),
        param_grads: param_grads_flat(conv, &params),
    }
}

fn check(name: &str, config: Conv2dConfig, input_shape: [usize; 4]) {
    let conv = config.init::<Train>(&device());
    let input = random_input(input_shape, 5);
    let burn = pass(&conv, input.clone(), |c, x| c.forward(x));
    let ours = pass(&conv, input, matmul_conv::conv2d);
    assert_close(&ours.output, &burn.output, 1e-5, &format!("{name}: output"));
    assert_close(
        &ours.input_grad,
        &burn.input_grad,
        1e-5,
        &format!("{name}: input gradient"),
    );
    assert_close(
        &ours.param_grads,
        &burn.param_grads,
        1e-4,
        &format!("{name}: weight and bias gradients"),
    );
}

#[test]
fn equals_burns_convolution_for_every_padding_stride_and_groups() {
    let _serial = one_backward_at_a_time();
    check(
        "5x5 same (the paper's convnets)",
        Conv2dConfig::new([3, 8], [5, 5]).with_padding(PaddingConfig2d::Same),
        [2, 3, 12, 12],
    );
    check(
        "3x3 valid, no bias",
        Conv2dConfig::new([4, 6], [3, 3]).with_bias(false),
        [3, 4, 9, 7],
    );
    check(
        "4x4 same (uneven padding)",
        Conv2dConfig::new([2, 5], [4, 4]).with_padding(PaddingConfig2d::Same),
        [2, 2, 8, 9],
    );
    check(
        "3x5 stride 2, explicit asymmetric padding",
        Conv2dConfig::new([3, 4], [3, 5])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 2, 0, 1)),
        [2, 3, 11, 10],
    );
    check(
        "grouped (the stacked segment check's layout)",
        Conv2dConfig::new([6, 9], [5, 5])
            .with_groups(3)
            .with_padding(PaddingConfig2d::Same),
        [2, 6, 7, 7],
    );
}

/// Loss value and flat parameter gradient of one net on one batch under `rule`.
fn loss_and_grads<M: AutodiffModule<Train>>(
    net: &M,
    rule: LayerRule,
    loss: impl Fn(&M) -> Tensor<Train, 1>,
) -> (Vec<f32>, Vec<f32>) {
    override_layer_rule(Some(rule));
    assert_eq!(layer_rule::<Train>(&device()), rule);
    let value = loss(net);
    let grads = burn::optim::GradientsParams::from_grads(value.backward(), net);
    override_layer_rule(None);
    (host(value.inner()), param_grads_flat(net, &grads))
}

fn both_rules<M: AutodiffModule<Train>>(name: &str, net: M, loss: impl Fn(&M) -> Tensor<Train, 1>) {
    let (burn_loss, burn_grads) = loss_and_grads(&net, LayerRule::Burn, &loss);
    let (matmul_loss, matmul_grads) = loss_and_grads(&net, LayerRule::Matmul, &loss);
    assert_close(&matmul_loss, &burn_loss, 1e-5, &format!("{name}: loss"));
    assert_close(
        &matmul_grads,
        &burn_grads,
        1e-4,
        &format!("{name}: gradients"),
    );
}

#[test]
fn the_papers_nets_train_the_same_under_either_rule() {
    let _serial = one_backward_at_a_time();
    // One test, not two: the rule is process-wide.
    // On flex both rules reach flex's own kernels first; on ndarray and wgpu this compares
    // Burn's layers with the matmul forms inside the whole nets.
    let mnist = MnistConvConfig {
        conv1: 4,
        conv2: 6,
        hidden: 16,
        ..Default::default()
    }
    .init::<Train>(3, &device());
    let images = Tensor::<Train, 4>::from_inner(random_input([4, 1, 28, 28], 1));
    both_rules("MNIST convnet", mnist, |net| {
        net.forward(images.clone(), None).powi_scalar(2).mean()
    });
    let cifar = CifarConvConfig {
        conv1: 4,
        conv2: 6,
        fc1: 16,
        fc2: 8,
        ..Default::default()
    }
    .init::<Train>(3, &device());
    let crops = Tensor::<Train, 4>::from_inner(random_input([4, 3, 24, 24], 2));
    both_rules("CIFAR-10 convnet", cifar, |net| {
        net.forward(crops.clone(), None).powi_scalar(2).mean()
    });
    let lm = LstmLmConfig {
        vocab: 20,
        embed: 6,
        hidden: 5,
        layers: 2,
        init_scale: 0.3,
    }
    .init::<Train>(3, &device());
    let tokens = Tensor::<Train, 2, Int>::from_data(
        TensorData::new((0..24).map(|i| (i * 7 % 20) as i64).collect(), [3, 8]),
        &device(),
    );
    both_rules("LSTM language model", lm, |net| {
        net.forward(tokens.clone(), None).0.powi_scalar(2).mean()
    });
}

/// An LSTM layer's outputs and final state on a fixed input and initial state, and the
/// gradients of a fixed projection of all three for the input, the initial state and every
/// parameter.
fn lstm_pass(
    layer: &Lstm<Train>,
    input: Tensor<Compute, 3>,
    initial: [Tensor<Compute, 2>; 2],
    forward: impl Fn(
        &Lstm<Train>,
        Tensor<Train, 3>,
        Option<LstmState<Train, 2>>,
    ) -> (Tensor<Train, 3>, LstmState<Train, 2>),
) -> Vec<(String, Vec<f32>)> {
    let x = Tensor::<Train, 3>::from_inner(input).require_grad();
    let [c0, h0] = initial.map(|t| Tensor::<Train, 2>::from_inner(t).require_grad());
    let (y, state) = forward(
        layer,
        x.clone(),
        Some(LstmState::new(c0.clone(), h0.clone())),
    );
    let project = |t: Tensor<Train, 2>, seed| {
        (t.clone() * Tensor::<Train, 2>::from_inner(random_input(t.dims(), seed))).sum()
    };
    let [b, s, h] = y.dims();
    let grads = (project(y.clone().reshape([b, s * h]), 97)
        + project(state.cell.clone(), 98)
        + project(state.hidden.clone(), 99))
    .backward();
    let grad = |t: &Tensor<Train, 3>| host(t.grad(&grads).expect("tracked"));
    let grad2 = |t: &Tensor<Train, 2>| host(t.grad(&grads).expect("tracked"));
    let (x_grad, c_grad, h_grad) = (grad(&x), grad2(&c0), grad2(&h0));
    let params = burn::optim::GradientsParams::from_grads(grads, layer);
    vec![
        ("outputs".into(), host(y.inner())),
        ("final cell".into(), host(state.cell.inner())),
        ("final hidden".into(), host(state.hidden.inner())),
        ("input gradient".into(), x_grad),
        ("initial cell gradient".into(), c_grad),
        ("initial hidden gradient".into(), h_grad),
        (
            "parameter gradients".into(),
            param_grads_flat(layer, &params),
        ),
    ]
}

#[test]
fn lstm_equals_burns_layer_with_and_without_biases() {
    let _serial = one_backward_at_a_time();
    for bias in [true, false] {
        let layer = LstmConfig::new(5, 7, bias).init::<Train>(&device());
        let input = random_input([3, 4, 5], 11);
        let initial = [random_input([3, 7], 12), random_input([3, 7], 13)];
        let burn = lstm_pass(&layer, input.clone(), initial.clone(), |l, x, s| {
            l.forward(x, s)
        });
        let ours = lstm_pass(&layer, input, initial, matmul_lstm::lstm);
        for ((what, a), (_, b)) in ours.iter().zip(&burn) {
            assert_close(a, b, 1e-5, &format!("bias {bias}: {what}"));
        }
    }
}

#[test]
fn lstm_other_cells_fall_back_to_burns_layer() {
    let _serial = one_backward_at_a_time();
    let clipped = LstmConfig::new(3, 4, true)
        .with_clip(Some(0.01))
        .init::<Train>(&device());
    assert!(!matmul_lstm::standard_cell(&clipped));
    assert!(matmul_lstm::standard_cell(
        &LstmConfig::new(3, 4, true).init::<Train>(&device())
    ));
    let x = Tensor::<Train, 3>::from_inner(random_input([2, 3, 3], 4).mul_scalar(50.0));
    let (ours, state) = matmul_lstm::lstm(&clipped, x.clone(), None);
    let (burn, burn_state) = clipped.forward(x, None);
    assert_eq!(host(ours.inner()), host(burn.inner()));
    assert_eq!(host(state.cell.inner()), host(burn_state.cell.inner()));
}

#[test]
fn rules_parse_by_name_and_reject_others() {
    for name in LayerRule::NAMES {
        assert_eq!(LayerRule::parse(name).unwrap().name(), name);
    }
    let err = LayerRule::parse("im2col").unwrap_err();
    assert!(
        err.contains("im2col") && err.contains("burn, matmul"),
        "{err}"
    );
}
