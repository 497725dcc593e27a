//! Networks described in the config (`[task.net]`) with weights from elsewhere: a PyTorch
//! `nn.Sequential` convnet's state_dicts (fixtures written by
//! `tests/fixtures/import/make_fixtures.py`) are imported by position, give PyTorch's logits,
//! and two of them are connected by DSS, a Bezier curve and weight matching.

use std::ffi::OsString;
use std::path::Path;

use levelset_data::testing::real_or_fixture_data_dir;
use levelset_models::Architecture;
use levelset_models::backend::{Compute, device};
use levelset_models::checkpoint;
use levelset_models::flat::flatten;
use levelset_models::nets::Described;
use tempfile::TempDir;

use crate::common::*;

/// The fixture's net, `Sequential(Conv2d(1, 4, 5, padding=2), ReLU(), MaxPool2d(2),
/// Conv2d(4, 4, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(144, 10))`, on a few hundred
/// MNIST images.
pub const CONFIG: &str = r#"
name = "imported-convnet"
energy = "test_loss"

[task]
kind = "mnist"
train_limit = 200
test_limit = 100
batch_size = 50

[task.net]
layers = [
    { kind = "conv2d", channels = 4, kernel = 5, padding = 2 },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "conv2d", channels = 4, kernel = 3 },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 2 },
    { kind = "flatten" },
    { kind = "linear", features = 10 },
]

[train]
check_every = 10
max_steps = 40

[train.optimizer]
kind = "adam"
lr = 1e-3

[dss]
alpha = 0.98
slack = 1.02
grid = 8
insert_at = "midpoint"
order = "breadth_first"
max_depth = 2
max_beads = 8
first_bead_always = true
length_over = "weights"

[curve]
kind = "bezier"
bends = 1
steps = 20
optimizer = { kind = "adam", lr = 1e-3 }
slack = 1.02
length_over = "weights"
"#;

/// A described net's checkpoint and its parameters, flattened.
fn load(dir: &Path) -> (Described<Compute>, Vec<f32>) {
    load_checkpoint(dir, |architecture| {
        let Architecture::Described(net) = architecture else {
            panic!("a described net, got {architecture:?}")
        };
        net.init::<Compute>(0, &device())
    })
}

#[test]
fn a_pytorch_sequential_convnet_imports_by_position_and_connects() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "convnet.toml", CONFIG);
    let data = real_or_fixture_data_dir();
    let import = |net: &str| {
        let out = dir.path().join(net);
        let from = import_fixtures().join(format!("mnist_convnet_{net}.safetensors"));
        succeed(import_args(&config, &from, &out, &data));
        out
    };
    let (a, b) = (import("a"), import("b"));

    // Net a saved by torch.save inside a training checkpoint ({"state_dict": ..., "epoch": 3}):
    // the key is found, and the parameters are the safetensors twin's.
    let from_pt = dir.path().join("a-pt");
    succeed(import_args(
        &config,
        &import_fixtures().join("mnist_convnet_a.pt"),
        &from_pt,
        &data,
    ));
    let meta_pt = read_json(&from_pt.join("model.json"));
    assert_eq!(meta_pt["imported_from"]["key"], "state_dict");
    assert!(
        load(&from_pt).1 == load(&a).1,
        "the .pt and .safetensors imports differ"
    );

    // Net a's logits are PyTorch's (as the fixture script computed them).
    let dev = device();
    let (model, _) = load(&a);
    let expected = read_json(&import_fixtures().join("mnist_convnet.json"));
    let images: Vec<f32> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|image| image.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let x = burn::tensor::Tensor::<Compute, 1>::from_floats(images.as_slice(), &dev)
        .reshape([2, 1, 28, 28]);
    let got = model.forward(x, None).into_data().to_vec::<f32>().unwrap();
    let want: Vec<f64> = expected["logits"]
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
            "levelset {g} against PyTorch's {w}"
        );
    }

    // Connected as any two checkpoints: DSS, a Bezier curve, and DSS after weight matching.
    let level = 1.2
        * [&a, &b]
            .iter()
            .map(|c| f64_at(&read_json(&c.join("model.json")), "energy"))
            .fold(0.0, f64::max);
    let level = format!("{level}");
    let connect = |method: &str, extra: &[&str], out: &str| {
        let out = dir.path().join(out);
        let mut words = connect_args(&config, [&a, &b], &level, method, &out, &data);
        words.extend(extra.iter().map(OsString::from));
        succeed(words);
        out
    };
    for (method, extra, out) in [
        ("dss", &[][..], "dss"),
        ("bezier", &[][..], "bezier"),
        ("dss", &["--align"][..], "aligned"),
    ] {
        let out = connect(method, extra, out);
        let report = read_json(&out.join("report.json"));
        assert_eq!(report["status"], "connected", "{method}: {report}");
        assert!(f64_at(&report, "endpoint_distance") > 0.0);
    }
    let align = read_json(&dir.path().join("aligned/align.json"));
    assert!(align.is_object(), "{align}");

    // A sweep over the imported pairs (a, b) and (b, a) at two levels: nothing is trained.
    let energy = |c: &Path| f64_at(&read_json(&c.join("model.json")), "energy");
    let top = energy(&a).max(energy(&b));
    let sweep = format!(
        "{CONFIG}\n[sweep]\nlevels = [{}, {}]\npairs = 2\ncheckpoints = [\n  \
         {{ a = {a:?}, b = {b:?} }},\n  {{ a = {b:?}, b = {a:?} }},\n]\n",
        1.3 * top,
        1.2 * top,
    );
    let sweep_config = write(dir.path(), "sweep.toml", &sweep);
    let out = dir.path().join("sweep");
    succeed(sweep_args(
        &sweep_config,
        &out,
        &["--data-dir".as_ref(), data.as_os_str()],
    ));
    let results = read_json(&out.join("results.json"));
    let rows = results["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert_eq!(row["outcome"], "connected", "{row}");
        assert_eq!(u64_at(row, "endpoint_steps"), 0, "{row}");
        let (first, second) = if u64_at(row, "pair") == 0 {
            (&a, &b)
        } else {
            (&b, &a)
        };
        assert_eq!(f64_at(row, "energy_a"), energy(first));
        assert_eq!(f64_at(row, "energy_b"), energy(second));
    }
    let mismatch = write(
        dir.path(),
        "mismatch.toml",
        &sweep.replace("pairs = 2", "pairs = 3"),
    );
    fail_with(
        sweep_args(&mismatch, &dir.path().join("m"), &[]),
        &["sweep.pairs is 3 but sweep.checkpoints lists 2 pairs"],
    );
}

#[test]
fn a_file_that_does_not_fit_the_description_lists_the_names() {
    let dir = TempDir::new().unwrap();
    // The linear layer at position 6 instead of 7: its tensors are left over, and missing.
    let shifted = edit(
        CONFIG,
        r#"    { kind = "flatten" },
    { kind = "linear", features = 10 },"#,
        r#"    { kind = "flatten" },
    { kind = "linear", features = 10 },
    { kind = "relu" },
    { kind = "linear", features = 10 },"#,
    );
    let config = write(dir.path(), "shifted.toml", &shifted);
    let from = import_fixtures().join("mnist_convnet_a.safetensors");
    let data = real_or_fixture_data_dir();
    fail_with(
        import_args(&config, &from, &dir.path().join("x"), &data),
        &[
            "missing from the file: layers.9.Linear.bias, layers.9.Linear.weight",
            "PyTorch's Sequential names them",
        ],
    );
}

/// `train --config CONFIG --level 1 --out OUT`.
fn train_to_one(config: &Path, out: &Path) -> Vec<OsString> {
    args(&[
        &"train",
        &"--config",
        &config,
        &"--level",
        &"1",
        &"--out",
        &out,
    ])
}

#[test]
fn a_config_net_is_checked_before_any_work() {
    let dir = TempDir::new().unwrap();
    let bad = edit(
        CONFIG,
        r#"{ kind = "linear", features = 10 },"#,
        r#"{ kind = "linear", features = 12 },"#,
    );
    let train = |config: &Path, out: &str| train_to_one(config, &dir.path().join(out));
    fail_with(
        train(&write(dir.path(), "bad.toml", &bad), "x"),
        &[
            "task.net.layers: the net ends in a 12 features",
            "10 classes",
        ],
    );
    let both = edit(
        CONFIG,
        "[task.net]",
        "[task.model]\nconv1 = 8\n\n[task.net]",
    );
    fail_with(
        train(&write(dir.path(), "both.toml", &both), "y"),
        &["task.model and task.net both describe the network"],
    );
}

/// A polynomial task's `[task.net]` is checked as an image task's, against one input feature
/// and one output, before any work; dropout, and `biases` beside it, are refused.
#[test]
fn a_polynomial_config_net_is_checked_before_any_work() {
    let dir = TempDir::new().unwrap();
    let with_net = |layers: &str, extra: &str| {
        let net = format!("{extra}\n[task.net]\nlayers = [{layers}]\n\n[train]");
        let config = edit(&tiny(), "\n[train]", &net);
        write(dir.path(), "net.toml", &config)
    };
    let train = |config: &Path| train_to_one(config, &dir.path().join("out"));
    let cases = [
        (
            r#"{ kind = "linear", features = 3 }"#,
            "",
            vec!["task.net.layers: the net ends in a 3 features", "1 outputs"],
        ),
        (
            r#"{ kind = "conv2d", channels = 2, kernel = 1 }"#,
            "",
            vec!["task.net.layers[0] (conv2d): takes an image, but its input is 1 features"],
        ),
        (
            r#"{ kind = "linear", features = 4 }, { kind = "dropout", p = 0.5 },
               { kind = "linear", features = 1 }"#,
            "",
            vec!["task.net.layers[1] (dropout)", "trains without dropout"],
        ),
        (
            r#"{ kind = "linear", features = 1 }"#,
            "biases = true",
            vec!["task.net and task.biases both describe the network"],
        ),
    ];
    for (layers, extra, expected) in cases {
        fail_with(train(&with_net(layers, extra)), &expected);
    }
    // A described net of its own trains and its checkpoint evaluates.
    let config = with_net(
        r#"{ kind = "linear", features = 6 }, { kind = "tanh" }, { kind = "layer_norm" },
           { kind = "linear", features = 1 }"#,
        "",
    );
    succeed(train(&config));
    let eval = succeed([
        "eval".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--checkpoint".as_ref(),
        dir.path().join("out").as_os_str(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&eval.stdout).unwrap();
    assert!(report["energy"].as_f64().unwrap() <= 1.0, "{report}");
}

/// The committed templates `configs/{mnist,cifar10,ptb,quadratic}-described.toml` are the
/// paper's nets written out: each config's `[task.net]` is its preset's description, and its
/// task, training and energy are the quick config's.
#[test]
fn the_described_configs_are_the_paper_nets() {
    use levelset_experiments::config::{ExperimentConfig, ImageNetSpec, TaskConfig};
    use levelset_models::nets::{
        CifarConvConfig, LayerSpec, LstmLmConfig, MlpConfig, MnistConvConfig,
    };
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for (task, preset) in [
        ("mnist", MnistConvConfig::default().description()),
        ("cifar10", CifarConvConfig::default().description()),
    ] {
        let load = |name: String| ExperimentConfig::load(&configs.join(name)).unwrap();
        let described = load(format!("{task}-described.toml"));
        let mut quick = load(format!("{task}-quick.toml"));
        let net = match &described.task {
            TaskConfig::Mnist { net, .. } | TaskConfig::Cifar10 { net, .. } => net.clone(),
            other => panic!("{task}-described.toml is not an image task: {other:?}"),
        };
        assert_eq!(
            net,
            Some(ImageNetSpec::Layers(preset)),
            "{task}-described.toml's net"
        );
        match &mut quick.task {
            TaskConfig::Mnist { net: n, .. } | TaskConfig::Cifar10 { net: n, .. } => *n = net,
            _ => unreachable!("an image task"),
        }
        let beside = format!("{task}-described.toml beside {task}-quick.toml");
        assert_eq!(described.task, quick.task, "{beside}: task");
        assert_eq!(described.train, quick.train, "{beside}: training");
        assert_eq!(described.energy, quick.energy, "{beside}: energy");
    }

    // The PTB net: the preset's description for the vocabulary its last layer names.
    let load = |name: &str| ExperimentConfig::load(&configs.join(name)).unwrap();
    let described = load("ptb-described.toml");
    let mut quick = load("ptb-quick.toml");
    let TaskConfig::Ptb { net: Some(net), .. } = &described.task else {
        panic!(
            "ptb-described.toml describes a ptb net: {:?}",
            described.task
        )
    };
    let Some(LayerSpec::Linear { features, .. }) = net.layers.last() else {
        panic!("a language model ends in a linear layer: {net:?}")
    };
    let TaskConfig::Ptb {
        embed,
        hidden,
        layers,
        init_scale,
        net: quick_net,
        ..
    } = &mut quick.task
    else {
        unreachable!("a ptb task")
    };
    let preset = LstmLmConfig {
        vocab: *features,
        embed: embed.take().unwrap(),
        hidden: hidden.take().unwrap(),
        layers: layers.take().unwrap(),
        init_scale: init_scale.take().unwrap(),
    };
    assert_eq!(net, &preset.description(), "ptb-described.toml's net");
    *quick_net = Some(net.clone());
    assert_eq!(
        described.task, quick.task,
        "ptb-described.toml beside ptb-quick: task"
    );
    assert_eq!(described.train, quick.train, "ptb: training");
    assert_eq!(described.energy, quick.energy, "ptb: energy");

    // The quadratic net: the authors' bias-free MLP.
    let described = load("quadratic-described.toml");
    let mut quick = load("quadratic-quick.toml");
    let TaskConfig::Polynomial { net: Some(net), .. } = &described.task else {
        panic!("quadratic-described.toml describes a polynomial net")
    };
    assert_eq!(
        net,
        &MlpConfig::quadratic().description(),
        "quadratic-described.toml's net"
    );
    let TaskConfig::Polynomial { biases, net: n, .. } = &mut quick.task else {
        unreachable!("a polynomial task")
    };
    assert_eq!(
        biases.take(),
        Some(false),
        "quadratic-quick: the authors' net"
    );
    *n = Some(net.clone());
    assert_eq!(described.task, quick.task, "quadratic: task");
    assert_eq!(described.train, quick.train, "quadratic: training");
    assert_eq!(described.dss, quick.dss, "quadratic: dss");
    assert_eq!(described.energy, quick.energy, "quadratic: energy");
}

/// The paper's convnets import by their layers' names too: a PyTorch module with attributes
/// `conv1`, `conv2`, `fc1`, `fc2` (here, a preset's parameters saved by burn-store as PyTorch
/// names and lays them out: Linear weights [out, in]) imports into the MNIST preset, parameter
/// for parameter.
#[test]
fn the_paper_convnets_import_by_their_layer_names() {
    use burn_store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, SafetensorsStore};
    use levelset_models::nets::MnistConvConfig;

    let dir = TempDir::new().unwrap();
    let net = MnistConvConfig {
        conv1: 4,
        conv2: 8,
        hidden: 16,
        dropout: 0.5,
    };
    let model = net.init::<Compute>(3, &device());
    let from = dir.path().join("fields.safetensors");
    let mut rename = KeyRemapper::new();
    for (layer, field) in [(0, "conv1"), (3, "conv2"), (7, "fc1"), (10, "fc2")] {
        rename = rename
            .add_pattern(
                format!(r"^layers\.{layer}\.[A-Za-z0-9]+\."),
                format!("{field}."),
            )
            .unwrap();
    }
    let mut store = SafetensorsStore::from_file(&from)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(rename);
    model.save_into(&mut store).unwrap();

    let config = write(
        dir.path(),
        "preset.toml",
        r#"
name = "preset"
energy = "test_loss"

[task]
kind = "mnist"
train_limit = 100
test_limit = 50
batch_size = 50

[task.model]
conv1 = 4
conv2 = 8
hidden = 16

[train]
check_every = 10
max_steps = 10

[train.optimizer]
kind = "adam"
lr = 1e-3
"#,
    );
    let out = dir.path().join("imported");
    succeed(import_args(
        &config,
        &from,
        &out,
        &real_or_fixture_data_dir(),
    ));
    let architecture = Architecture::MnistConv(net.clone());
    let dev = device();
    let (imported, _) =
        checkpoint::load(net.init::<Compute>(0, &dev), &architecture, &out, &dev).unwrap();
    assert_eq!(
        flatten(&imported).into_data().to_vec::<f32>().unwrap(),
        flatten(&model).into_data().to_vec::<f32>().unwrap()
    );
}

/// Net a as PyTorch itself saves it with non-contiguous tensors (channels_last convolution
/// weights, a transposed Linear weight; `make_strided.py`), in the zip and the legacy
/// formats: both import into the parameters of the contiguous safetensors twin. Before,
/// strides were ignored and these imported permuted, with exit code 0.
#[test]
fn strided_and_legacy_torch_files_import_as_pytorch_reads_them() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "convnet.toml", CONFIG);
    let data = real_or_fixture_data_dir();
    let import = |file: &str| {
        let out = dir.path().join(file);
        succeed(import_args(
            &config,
            &import_fixtures().join(file),
            &out,
            &data,
        ));
        load(&out).1
    };
    let expected = import("mnist_convnet_a.safetensors");
    assert_eq!(import("mnist_convnet_a_strided.pt"), expected);
    assert_eq!(import("mnist_convnet_a_legacy.pth"), expected);
}
