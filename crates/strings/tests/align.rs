//! Weight matching recovers the permutation that relates two copies of one network.

use burn::module::Param;
use burn::prelude::*;
use levelset_data::{LabeledImages, linear_regression};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{distance, flatten, unflatten};
use levelset_models::init::Init;
use levelset_models::nets::described::{Layer, NormMode};
use levelset_models::nets::{
    Activation, Described, DescribedConfig, MlpConfig, MnistConvConfig, NetDescription,
    ResnetConfig, Shortcut,
};
use levelset_models::statistics::{BnConfig, StatsMode};
use levelset_models::tasks::{ImageNet, ImageTask, Pipeline, RegressionLoss};
use levelset_models::{Energy, Landscape};
use levelset_strings::{AlignConfig, Evaluator, align, permutable_units, permute};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{adam, linears, noise_images, regression, trained};

/// Reorders `param` along `axis` seen in blocks: entry block `i` becomes block `order[i]`.
fn reorder<const D: usize>(
    param: Param<Tensor<Compute, D>>,
    axis: usize,
    order: &[usize],
) -> Param<Tensor<Compute, D>> {
    param.map(|t| {
        let dims = t.dims();
        let blocks = order.len();
        let block = dims[axis] / blocks;
        let rows: Vec<i64> = order
            .iter()
            .flat_map(|&i| (i * block..(i + 1) * block).map(|r| r as i64))
            .collect();
        let idx = Tensor::from_data(TensorData::new(rows, [dims[axis]]), &device());
        t.select(axis, idx)
    })
}

fn inverse(order: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; order.len()];
    for (i, &j) in order.iter().enumerate() {
        inv[j] = i;
    }
    inv
}

/// A random reordering of each layer's units.
fn random_orders<const N: usize>(sizes: [usize; N], seed: u64) -> [Vec<usize>; N] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sizes.map(|n| {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        order
    })
}

/// `b` is `a` with each layer's units reordered by `orders`: checks that both compute the
/// same function, that alignment finds the inverse reordering and lands on `a` exactly, with
/// the barrier gone.
fn aligns_exactly<L: Landscape<Train>>(
    task: &L,
    a: &Tensor<Compute, 1>,
    b: &Tensor<Compute, 1>,
    orders: &[Vec<usize>],
) {
    let evaluator = Evaluator::new(task);
    let (ea, eb) = (evaluator.energy(a), evaluator.energy(b));
    assert!((ea - eb).abs() < 1e-4 * ea.abs().max(1.0), "{ea} vs {eb}");
    assert!(distance(a, b) > 0.1);

    let aligned = align(task, a, b, &AlignConfig::default(), 0).expect("supported network");
    let inverses: Vec<Vec<usize>> = orders.iter().map(|o| inverse(o)).collect();
    assert_eq!(aligned.orders, inverses);
    aligned.b.to_data().assert_eq(&a.to_data(), true);
    let report = aligned.report;
    assert_eq!(
        report.units,
        orders.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(report.barrier_after, 0.0, "{report:?}");
    assert!(report.barrier_before > 0.01, "{report:?}");
    assert!(report.linear_max_after < report.linear_max_before);
    assert!(
        report.sweeps >= 2,
        "a sweep that improves is followed by one that checks"
    );
}

#[test]
fn weight_matching_undoes_a_random_permutation_of_an_mlp() {
    let data = linear_regression(3, 2, 200, 0.1, 4);
    let config = MlpConfig {
        widths: vec![3, 12, 10, 2],
        hidden: Activation::Relu,
        output: Activation::Identity,
        bias: true,
        weight_init: Init::Normal { std: 0.5 },
        bias_init: Init::Normal { std: 0.1 },
        fan_in_scaled: false,
    };
    let task = regression(config, RegressionLoss::Mse, data.clone(), &data);
    let net = trained(&task, 0.05, 1, &adam(0.01, 20_000));
    let orders = random_orders([12, 10], 9);
    let mut permuted = net.clone();
    let mut layers = linears(&mut permuted);
    for (h, order) in orders.iter().enumerate() {
        layers[h].weight = reorder(layers[h].weight.clone(), 1, order);
        layers[h].bias = layers[h].bias.take().map(|b| reorder(b, 0, order));
        layers[h + 1].weight = reorder(layers[h + 1].weight.clone(), 0, order);
    }
    aligns_exactly(&task, &flatten(&net), &flatten(&permuted), &orders);
}

/// `net` memorizing 40 noise images, its energy the loss on them.
fn noise_task<N: ImageNet>(net: N) -> ImageTask<Train, N> {
    let images = noise_images(40, 1);
    ImageTask::<Train, _>::new(
        net,
        Pipeline::Scale,
        images.clone(),
        &images,
        20,
        Energy::TestLoss,
        &device(),
    )
    .expect("valid task")
}

/// The paper's MNIST convnet (or a net described as it) with its conv1 channels, conv2
/// channels and hidden units reordered: its parameter layers are layers 0, 3, 7 and 10.
fn permute_convnet(net: Described<Compute>, orders: &[Vec<usize>; 3]) -> Described<Compute> {
    let [c1, c2, h] = orders;
    let mut net = net;
    let mut take = |i: usize| net.layers[i].take().expect("a parameter layer");
    let (
        Layer::Conv2d(mut conv1),
        Layer::Conv2d(mut conv2),
        Layer::Linear(mut fc1),
        Layer::Linear(mut fc2),
    ) = (take(0), take(3), take(7), take(10))
    else {
        panic!("the MNIST convnet's layers")
    };
    conv1.weight = reorder(conv1.weight, 0, c1);
    conv1.bias = conv1.bias.map(|b| reorder(b, 0, c1));
    conv2.weight = reorder(reorder(conv2.weight, 1, c1), 0, c2);
    conv2.bias = conv2.bias.map(|b| reorder(b, 0, c2));
    // fc1's rows come in blocks of 7 x 7, one per conv2 channel.
    fc1.weight = reorder(reorder(fc1.weight, 0, c2), 1, h);
    fc1.bias = fc1.bias.map(|b| reorder(b, 0, h));
    fc2.weight = reorder(fc2.weight, 0, h);
    for (i, layer) in [
        (0, Layer::Conv2d(conv1)),
        (3, Layer::Conv2d(conv2)),
        (7, Layer::Linear(fc1)),
        (10, Layer::Linear(fc2)),
    ] {
        net.layers[i] = Some(layer);
    }
    net
}

#[test]
fn weight_matching_undoes_a_random_permutation_of_a_convnet() {
    let config = MnistConvConfig {
        conv1: 4,
        conv2: 6,
        hidden: 16,
        dropout: 0.0,
    };
    let task = noise_task(config);
    let net = trained(&task, 1.0, 2, &adam(0.003, 2000));
    let orders = random_orders([4, 6, 16], 3);
    let a = flatten(&net);
    aligns_exactly(&task, &a, &flatten(&permute_convnet(net, &orders)), &orders);
}

/// The convnet above, described layer by layer: its units are found from the description,
/// and a permutation of them is undone as in the paper's convnet.
#[test]
fn weight_matching_undoes_a_random_permutation_of_a_described_convnet() {
    let description: NetDescription = toml::from_str(
        r#"
layers = [
    { kind = "conv2d", channels = 4, kernel = 5, padding = "same" },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "conv2d", channels = 6, kernel = 5, padding = "same" },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "flatten" },
    { kind = "linear", features = 16 },
    { kind = "relu" },
    { kind = "linear", features = 10 },
]
"#,
    )
    .unwrap();
    let config = DescribedConfig::new(description, [1, 28, 28], 10).unwrap();
    let task = noise_task(config);
    let net = trained(&task, 1.0, 2, &adam(0.003, 2000));
    let a = flatten(&net);
    // The same parameters in the same order as the paper's convnet of these sizes.
    let preset = MnistConvConfig {
        conv1: 4,
        conv2: 6,
        hidden: 16,
        dropout: 0.0,
    };
    let as_preset = unflatten(preset.init::<Compute>(0, &device()), a.clone());
    let orders = random_orders([4, 6, 16], 3);
    aligns_exactly(
        &task,
        &a,
        &flatten(&permute_convnet(as_preset, &orders)),
        &orders,
    );
}

#[test]
fn bad_align_settings_name_the_key() {
    let config = AlignConfig {
        max_sweeps: 0,
        ..AlignConfig::default()
    };
    assert!(
        config
            .validate()
            .unwrap_err()
            .starts_with("align.max_sweeps")
    );
    let config = AlignConfig {
        grid: 1,
        ..AlignConfig::default()
    };
    assert!(config.validate().unwrap_err().starts_with("align.grid"));
}

/// He et al.'s ResNet-20 (option A or B) at `width`, on a task of random 32x32 images whose
/// BatchNorm statistics are recomputed at every point.
fn resnet_task(
    shortcut: Shortcut,
    width: usize,
) -> (DescribedConfig, ImageTask<Train, DescribedConfig>) {
    let preset = ResnetConfig {
        width,
        ..ResnetConfig::new(20, shortcut)
    };
    let config = DescribedConfig::new(preset.description(10).unwrap(), [3, 32, 32], 10).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let images = LabeledImages {
        images: (0..8 * 3 * 32 * 32).map(|_| rng.random()).collect(),
        labels: (0..8).map(|_| rng.random_range(0..10)).collect(),
        channels: 3,
        height: 32,
        width: 32,
    };
    let task = ImageTask::<Train, _>::new(
        config.clone(),
        Pipeline::Scale,
        images.clone(),
        &images,
        8,
        Energy::TestLoss,
        &device(),
    )
    .and_then(|task| {
        task.with_statistics(BnConfig {
            stats: StatsMode::Recompute,
            batches: 1,
        })
    })
    .expect("valid task");
    (config, task)
}

/// A residual stream's channels are one group across its blocks, and option A's zero-padded
/// stream carries the narrower one's channels: a random permutation of every group keeps the
/// logits (with each batch's statistics) and the energy (with recomputed statistics), and
/// weight matching undoes it exactly.
#[test]
fn permuting_a_resnet_keeps_its_function_and_weight_matching_undoes_it() {
    for (shortcut, width) in [
        (Shortcut::A, 1),
        (Shortcut::B, 1),
        (Shortcut::A, 4),
        (Shortcut::B, 4),
    ] {
        let (config, task) = resnet_task(shortcut, width);
        let net = config.init::<Compute>(3, &device());
        let flat = flatten(&net);
        let orders = levelset_strings::random_orders::<Train, _>(&task, 7).unwrap();
        // Three streams (the stem's is stage 1's: a stage's blocks add to one stream) and
        // every block's inner channels.
        assert_eq!(orders.len(), 3 + 9, "{shortcut:?} x{width}");
        let permuted = permute::<Train, _>(&task, &flat, &orders).unwrap();
        assert!(distance(&flat, &permuted) > 1.0, "{shortcut:?} x{width}");

        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x: Vec<f32> = (0..4 * 3 * 32 * 32)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let x = Tensor::<Compute, 4>::from_data(TensorData::new(x, [4, 3, 32, 32]), &device());
        let logits = |flat: &Tensor<Compute, 1>| {
            unflatten(net.clone(), flat.clone())
                .forward_with(x.clone(), None, NormMode::Batch)
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let (ours, theirs) = (logits(&flat), logits(&permuted));
        let scale = ours.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (o, t) in ours.iter().zip(&theirs) {
            assert!(
                (o - t).abs() <= 1e-5 * scale,
                "{shortcut:?} x{width}: {o} vs {t}"
            );
        }
        let evaluator = Evaluator::new(&task);
        let (ea, eb) = (evaluator.energy(&flat), evaluator.energy(&permuted));
        assert!((ea - eb).abs() <= 1e-5 * ea.abs().max(1.0), "{ea} vs {eb}");

        if width == 1 {
            let aligned = align(&task, &flat, &permuted, &AlignConfig::default(), 0).unwrap();
            let inverses: Vec<Vec<usize>> = orders.iter().map(|o| inverse(o)).collect();
            assert_eq!(aligned.orders, inverses, "{shortcut:?}");
            aligned.b.to_data().assert_eq(&flat.to_data(), true);
            assert_eq!(
                aligned.report.bn.map(|bn| bn.stats),
                Some(StatsMode::Recompute)
            );
        }
    }
}

/// Orders that move a zero-padded stream's carried channels against the narrower stream's
/// are not a symmetry of the net: refused, naming the layer and its carried units.
#[test]
fn permute_refuses_orders_that_break_a_padded_shortcut() {
    let (config, task) = resnet_task(Shortcut::A, 1);
    let flat = flatten(&config.init::<Compute>(0, &device()));
    let sizes = permutable_units::<Train, _>(&task).unwrap();
    // Stage 2's stream (32 channels) carries stage 1's 16 as its channels 8..24.
    let stream = sizes.iter().position(|&n| n == 32).unwrap() + 1;
    assert_eq!(sizes[stream], 32, "{sizes:?}");
    let mut orders: Vec<Vec<usize>> = sizes.iter().map(|&n| (0..n).collect()).collect();
    orders[stream].swap(0, 10);
    let error = permute::<Train, _>(&task, &flat, &orders).unwrap_err();
    assert!(
        error.contains(&format!("layer {stream}")) && error.contains("8..24"),
        "{error}"
    );
}
