//! Residual nets with batch normalization from end to end: PyTorch ResNets import under the
//! names their implementations give them (`conv1`, `layer2.0.shortcut.0`, ...), released
//! checkpoints as they are (`.th`, wrapped, `module.` prefixes), and evaluate to PyTorch's
//! logits with the file's running statistics; a ResNet trained by levelset connects with
//! every point's statistics set as `[bn]` says, and the reports say which.

use std::path::Path;

use burn::prelude::*;
use levelset_data::testing::{real_data_or_skip, real_or_fixture_data_dir};
use levelset_models::Architecture;
use levelset_models::backend::{Compute, device};
use levelset_models::nets::Described;
use tempfile::TempDir;

use crate::common::*;

/// The fixtures' ResNet-8 (`make_resnet.py`): stages of 4, 8 and 16 channels, one block each,
/// the shortcut of the blocks that change the shape written in place of SHORTCUT_2 and
/// SHORTCUT_3.
const RESNET8: &str = r#"
name = "resnet8-fixture"
energy = "test_error"

[task]
kind = "cifar10"
train_limit = 64
test_limit = 64
batch_size = 16
crop = 32

[task.net]
layers = [
    { kind = "conv2d", channels = 4, kernel = 3, padding = 1, bias = false },
    { kind = "batch_norm" },
    { kind = "relu" },
    { kind = "residual", body = [
        { kind = "conv2d", channels = 4, kernel = 3, padding = 1, bias = false },
        { kind = "batch_norm" },
        { kind = "relu" },
        { kind = "conv2d", channels = 4, kernel = 3, padding = 1, bias = false },
        { kind = "batch_norm" },
    ] },
    { kind = "relu" },
    { kind = "residual", body = [
        { kind = "conv2d", channels = 8, kernel = 3, stride = 2, padding = 1, bias = false },
        { kind = "batch_norm" },
        { kind = "relu" },
        { kind = "conv2d", channels = 8, kernel = 3, padding = 1, bias = false },
        { kind = "batch_norm" },
    ], shortcut = SHORTCUT_2 },
    { kind = "relu" },
    { kind = "residual", body = [
        { kind = "conv2d", channels = 16, kernel = 3, stride = 2, padding = 1, bias = false },
        { kind = "batch_norm" },
        { kind = "relu" },
        { kind = "conv2d", channels = 16, kernel = 3, padding = 1, bias = false },
        { kind = "batch_norm" },
    ], shortcut = SHORTCUT_3 },
    { kind = "relu" },
    { kind = "global_avg_pool" },
    { kind = "linear", features = 10 },
]

[train]
check_every = 5
max_steps = 10

[train.optimizer]
kind = "sgd"
lr = 0.05
momentum = 0.9

[bn]
stats = "recompute"
batches = 2
"#;

pub fn resnet8(option: char) -> String {
    let (two, three) = match option {
        'A' => (
            r#"[{ kind = "subsample", stride = 2 }, { kind = "pad_channels", before = 2, after = 2 }]"#,
            r#"[{ kind = "subsample", stride = 2 }, { kind = "pad_channels", before = 4, after = 4 }]"#,
        ),
        _ => (
            r#"[{ kind = "conv2d", channels = 8, kernel = 1, stride = 2, bias = false }, { kind = "batch_norm" }]"#,
            r#"[{ kind = "conv2d", channels = 16, kernel = 1, stride = 2, bias = false }, { kind = "batch_norm" }]"#,
        ),
    };
    RESNET8
        .replace("SHORTCUT_2", two)
        .replace("SHORTCUT_3", three)
}

fn load(dir: &Path) -> Described<Compute> {
    load_checkpoint(dir, |architecture| {
        let Architecture::Described(net) = architecture else {
            panic!("a described net: {architecture:?}")
        };
        net.init::<Compute>(0, &device())
    })
    .0
}

#[test]
fn pytorch_resnets_import_by_their_names_and_give_pytorchs_logits() {
    // The import evaluates the net on CIFAR-10, which the committed fixtures do not hold.
    let Some(data) = real_data_or_skip() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let expected = read_json(&import_fixtures().join("resnet8.json"));
    let images: Vec<f32> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|image| image.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    for (option, file, net) in [
        ('B', "resnet8_b.safetensors", "b"),
        ('A', "resnet8_a.th", "a"),
    ] {
        let config = write(dir.path(), &format!("{net}.toml"), &resnet8(option));
        let out = dir.path().join(net);
        let run = succeed(import_args(
            &config,
            &import_fixtures().join(file),
            &out,
            &data,
        ));
        assert!(
            run.stdout.contains("num_batches_tracked") && run.stdout.contains("eval() mode"),
            "{}",
            run.describe()
        );
        if option == 'A' {
            // A released checkpoint: wrapped in a dict, every name with DataParallel's prefix.
            assert!(
                run.stdout.contains("module.") && run.stdout.contains("state_dict"),
                "{}",
                run.describe()
            );
        }
        let model = load(&out);
        let x =
            Tensor::<Compute, 1>::from_floats(images.as_slice(), &device()).reshape([2, 3, 8, 8]);
        let got = model.forward(x, None).into_data().to_vec::<f32>().unwrap();
        let want: Vec<f64> = expected["logits"][net]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (*g as f64 - w).abs() < 1e-4,
                "option {option}: levelset {g} against PyTorch's {w}"
            );
        }
        // `eval` reports both energies: with [bn]'s statistics and with the file's.
        let report = succeed(args(&[
            &"eval",
            &"--config",
            &config,
            &"--checkpoint",
            &out,
            &"--data-dir",
            &data,
        ]));
        let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
        assert_eq!(report["bn"]["stats"], "recompute", "{report}");
        assert!(
            report["energy_with_carried_statistics"].is_f64(),
            "{report}"
        );
    }
}

/// A ResNet on MNIST small enough for seconds: a stem, one block with a projection
/// shortcut, pooling.
pub const MNIST_RESNET: &str = r#"
name = "mnist-resnet"
energy = "test_loss"

[task]
kind = "mnist"
train_limit = 128
test_limit = 64
batch_size = 32

[task.net]
layers = [
    { kind = "conv2d", channels = 4, kernel = 3, padding = 1, bias = false },
    { kind = "batch_norm" },
    { kind = "relu" },
    { kind = "residual", body = [
        { kind = "conv2d", channels = 8, kernel = 3, stride = 2, padding = 1, bias = false },
        { kind = "batch_norm" },
        { kind = "relu" },
        { kind = "conv2d", channels = 8, kernel = 3, padding = 1, bias = false },
        { kind = "batch_norm" },
    ], shortcut = [
        { kind = "conv2d", channels = 8, kernel = 1, stride = 2, bias = false },
        { kind = "batch_norm" },
    ] },
    { kind = "relu" },
    { kind = "global_avg_pool" },
    { kind = "linear", features = 10 },
]

[train]
check_every = 10
max_steps = 150

[train.optimizer]
kind = "adam"
lr = 0.01

[bn]
stats = "STATS"
batches = 2

[dss]
alpha = 0.98
slack = 1.05
grid = 4
insert_at = "midpoint"
order = "breadth_first"
max_depth = 1
max_beads = 3
first_bead_always = true
length_over = "all"
"#;

#[test]
fn a_resnet_connects_with_each_points_statistics_set_as_bn_says() {
    let dir = TempDir::new().unwrap();
    let data = real_or_fixture_data_dir();
    let config = write(
        dir.path(),
        "recompute.toml",
        &MNIST_RESNET.replace("STATS", "recompute"),
    );
    let train = |seed: &str, out: &str| {
        let out = dir.path().join(out);
        succeed(train_args(&config, seed, "2.0", &out, &data));
        out
    };
    let (a, b) = (train("1", "a"), train("2", "b"));
    let energy = |c: &Path| f64_at(&read_json(&c.join("model.json")), "energy");
    let level = format!("{}", 1.1 * energy(&a).max(energy(&b)));
    for stats in ["recompute", "interpolate", "batch"] {
        let config = write(
            dir.path(),
            &format!("{stats}.toml"),
            &MNIST_RESNET.replace("STATS", stats),
        );
        let out = dir.path().join(format!("dss-{stats}"));
        succeed(connect_args(&config, [&a, &b], &level, "dss", &out, &data));
        let report = read_json(&out.join("report.json"));
        assert_eq!(report["bn"]["stats"], stats, "{report}");
        assert_eq!(report["bn"]["batches"], 2, "{report}");
        let beads = u64_at(&report, "beads");
        assert!(beads >= 2, "{report}");
    }
    // Outside a path a checkpoint is its own endpoint: under `interpolate` its energy is the
    // one with its recomputed statistics.
    let eval_with = |stats: &str| {
        let run = succeed(args(&[
            &"eval",
            &"--config",
            &dir.path().join(format!("{stats}.toml")),
            &"--checkpoint",
            &a,
            &"--data-dir",
            &data,
        ]));
        f64_at(&serde_json::from_str(&run.stdout).unwrap(), "energy")
    };
    assert_eq!(eval_with("interpolate"), eval_with("recompute"));
    // The Hessian of a batch-normalized net, on the training split (each example's batch
    // statistics).
    let hessian = read_json(&{
        let out = dir.path().join("hessian.json");
        succeed(args(&[
            &"hessian",
            &"--config",
            &config,
            &"--checkpoint",
            &a,
            &"--iterations",
            &"4",
            &"--examples",
            &"32",
            &"--out",
            &out,
            &"--data-dir",
            &data,
        ]));
        out
    });
    assert!(
        hessian["top_eigenvalues"][0]["value"]
            .as_f64()
            .is_some_and(f64::is_finite)
    );
    // Weight matching permutes a residual stream's channels as one group, and align.json
    // keeps the straight line's barrier before and after, with recomputed statistics.
    let aligned = dir.path().join("aligned");
    let mut words = connect_args(&config, [&a, &b], &level, "dss", &aligned, &data);
    words.push("--align".into());
    succeed(words);
    let align = read_json(&aligned.join("align.json"));
    assert_eq!(align["bn"]["stats"], "recompute", "{align}");
    // The stem's 4 channels and the stream's 8 are one group each (the block's body and
    // projection shortcut add into the same 8), with the body's inner 8.
    assert_eq!(align["units"], serde_json::json!([4, 8, 8]), "{align}");
    for key in ["barrier_before", "barrier_after"] {
        assert!(align[key].as_f64().is_some_and(f64::is_finite), "{align}");
    }
    // [bn] on a net without batch normalization is refused, naming the section.
    let plain = MNIST_RESNET
        .replace("STATS", "batch")
        .replace(r#"{ kind = "batch_norm" },"#, "");
    let plain = write(dir.path(), "plain.toml", &plain);
    fail_with(
        args(&[
            &"train",
            &"--config",
            &plain,
            &"--level",
            &"1",
            &"--out",
            &dir.path().join("plain"),
        ]),
        &["[bn]", "no batch_norm layer"],
    );
}

#[test]
fn the_resnet_configs_build_he_et_als_nets() {
    use levelset_experiments::config::{ExperimentConfig, TaskConfig};
    use levelset_models::flat::num_params;
    use levelset_models::nets::DescribedConfig;
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let params = |config: &ExperimentConfig| {
        let TaskConfig::Cifar10 { net: Some(net), .. } = &config.task else {
            panic!("{}: a CIFAR-10 task with a net", config.name)
        };
        let net = DescribedConfig::new(net.description().unwrap(), [3, 32, 32], 10).unwrap();
        num_params(&net.init::<Compute>(0, &device()))
    };
    for (name, count) in [
        ("resnet20-quick.toml", 272_474),
        ("resnet20.toml", 272_474),
        ("resnet20-a.toml", 269_722),
    ] {
        let config = ExperimentConfig::load(&configs.join(name)).unwrap();
        assert_eq!(params(&config), count, "{name}");
        assert!(config.bn.is_some(), "{name} says how statistics are set");
    }
    // Another depth is one line.
    let text = std::fs::read_to_string(configs.join("resnet20-a.toml")).unwrap();
    assert!(text.contains("\ndepth = 20\n"));
    let deeper =
        ExperimentConfig::parse(&text.replace("\ndepth = 20\n", "\ndepth = 56\n")).unwrap();
    assert_eq!(params(&deeper), 853_018);
}
