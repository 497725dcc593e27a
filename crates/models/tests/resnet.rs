//! Residual nets and batch normalization: He et al.'s CIFAR ResNets by depth (their parameter
//! counts), the batch normalization layer against a hand computation in each of its modes,
//! running statistics kept out of the flat vector, the parameter-free shortcut's layers, and
//! the statistics a task gives a point (`[bn] stats`).

mod common;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use common::{assert_close, host, random_input};
use levelset_data::LabeledImages;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{flatten, lerp, num_params, unflatten};
use levelset_models::nets::described::{BatchNorm, Layer, NormMode};
use levelset_models::nets::{Described, DescribedConfig, NetDescription, ResnetConfig, Shortcut};
use levelset_models::statistics::{BnConfig, StatsMode};
use levelset_models::tasks::{ImageTask, Pipeline};
use levelset_models::{Energy, Landscape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn resnet(depth: usize, shortcut: Shortcut, width: usize) -> DescribedConfig {
    let config = ResnetConfig {
        width,
        ..ResnetConfig::new(depth, shortcut)
    };
    DescribedConfig::new(config.description(10).unwrap(), [3, 32, 32], 10).unwrap()
}

#[test]
fn the_cifar_resnets_have_he_et_als_parameter_counts() {
    for (depth, count) in [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018)] {
        let net = resnet(depth, Shortcut::A, 1).init::<Compute>(0, &device());
        assert_eq!(num_params(&net), count, "option A, depth {depth}");
        assert_eq!(flatten(&net).dims(), [count]);
    }
    let net = resnet(20, Shortcut::B, 1).init::<Compute>(0, &device());
    assert_eq!(num_params(&net), 272_474, "option B, depth 20");
    // Burn counts the running statistics too: two per channel of every batch normalization
    // (19 of them, 16 to 64 channels, and two projections).
    let statistics: usize = net
        .batch_norms()
        .iter()
        .map(|bn| 2 * bn.statistics().0.dims()[0])
        .sum();
    assert_eq!(burn::module::Module::num_params(&net), 272_474 + statistics);
}

#[test]
fn presets_refuse_depths_that_are_not_6n_plus_2() {
    let error = ResnetConfig::new(21, Shortcut::A)
        .description(10)
        .unwrap_err();
    assert!(error.contains("6n + 2") && error.contains("21"), "{error}");
    let twenty: ResnetConfig = toml::from_str("preset = \"resnet20\"\ndepth = 32").unwrap();
    let error = twenty.description(10).unwrap_err();
    assert!(
        error.contains("resnet20") && error.contains("32"),
        "{error}"
    );
    let wide: ResnetConfig = toml::from_str("preset = \"resnet\"\ndepth = 20\nwidth = 0").unwrap();
    assert!(wide.description(10).unwrap_err().contains("width"));
}

/// Per-channel mean and biased variance of `x` [n, c, h, w], on the host.
fn channel_statistics(x: &[f32], [n, c, h, w]: [usize; 4]) -> (Vec<f64>, Vec<f64>) {
    let plane = h * w;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let values: Vec<f64> = (0..n)
            .flat_map(|i| x[(i * c + ch) * plane..(i * c + ch + 1) * plane].iter())
            .map(|&v| v as f64)
            .collect();
        mean[ch] = values.iter().sum::<f64>() / values.len() as f64;
        var[ch] = values.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / values.len() as f64;
    }
    (mean, var)
}

fn bn_with_affine(channels: usize) -> BatchNorm<Compute> {
    let mut bn = BatchNorm::<Compute>::new(channels, 0.1, 1e-5, true, &device());
    let gamma = Tensor::from_data(TensorData::new(vec![1.5f32, -0.5, 2.0], [3]), &device());
    let beta = Tensor::from_data(TensorData::new(vec![0.1f32, 0.2, -0.3], [3]), &device());
    bn.gamma = Some(burn::module::Param::from_tensor(gamma));
    bn.beta = Some(burn::module::Param::from_tensor(beta));
    bn
}

#[test]
fn batch_norm_normalizes_and_records_as_pytorch_in_each_mode() {
    let dims = [4, 3, 5, 5];
    let x = random_input(dims, 3);
    let values = host(x.clone());
    let (mean, var) = channel_statistics(&values, dims);
    let count = (4 * 5 * 5) as f64;
    let gamma = [1.5, -0.5, 2.0];
    let beta = [0.1, 0.2, -0.3];
    let expected = |mean: &[f64], var: &[f64]| -> Vec<f32> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = (i / 25) % 3;
                ((v as f64 - mean[ch]) / (var[ch] + 1e-5).sqrt() * gamma[ch] + beta[ch]) as f32
            })
            .collect()
    };

    // Training: the batch's statistics; the running ones move by the momentum, the variance
    // unbiased (PyTorch's update).
    let bn = bn_with_affine(3);
    let y = bn.forward(x.clone(), NormMode::Train);
    assert_close(&host(y), &expected(&mean, &var), 1e-4, "train output");
    let (running_mean, running_var) = bn.statistics();
    let want_mean: Vec<f32> = mean.iter().map(|m| (0.1 * m) as f32).collect();
    let want_var: Vec<f32> = var
        .iter()
        .map(|v| (0.9 + 0.1 * v * count / (count - 1.0)) as f32)
        .collect();
    assert_close(&host(running_mean), &want_mean, 1e-5, "running mean");
    assert_close(&host(running_var), &want_var, 1e-5, "running variance");

    // Evaluation with the running statistics.
    let y = bn.forward(x.clone(), NormMode::Running);
    let running: Vec<f64> = want_var.iter().map(|&v| v as f64).collect();
    let running_mean: Vec<f64> = want_mean.iter().map(|&m| m as f64).collect();
    assert_close(
        &host(y),
        &expected(&running_mean, &running),
        1e-4,
        "eval output",
    );

    // Batch statistics record nothing.
    let y = bn.forward(x.clone(), NormMode::Batch);
    assert_close(&host(y), &expected(&mean, &var), 1e-4, "batch output");
    assert_close(&host(bn.statistics().1), &want_var, 1e-6, "unchanged");

    // The statistics pass: a cumulative average of the batches' statistics.
    let bn = bn.with_fresh_statistics();
    let x2 = random_input(dims, 4);
    let (mean2, var2) = channel_statistics(&host(x2.clone()), dims);
    bn.forward(x.clone(), NormMode::Accumulate { batch: 0 });
    bn.forward(x2, NormMode::Accumulate { batch: 1 });
    let (m, v) = bn.statistics();
    let unbiased = count / (count - 1.0);
    let avg_mean: Vec<f32> = (0..3)
        .map(|c| ((mean[c] + mean2[c]) / 2.0) as f32)
        .collect();
    let avg_var: Vec<f32> = (0..3)
        .map(|c| ((var[c] + var2[c]) / 2.0 * unbiased) as f32)
        .collect();
    assert_close(&host(m), &avg_mean, 1e-5, "accumulated mean");
    assert_close(&host(v), &avg_var, 1e-5, "accumulated variance");
}

#[test]
fn running_statistics_are_not_coordinates() {
    let config = resnet(8, Shortcut::B, 1);
    let net = config.init::<Compute>(1, &device());
    let other = config.init::<Compute>(2, &device());
    // Give the first net statistics of its own, then rebuild it from the second's vector:
    // its weights are the second's, its statistics still its own.
    let images = random_input([8, 3, 32, 32], 5);
    let net = net.with_fresh_statistics();
    net.forward_with(images, None, NormMode::Accumulate { batch: 0 });
    let before: Vec<Vec<f32>> = net
        .batch_norms()
        .iter()
        .map(|bn| host(bn.statistics().0))
        .collect();
    let rebuilt = unflatten(net.clone(), flatten(&other));
    assert_eq!(host(flatten(&rebuilt)), host(flatten(&other)));
    let after: Vec<Vec<f32>> = rebuilt
        .batch_norms()
        .iter()
        .map(|bn| host(bn.statistics().0))
        .collect();
    assert_eq!(before, after);
    assert!(before.iter().flatten().any(|&m| m != 0.0));
}

#[test]
fn the_parameter_free_shortcut_subsamples_and_pads_channels() {
    let net: NetDescription = toml::from_str(
        r#"layers = [
            { kind = "subsample", stride = 2 },
            { kind = "pad_channels", before = 1, after = 2 },
            { kind = "flatten" },
        ]"#,
    )
    .unwrap();
    let config = DescribedConfig::new(net, [2, 5, 4], 5 * 3 * 2).unwrap();
    let model = config.init::<Compute>(0, &device());
    let x = random_input([1, 2, 5, 4], 9);
    let values = host(x.clone());
    let y = host(model.forward(x, None));
    let mut want = vec![0.0f32; 5 * 3 * 2];
    for c in 0..2 {
        for (i, row) in [0, 2, 4].into_iter().enumerate() {
            for (j, col) in [0, 2].into_iter().enumerate() {
                want[((c + 1) * 3 + i) * 2 + j] = values[(c * 5 + row) * 4 + col];
            }
        }
    }
    assert_eq!(y, want);
}

#[test]
fn a_block_adds_its_body_to_its_shortcut() {
    let net: NetDescription = toml::from_str(
        r#"layers = [
            { kind = "residual", body = [{ kind = "conv2d", channels = 2, kernel = 3, padding = 1 }] },
            { kind = "flatten" },
        ]"#,
    )
    .unwrap();
    let config = DescribedConfig::new(net, [2, 4, 4], 32).unwrap();
    let model = config.init::<Compute>(0, &device());
    let x = random_input([3, 2, 4, 4], 2);
    let Some(Layer::Conv2d(conv)) = &model.layers[1] else {
        panic!("the block's convolution follows it: {:?}", model.ops)
    };
    let want = (conv.forward(x.clone()) + x.clone()).flatten::<2>(1, 3);
    assert_close(&host(model.forward(x, None)), &host(want), 1e-6, "block");
    assert_eq!(config.net.parameter_layers(), vec![(1, "Conv2d")]);
}

/// Random 32x32 images with labels 0..9 in turn.
fn random_images(n: usize, seed: u64) -> LabeledImages {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    LabeledImages {
        images: (0..n * 3 * 32 * 32).map(|_| rng.random()).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        channels: 3,
        height: 32,
        width: 32,
    }
}

/// A ResNet-8 task on random images: enough to see what `[bn]` does.
fn small_task(stats: StatsMode) -> ImageTask<Train, DescribedConfig> {
    ImageTask::<Train, _>::new(
        resnet(8, Shortcut::A, 1),
        Pipeline::Scale,
        random_images(64, 0),
        &random_images(32, 1),
        16,
        Energy::TestLoss,
        &device(),
    )
    .unwrap()
    .with_statistics(BnConfig { stats, batches: 2 })
    .unwrap()
}

/// The mean test cross-entropy of `net` evaluated with the statistics it carries.
fn loss_with_own_statistics(net: &Described<Compute>) -> f64 {
    let test = random_images(32, 1);
    let pixels: Vec<f32> = test.images.iter().map(|&p| p as f32 / 255.0).collect();
    let x = Tensor::<Compute, 4>::from_data(TensorData::new(pixels, [32, 3, 32, 32]), &device());
    let log_p = host(log_softmax(net.forward(x, None), 1));
    let total: f64 = (0..32)
        .map(|i| -(log_p[i * 10 + test.labels[i] as usize] as f64))
        .sum();
    total / 32.0
}

/// `net` with statistics of its own, accumulated over random images from `seed`.
fn with_statistics(net: &Described<Compute>, seed: u64) -> Described<Compute> {
    let net = net.clone().with_fresh_statistics();
    net.forward_with(
        random_input([8, 3, 32, 32], seed),
        None,
        NormMode::Accumulate { batch: 0 },
    );
    net
}

#[test]
fn each_statistics_mode_gives_a_point_its_own_statistics() {
    let recompute = small_task(StatsMode::Recompute);
    assert_eq!(recompute.statistics().unwrap().stats, StatsMode::Recompute);
    let a = recompute.init(1).valid();
    let b = recompute.init(2).valid();
    // Recomputed statistics depend only on the point: the same energy whatever statistics
    // the model carries in.
    let carried = with_statistics(&a, 7);
    assert_eq!(recompute.energy(&a), recompute.energy(&carried));
    assert!((recompute.energy(&a) - loss_with_own_statistics(&carried)).abs() > 1e-6);
    let batch = small_task(StatsMode::Batch).energy(&a);
    assert!(batch.is_finite());
    assert_ne!(batch, recompute.energy(&a));

    // Interpolation: the endpoints' statistics (as the statistics pass gives them) at t = 0
    // and 1, their mix between, whatever statistics the template carries.
    let interpolate = small_task(StatsMode::Interpolate);
    let (flat_a, flat_b) = (flatten(&a), flatten(&b));
    interpolate.set_endpoints(&flat_a, &flat_b);
    let at = |t: f64, template: &Described<Compute>| {
        interpolate.energy(&unflatten(template.clone(), lerp(&flat_a, &flat_b, t)))
    };
    assert_eq!(at(0.0, &carried), recompute.energy(&a));
    assert_eq!(at(1.0, &carried), recompute.energy(&b));
    let stats = |net: &Described<Compute>| -> Vec<(Tensor<Compute, 1>, Tensor<Compute, 1>)> {
        let task = small_task(StatsMode::Recompute);
        task.recomputed(net)
            .batch_norms()
            .iter()
            .map(|bn| bn.statistics())
            .collect()
    };
    let (stats_a, stats_b) = (stats(&a), stats(&b));
    let mut i = 0;
    let mixed = unflatten(a.clone(), lerp(&flat_a, &flat_b, 0.5)).map_batch_norms(&mut |bn| {
        let ((mean_a, var_a), (mean_b, var_b)) = (&stats_a[i], &stats_b[i]);
        i += 1;
        bn.with_statistics(
            (mean_a.clone() + mean_b.clone()).mul_scalar(0.5),
            (var_a.clone() + var_b.clone()).mul_scalar(0.5),
        )
    });
    let close = |x: f64, y: f64| (x - y).abs() < 1e-5 * y.abs().max(1.0);
    let middle = at(0.5, &carried);
    assert!(close(middle, loss_with_own_statistics(&mixed)), "{middle}");
    assert!(!close(middle, recompute.energy(&mixed)));
}
