//! Nets described layer by layer (`[task.net]`): the paper's MNIST and CIFAR-10 nets written out
//! in a config are the presets, bit for bit (initialization, logits, training as a task), and a
//! description that cannot be built is refused with the layer and the reason. (That the presets
//! are the TensorFlow tutorials' nets is tested against the nets written out field by field,
//! `nets::reference`.)

mod common;

use burn::prelude::*;
use common::{
    assert_close, flat_host, host, mnist_subset, random_input, small_cifar_config,
    small_mnist_config, stacked_and_pointwise, train_steps,
};
use levelset_data::{ChannelStats, LabeledImages};
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{flatten, unflatten_stacked};
use levelset_models::landscape::StackedPass;
use levelset_models::nets::described::NormMode;
use levelset_models::nets::{Activations, DescribedConfig, LayerSpec, NetDescription};
use levelset_models::optim::OptimizerConfig;
use levelset_models::tasks::{ImageNet, ImageTask, Pipeline};
use levelset_models::{Energy, Landscape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// `small_mnist_config()` (conv 4, conv 8, hidden 16, dropout 0.5), described.
const SMALL_MNIST: &str = r#"
weights = { truncated_normal = { std = 0.1 } }
biases = { constant = { value = 0.1 } }
layers = [
    { kind = "conv2d", channels = 4, kernel = 5, padding = "same" },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "conv2d", channels = 8, kernel = 5, padding = "same" },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "flatten" },
    { kind = "linear", features = 16 },
    { kind = "relu" },
    { kind = "dropout", p = 0.5 },
    { kind = "linear", features = 10 },
]
"#;

fn description(text: &str) -> NetDescription {
    toml::from_str(text).expect("a valid description")
}

fn small_mnist() -> DescribedConfig {
    DescribedConfig::new(description(SMALL_MNIST), [1, 28, 28], 10).unwrap()
}

/// `net` on the MNIST subset, its energy the test error.
fn task<N: ImageNet>(net: N) -> ImageTask<Train, N> {
    let (train, test) = mnist_subset();
    ImageTask::<Train, _>::new(
        net,
        Pipeline::Scale,
        train,
        &test,
        50,
        Energy::TestError,
        &device(),
    )
    .unwrap()
}

#[test]
fn a_described_paper_net_is_the_paper_net_bit_for_bit() {
    // The preset's own description is the one written out above.
    assert_eq!(small_mnist_config().description(), description(SMALL_MNIST));
    let dev = device();
    let preset = small_mnist_config().init::<Compute>(7, &dev);
    let described = small_mnist().init::<Compute>(7, &dev);
    assert_eq!(
        flat_host(&preset),
        flat_host(&described),
        "same seed, same weights"
    );

    let x = random_input([3, 1, 28, 28], 11);
    assert_eq!(
        host(preset.forward(x.clone(), None)),
        host(described.forward(x.clone(), None))
    );
    // Training: the same dropout masks from the same stream.
    let mut rng_a = ChaCha8Rng::seed_from_u64(5);
    let mut rng_b = ChaCha8Rng::seed_from_u64(5);
    assert_eq!(
        host(preset.forward(x.clone(), Some(&mut rng_a))),
        host(described.forward(x, Some(&mut rng_b)))
    );

    // Trained as a task: the same parameters after the same steps.
    let (preset_task, described_task) = (task(small_mnist_config()), task(small_mnist()));
    let optimizer: OptimizerConfig = toml::from_str("kind = \"adam\"\nlr = 1e-3").unwrap();
    let a = train_steps(&preset_task, preset_task.init(3), &optimizer, 3, 4);
    let b = train_steps(&described_task, described_task.init(3), &optimizer, 3, 4);
    assert_eq!(flat_host(&a), flat_host(&b));
    assert_eq!(
        preset_task.energy(&burn::module::AutodiffModule::valid(&a)),
        described_task.energy(&burn::module::AutodiffModule::valid(&b))
    );
}

/// `small_cifar_config()` (conv 4, conv 4, fc 16, fc 8, the tutorial's LRN and weight decay),
/// described.
const SMALL_CIFAR: &str = r#"
layers = [
    { kind = "conv2d", channels = 4, kernel = 5, padding = "same", weights = { truncated_normal = { std = 0.05 } }, biases = { constant = { value = 0.0 } } },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 3, stride = 2, padding = "same" },
    { kind = "lrn", depth_radius = 4, bias = 1.0, alpha = 0.00011111111111111112, beta = 0.75 },
    { kind = "conv2d", channels = 4, kernel = 5, padding = "same", weights = { truncated_normal = { std = 0.05 } }, biases = { constant = { value = 0.1 } } },
    { kind = "relu" },
    { kind = "lrn", depth_radius = 4, bias = 1.0, alpha = 0.00011111111111111112, beta = 0.75 },
    { kind = "max_pool2d", kernel = 3, stride = 2, padding = "same" },
    { kind = "flatten" },
    { kind = "linear", features = 16, weights = { truncated_normal = { std = 0.04 } }, biases = { constant = { value = 0.1 } }, weight_decay = 0.004 },
    { kind = "relu" },
    { kind = "linear", features = 8, weights = { truncated_normal = { std = 0.04 } }, biases = { constant = { value = 0.1 } }, weight_decay = 0.004 },
    { kind = "relu" },
    { kind = "linear", features = 10, weights = { truncated_normal = { std = 0.005208333333333333 } }, biases = { constant = { value = 0.0 } } },
]
"#;

/// `n` random 32x32 RGB images with random labels (the bit-for-bit checks need no real data).
fn random_images(n: usize, seed: u64) -> LabeledImages {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    LabeledImages {
        images: (0..n * 3 * 32 * 32).map(|_| rng.random()).collect(),
        labels: (0..n).map(|_| rng.random_range(0..10)).collect(),
        channels: 3,
        height: 32,
        width: 32,
    }
}

/// `net` on 60 random training and 20 random test images in 24x24 crops, its energy the test
/// loss.
fn cifar_task<N: ImageNet>(net: N) -> ImageTask<Train, N> {
    let (train, test) = (random_images(60, 1), random_images(20, 2));
    let stats = ChannelStats::from_images(&train);
    ImageTask::<Train, _>::new(
        net,
        Pipeline::Crop {
            size: 24,
            pad: 0,
            stats,
        },
        train,
        &test,
        20,
        Energy::TestLoss,
        &device(),
    )
    .unwrap()
}

#[test]
fn the_described_cifar10_net_is_the_paper_net_bit_for_bit() {
    // The preset's own description is the one written out above, and its pools pad as
    // TensorFlow's SAME: 24 -> 12 -> 6.
    assert_eq!(small_cifar_config().description(), description(SMALL_CIFAR));
    let described = DescribedConfig::new(description(SMALL_CIFAR), [3, 24, 24], 10).unwrap();
    let shapes = described.net.shapes([3, 24, 24], 10).unwrap();
    assert_eq!(shapes[2].to_string(), "[4, 12, 12] image");
    assert_eq!(shapes[7].to_string(), "[4, 6, 6] image");

    let dev = device();
    let preset = small_cifar_config().init::<Compute>(7, &dev);
    let net = described.init::<Compute>(7, &dev);
    assert_eq!(
        flat_host(&preset),
        flat_host(&net),
        "same seed, same weights"
    );
    let x = random_input([3, 3, 24, 24], 11);
    assert_eq!(
        host(preset.forward(x.clone(), None)),
        host(net.forward(x, None))
    );
    assert_eq!(
        host(
            preset
                .weight_penalty()
                .expect("two layers with weight decay")
        ),
        host(net.weight_penalty().expect("two layers with weight decay"))
    );

    // Trained as a task with its weight penalty: the same parameters after the same steps.
    let (preset_task, described_task) = (cifar_task(small_cifar_config()), cifar_task(described));
    let sgd: OptimizerConfig = toml::from_str("kind = \"sgd\"\nlr = 0.1").unwrap();
    let a = train_steps(&preset_task, preset_task.init(3), &sgd, 3, 3);
    let b = train_steps(&described_task, described_task.init(3), &sgd, 3, 3);
    assert_eq!(flat_host(&a), flat_host(&b));
    // The penalty took part: without it the described net trains elsewhere.
    let mut plain = small_cifar_config().description();
    for layer in &mut plain.layers {
        if let LayerSpec::Linear { weight_decay, .. } = layer {
            *weight_decay = 0.0;
        }
    }
    let plain_task = cifar_task(DescribedConfig::new(plain, [3, 24, 24], 10).unwrap());
    let c = train_steps(&plain_task, plain_task.init(3), &sgd, 3, 3);
    assert_ne!(flat_host(&b), flat_host(&c));
}

/// Every layer kind with parameters or a window, and grouped convolutions both on the shared
/// input and inside: the stacked pass's worst cases.
const EVERY_KIND: &str = r#"
layers = [
    { kind = "conv2d", channels = 4, kernel = 3, stride = 2, padding = 1, groups = 2 },
    { kind = "tanh" },
    { kind = "lrn", depth_radius = 2 },
    { kind = "conv2d", channels = 4, kernel = 3, padding = 2, groups = 2, bias = false },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "gelu" },
    { kind = "avg_pool2d", kernel = 2, stride = 1 },
    { kind = "max_pool2d", kernel = 2, stride = 2, padding = "same" },
    { kind = "flatten" },
    { kind = "layer_norm" },
    { kind = "linear", features = 12, bias = false, weight_decay = 0.01 },
    { kind = "sigmoid" },
    { kind = "dropout", p = 0.1 },
    { kind = "linear", features = 10 },
]
"#;

#[test]
fn every_layer_kind_builds_and_gives_logits() {
    let net = description(EVERY_KIND);
    let config = DescribedConfig::new(net, [2, 12, 12], 10).unwrap();
    let dev = device();
    let model = config.init::<Compute>(1, &dev);
    // conv 12 -> 6, conv (padding 2) 6 -> 8, max 8 -> 4, avg 4 -> 3, max with TensorFlow's
    // SAME padding (none above, one below) ceil(3 / 2) = 2: 4 * 2 * 2 features.
    let weights: Vec<usize> = common::params(&model)
        .iter()
        .map(|(dims, _, _)| dims.iter().product())
        .collect();
    assert_eq!(
        weights,
        vec![4 * 9, 4, 4 * 2 * 9, 16, 16, 16 * 12, 12 * 10, 10]
    );
    let logits = host(model.forward(random_input([2, 2, 12, 12], 3), None));
    assert_eq!(logits.len(), 20);
    assert!(logits.iter().all(|v| v.is_finite()));
    // PyTorch's default draws: weights and biases within 1/sqrt(fan_in).
    let (_, conv1, _) = &common::params(&model)[0];
    let bound = 1.0 / 9f32.sqrt();
    assert!(conv1.iter().all(|v| v.abs() <= bound), "{conv1:?}");
    assert!(conv1.iter().any(|v| v.abs() > bound / 2.0));
}

/// The forward pass is its layer operations in turn (what `bench --breakdown` times one by
/// one); cut from each other's graphs, they give the same logits and let each operation's
/// backward run alone.
#[test]
fn a_net_runs_as_its_layer_operations() {
    let dev = device();
    let mnist = small_mnist().init::<Compute>(7, &dev);
    let names: Vec<String> = mnist
        .operations()
        .into_iter()
        .map(|ops| mnist.operation_name(ops))
        .collect();
    assert_eq!(
        names,
        [
            "conv2d+relu+max_pool2d",
            "conv2d+relu+max_pool2d",
            "flatten",
            "linear",
            "relu",
            "dropout",
            "linear"
        ]
    );

    let config = DescribedConfig::new(description(EVERY_KIND), [2, 12, 12], 10).unwrap();
    let net = config.init::<Train>(1, &dev);
    let operations = net.operations();
    assert_eq!(
        operations.iter().map(|r| r.len()).sum::<usize>(),
        net.ops.len(),
        "every op in exactly one operation"
    );
    let x = Tensor::<Train, 4>::from_inner(random_input([2, 2, 12, 12], 3));
    let whole = host(net.forward(x.clone(), None));
    let mut a = Activations::Image(x);
    for (i, ops) in operations.into_iter().enumerate() {
        let y = net.forward_operation(ops, a.clone(), None, NormMode::Running);
        // The operation's backward alone gives its (tracked) input a gradient of its shape.
        if i > 0 {
            let grads = y.clone().sum().backward();
            let (grad, dims) = match &a {
                Activations::Image(x) => {
                    (x.grad(&grads).map(|g| g.dims().to_vec()), x.dims().to_vec())
                }
                Activations::Flat(x) => {
                    (x.grad(&grads).map(|g| g.dims().to_vec()), x.dims().to_vec())
                }
            };
            assert_eq!(grad, Some(dims), "operation {i}");
        }
        a = y.leaf();
    }
    let Activations::Flat(logits) = a else {
        panic!("the net ends in features")
    };
    assert_eq!(host(logits), whole);
}

#[test]
fn descriptions_that_cannot_be_built_say_which_layer_and_why() {
    let refused = |layers: &str, input: [usize; 3], needles: &[&str]| {
        let net = description(&format!("layers = [{layers}]"));
        let error = net.shapes(input, 10).unwrap_err();
        for needle in needles {
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
        }
    };
    let mnist = [1, 28, 28];
    refused(
        r#"{ kind = "linear", features = 10 }"#,
        mnist,
        &["layers[0] (linear)", "[1, 28, 28] image", "add a `flatten`"],
    );
    refused(
        r#"{ kind = "flatten" }, { kind = "max_pool2d", kernel = 2 }"#,
        mnist,
        &["layers[1] (max_pool2d)", "784 features", "before `flatten`"],
    );
    refused(
        r#"{ kind = "flatten" }, { kind = "linear", features = 7 }"#,
        mnist,
        &["ends in a 7 features", "10 classes"],
    );
    refused(
        r#"{ kind = "conv2d", channels = 4, kernel = 29 }"#,
        mnist,
        &["layers[0] (conv2d)", "29x29 window", "28x28 input"],
    );
    refused(
        r#"{ kind = "max_pool2d", kernel = 2, padding = 2 }"#,
        mnist,
        &["layers[0] (max_pool2d)", "more than half the kernel"],
    );
    refused(
        r#"{ kind = "conv2d", channels = 4, kernel = 3, padding = 3 }"#,
        mnist,
        &["layers[0] (conv2d)", "not less than the kernel"],
    );
    refused(
        r#"{ kind = "conv2d", channels = 4, kernel = 4, padding = "same" }"#,
        mnist,
        &["\"same\" needs stride 1 and an odd kernel"],
    );
    refused(
        r#"{ kind = "conv2d", channels = 3, kernel = 3, groups = 2 }"#,
        [2, 8, 8],
        &["groups (2) must divide", "(2)", "(3)"],
    );
    refused(
        r#"{ kind = "batch_norm", momentum = 1.5 }"#,
        mnist,
        &[
            "layers[0] (batch_norm)",
            "momentum must be in [0, 1]",
            "1.5",
        ],
    );
    refused(
        r#"{ kind = "group_norm", groups = 3 }"#,
        [4, 8, 8],
        &["layers[0] (group_norm)", "groups (3) must divide", "(4)"],
    );
    refused(
        r#"{ kind = "flatten" }, { kind = "global_avg_pool" }"#,
        mnist,
        &["layers[1] (global_avg_pool)", "takes an image"],
    );
    // Inside blocks, the path names the layer; a block whose branches disagree names both
    // shapes.
    refused(
        r#"{ kind = "conv2d", channels = 4, kernel = 3, padding = 1 },
        { kind = "relu" },
        { kind = "residual", body = [{ kind = "conv2d", channels = 4, kernel = 3, padding = 1 }] },
        { kind = "residual", body = [
            { kind = "relu" },
            { kind = "residual", body = [{ kind = "flatten" }, { kind = "conv2d", channels = 4, kernel = 3 }] },
        ] }"#,
        mnist,
        &["layers[3].body[1].body[1] (conv2d)", "takes an image"],
    );
    refused(
        r#"{ kind = "residual", body = [{ kind = "conv2d", channels = 4, kernel = 3, stride = 2, padding = 1 }] }"#,
        mnist,
        &[
            "layers[0] (residual)",
            "[4, 14, 14] image",
            "identity shortcut",
            "[1, 28, 28] image",
        ],
    );
    refused(
        r#"{ kind = "residual", body = [{ kind = "conv2d", channels = 4, kernel = 3, stride = 2, padding = 1 }],
           shortcut = [{ kind = "subsample", stride = 2 }, { kind = "pad_channels", before = 1, after = 1 }] }"#,
        mnist,
        &[
            "layers[0] (residual)",
            "[4, 14, 14] image",
            "its shortcut gives",
            "[3, 14, 14] image",
        ],
    );
    refused(
        r#"{ kind = "residual", body = [] }"#,
        mnist,
        &["layers[0] (residual)", "at least one layer in its body"],
    );
    refused(
        r#"{ kind = "lstm", hidden = 8 }"#,
        mnist,
        &[
            "layers[0] (lstm)",
            "make language models",
            "task.kind = \"ptb\"",
        ],
    );
    refused(
        r#"{ kind = "flatten" }, { kind = "dropout", p = 1.0 }"#,
        mnist,
        &["layers[1] (dropout)", "[0, 1)"],
    );
    refused(
        r#"{ kind = "avg_pool2d", kernel = 3, stride = 2, padding = "same" }"#,
        mnist,
        &["layers[0] (avg_pool2d)", "max_pool2d only"],
    );
    refused(
        r#"{ kind = "flatten" }, { kind = "linear", features = 10, weight_decay = -1.0 }"#,
        mnist,
        &["layers[1] (linear)", "weight_decay", "-1"],
    );
    refused(
        r#"{ kind = "conv2d", channels = 4, kernel = 3, weights = { uniform = { low = 1.0, high = 0.0 } } }"#,
        mnist,
        &[
            "layers[0] (conv2d)",
            "weights: uniform needs finite low < high",
        ],
    );
    let net = description(
        r#"biases = { normal = { std = -1.0 } }
        layers = [{ kind = "flatten" }, { kind = "linear", features = 10 }]"#,
    );
    let error = net.shapes(mnist, 10).unwrap_err();
    assert!(error.contains("biases: std must be"), "{error}");
    refused("", mnist, &["at least one layer"]);
    // Unknown kinds and keys are parse errors that name them.
    let unknown = toml::from_str::<NetDescription>(r#"layers = [{ kind = "conv3d" }]"#)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("conv3d"), "{unknown}");
    let key = toml::from_str::<NetDescription>(
        r#"layers = [{ kind = "linear", features = 10, width = 3 }]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(key.contains("width"), "{key}");
}

/// The stacked pass of `k` described nets gives each net's own evaluation logits, for every
/// layer kind; and as a task, the stacked energies equal those computed one by one.
#[test]
fn the_stacked_pass_of_described_nets_is_each_net_on_its_own() {
    let dev = device();
    let config = DescribedConfig::new(description(EVERY_KIND), [2, 12, 12], 10).unwrap();
    let nets: Vec<_> = (0..3)
        .map(|seed| config.init::<Compute>(seed, &dev))
        .collect();
    let points = burn::tensor::Tensor::stack::<2>(nets.iter().map(flatten).collect(), 0);
    let stacked = unflatten_stacked(nets[0].clone(), points);
    let x = random_input([5, 2, 12, 12], 9);
    let together = stacked.forward(x.clone()); // [3, 5, 10]
    assert_eq!(together.dims(), [3, 5, 10]);
    for (j, net) in nets.iter().enumerate() {
        let alone = host(net.forward(x.clone(), None));
        let row = host(together.clone().narrow(0, j, 1).reshape([5, 10]));
        assert_close(&row, &alone, 1e-5, &format!("net {j}"));
    }

    let task = task(small_mnist());
    assert_eq!(task.stacked_pass(&dev), StackedPass::Slower);
    let (stacked, pointwise) = stacked_and_pointwise(&task);
    // Summation order differs between the grouped and the plain convolution, so a near tie
    // between two logits may break differently: allow one image of the subset.
    let images = task.eval_examples() as f64;
    for (s, p) in stacked.iter().zip(&pointwise) {
        assert!(
            (s - p).abs() <= 1.0 / images + 1e-9,
            "{stacked:?} vs {pointwise:?}"
        );
    }
}
