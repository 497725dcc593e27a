//! Config parsing and validation, and the command-line checks around it: every mistake is an
//! error whose message names the key or value at fault. The parser's cases call it directly
//! (`ExperimentConfig::load`); a few run the binary end to end.

use std::path::{Path, PathBuf};

use levelset_data::testing::{real_data_or_skip, real_or_fixture_data_dir};
use levelset_experiments::config::{ExperimentConfig, TaskConfig};
use tempfile::TempDir;

use crate::common::*;

/// Loads `config_text` from a file and asserts that the parser refuses it naming the file
/// and every one of `needles`.
fn rejected(config_text: &str, needles: &[&str]) {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "bad.toml", config_text);
    let message = match ExperimentConfig::load(&config) {
        Ok(_) => panic!("accepted a config that should fail naming {needles:?}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        message.contains("bad.toml"),
        "the error names the config file: {message}"
    );
    for needle in needles {
        assert!(
            message.contains(needle),
            "error lacks {needle:?}: {message}"
        );
    }
}

/// Through the binary: a bad config stops `train` before any work, naming the file and key.
#[test]
fn a_bad_config_stops_the_binary_naming_file_and_key() {
    let dir = TempDir::new().unwrap();
    let text = edit(&tiny(), "name = \"tiny\"", "nmae = \"tiny\"");
    let config = write(dir.path(), "bad.toml", &text);
    let out = dir.path().join("model");
    let run = fail_with(
        [
            "train".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "0.1".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["unknown field", "nmae"],
    );
    assert!(
        run.stderr.contains("bad.toml"),
        "names the file: {}",
        run.stderr
    );
    assert!(!out.exists(), "nothing is written for a bad config");
}

#[test]
fn the_tiny_config_is_valid() {
    // The base the rejected variants below are edited from must itself be accepted.
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("model");
    succeed([
        "train".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--level".as_ref(),
        "1e9".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
}

#[test]
fn unknown_top_level_key() {
    let text = edit(&tiny(), "name = \"tiny\"", "nmae = \"tiny\"");
    rejected(&text, &["unknown field", "nmae"]);
}

#[test]
fn unknown_key_in_task() {
    let text = edit(&tiny(), "test_seed = 7\n", "test_seed = 7\ntest_sed = 8\n");
    rejected(&text, &["unknown field", "test_sed"]);
}

#[test]
fn unknown_key_in_train_optimizer() {
    // Adam takes no momentum.
    let text = edit(&tiny(), "lr = 0.05\n", "lr = 0.05\nmomentum = 0.9\n");
    rejected(&text, &["unknown field", "momentum"]);
}

#[test]
fn unknown_key_in_dss() {
    let text = edit(&tiny(), "grid = 20\n", "grid = 20\ngird = 30\n");
    rejected(&text, &["unknown field", "gird"]);
}

#[test]
fn misspelled_enum_values() {
    rejected(
        &edit(&tiny(), "energy = \"test_loss\"", "energy = \"test_los\""),
        &["unknown variant", "test_los"],
    );
    rejected(
        &edit(&tiny(), "kind = \"polynomial\"", "kind = \"polynomal\""),
        &["unknown variant", "polynomal"],
    );
    rejected(
        &edit(
            &tiny(),
            "order = \"breadth_first\"",
            "order = \"breadthfirst\"",
        ),
        &["unknown variant", "breadthfirst"],
    );
}

#[test]
fn missing_required_key() {
    rejected(
        &edit(&tiny(), "test_seed = 7\n", ""),
        &["missing field", "test_seed"],
    );
}

#[test]
fn out_of_range_values_name_their_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "check_every = 10",
            "check_every = 0",
            &["train.check_every"],
        ),
        ("max_steps = 3000", "max_steps = 0", &["train.max_steps"]),
        ("lr = 0.05", "lr = -1", &["train.optimizer.lr", "-1"]),
        ("alpha = 0.95", "alpha = 1.5", &["dss.alpha", "1.5"]),
        ("slack = 1.1", "slack = 0.5", &["dss.slack"]),
        ("grid = 20", "grid = 1", &["dss.grid"]),
        // Sizes that would abort an allocation (i64::MAX, 1e15) or run for ever.
        (
            "grid = 20",
            "grid = 9223372036854775807",
            &["dss.grid", "at most"],
        ),
        (
            "max_beads = 64",
            "max_beads = 1000000000000000",
            &["dss.max_beads", "at most"],
        ),
        (
            "pairs = 2",
            "pairs = 1000000000000000",
            &["sweep.pairs", "at most"],
        ),
        (
            "train_samples = 200",
            "train_samples = 9223372036854775807",
            &["task.train_samples", "at most"],
        ),
        ("pairs = 2", "pairs = 0", &["sweep.pairs"]),
        ("levels = [0.1, 0.06]", "levels = []", &["sweep.levels"]),
        (
            "levels = [0.1, 0.06]",
            "levels = [0.1, -0.5]",
            &["sweep.levels", "-0.5"],
        ),
        (
            "levels = [0.1, 0.06]",
            "levels = [0.1, 0.06, 0.1]",
            &["sweep.levels", "twice"],
        ),
        (
            "train_samples = 200",
            "train_samples = 0",
            &["task.train_samples"],
        ),
        (
            "name = \"tiny\"",
            "name = \" \"",
            &["name must not be empty"],
        ),
    ];
    for (from, to, needles) in cases {
        rejected(&edit(&tiny(), from, to), needles);
    }
}

#[test]
fn missing_config_file_names_the_path() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no-such-config.toml");
    let out = dir.path().join("model");
    fail_with(
        [
            "train".as_ref(),
            "--config".as_ref(),
            missing.as_os_str(),
            "--level".as_ref(),
            "0.1".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["cannot read config", &missing.display().to_string()],
    );
}

#[test]
fn data_dir_on_a_synthetic_task_is_an_error() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("model");
    for command in ["train", "connect"] {
        fail_with(
            [
                command.as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                "--level".as_ref(),
                "0.1".as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
                "--data-dir".as_ref(),
                dir.path().as_os_str(),
            ],
            &["--data-dir", "uses no data directory"],
        );
    }
    fail_with(
        sweep_args(
            &config,
            &out,
            &["--data-dir".as_ref(), dir.path().as_os_str()],
        ),
        &["--data-dir", "uses no data directory"],
    );
    assert!(!out.exists());
}

#[test]
fn energy_the_task_cannot_compute() {
    for energy in ["test_error", "train_perplexity"] {
        let text = edit(
            &tiny(),
            "energy = \"test_loss\"",
            &format!("energy = \"{energy}\""),
        );
        let dir = TempDir::new().unwrap();
        let config = write(dir.path(), "tiny.toml", &text);
        let out = dir.path().join("model");
        fail_with(
            [
                "train".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                "--level".as_ref(),
                "0.1".as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
            ],
            &[energy, "not defined"],
        );
        assert!(!out.exists());
    }
}

#[test]
fn non_positive_levels_are_rejected() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("model");
    for command in ["train", "connect"] {
        for level in ["-1", "0", "NaN", "inf"] {
            fail_with(
                [
                    command.as_ref(),
                    "--config".as_ref(),
                    config.as_os_str(),
                    "--level".as_ref(),
                    level.as_ref(),
                    "--out".as_ref(),
                    out.as_os_str(),
                ],
                &["--level must be a positive number"],
            );
        }
    }
    assert!(!out.exists());
}

#[test]
fn connect_and_sweep_need_their_sections() {
    let dir = TempDir::new().unwrap();
    let text = tiny();
    let no_dss = &text[..text.find("[dss]").unwrap()];
    let no_dss = format!("{no_dss}[sweep]\nlevels = [0.1]\npairs = 1\n");
    let config = write(dir.path(), "no-dss.toml", &no_dss);
    let out = dir.path().join("out");
    fail_with(
        [
            "connect".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "0.1".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["no [dss] section"],
    );
    fail_with(sweep_args(&config, &out, &[]), &["no [dss] section"]);
    let no_sweep = &text[..text.find("[sweep]").unwrap()];
    let config = write(dir.path(), "no-sweep.toml", no_sweep);
    fail_with(sweep_args(&config, &out, &[]), &["no [sweep] section"]);
    assert!(!out.exists());
}

fn committed_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 10, "configs found: {configs:?}");
    configs
}

fn uses_data_files(config: &Path) -> bool {
    let text = std::fs::read_to_string(config).unwrap();
    ["\"mnist\"", "\"cifar10\"", "\"ptb\""]
        .iter()
        .any(|kind| text.contains(&format!("kind = {kind}")))
}

/// Every committed config parses and validates. Synthetic ones are trained to an unreachable
/// high level (the check before the first step already passes: 0 steps). Data configs are
/// pointed at an empty data directory: the run gets past parsing and validation and fails
/// when it opens the data, which proves the config itself was accepted without loading
/// anything.
#[test]
fn every_committed_config_is_valid() {
    let dir = TempDir::new().unwrap();
    let empty = dir.path().join("empty-data");
    std::fs::create_dir(&empty).unwrap();
    for config in committed_configs() {
        let name = config.file_stem().unwrap().to_str().unwrap().to_owned();
        let out = dir.path().join(&name);
        let mut args = vec![
            "train".into(),
            "--config".into(),
            config.clone().into_os_string(),
            "--level".into(),
            "1e9".into(),
            "--out".into(),
            out.clone().into_os_string(),
        ];
        if uses_data_files(&config) {
            args.extend(["--data-dir".into(), empty.clone().into_os_string()]);
            let run = fail_with(&args, &[&empty.display().to_string()]);
            assert!(
                !run.stderr.contains("invalid config"),
                "{name}: {}",
                run.stderr
            );
        } else {
            succeed(&args);
            let meta = read_json(&out.join("model.json"));
            assert_eq!(u64_at(&meta, "steps"), 0, "{name}");
            assert_eq!(meta["config"]["name"], name.as_str());
        }
    }
}

/// The quick MNIST and PTB configs load the real offline data (about a second or two each;
/// the committed extracts on a bare clone) and evaluate an untrained network.
#[test]
fn quick_data_configs_load_the_offline_data() {
    let data = real_or_fixture_data_dir();
    let dir = TempDir::new().unwrap();
    for (name, energy, worse_than) in [
        ("mnist-quick", "test_error", 0.5),
        // Near the vocabulary's size (10k; 950 in the committed extract).
        ("ptb-quick", "test_perplexity", f64::NAN),
    ] {
        let config = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(format!("{name}.toml"));
        let out = dir.path().join(name);
        succeed([
            "train".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "1e9".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ]);
        let meta = read_json(&out.join("model.json"));
        assert_eq!(meta["energy_kind"], energy);
        assert_eq!(u64_at(&meta, "steps"), 0);
        // An untrained network is far from the paper's levels: chance-level error, or a
        // perplexity near the vocabulary's size.
        let worse_than = if worse_than.is_nan() {
            0.5 * f64_at(&meta["architecture"], "vocab")
        } else {
            worse_than
        };
        assert!(f64_at(&meta, "energy") > worse_than, "{name}: {meta}");
        assert_eq!(
            meta["config"]["task"]["data_dir"].as_str().unwrap(),
            data.to_str().unwrap(),
            "--data-dir overrides the config's data_dir"
        );
    }
}

#[test]
fn a_cifar_crop_the_convnet_was_not_built_for_is_rejected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let text = std::fs::read_to_string(dir.join("cifar10-quick.toml")).unwrap();
    rejected(
        &edit(&text, "crop = 24", "crop = 28"),
        &["task.crop", "24", "28"],
    );
}

fn committed_config(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap()
}

/// The CIFAR ResNets' inputs: `pad`, and the normalization constants of the full training set.
const RESNET_INPUTS: &str = "crop = 24\npad = 4\nmean = [0.4914, 0.4822, 0.4465]\n\
                             std = [0.2470, 0.2435, 0.2616]\n";

#[test]
fn image_tasks_take_pad_mean_and_std() {
    let cifar = committed_config("cifar10-quick");
    let config = ExperimentConfig::parse(&edit(&cifar, "crop = 24\n", RESNET_INPUTS)).unwrap();
    let TaskConfig::Cifar10 { pad, mean, std, .. } = &config.task else {
        panic!("a cifar10 task: {:?}", config.task)
    };
    assert_eq!(*pad, 4);
    assert_eq!(mean.as_deref(), Some(&[0.4914, 0.4822, 0.4465][..]));
    assert_eq!(std.as_deref(), Some(&[0.2470, 0.2435, 0.2616][..]));

    // Absent: no padding, statistics from the training images, and the task serializes as
    // before (results files compare configs key by key).
    let plain = ExperimentConfig::parse(&cifar).unwrap();
    assert!(matches!(
        plain.task,
        TaskConfig::Cifar10 {
            pad: 0,
            mean: None,
            std: None,
            ..
        }
    ));
    let json = serde_json::to_value(&plain.task).unwrap();
    for key in ["pad", "mean", "std"] {
        assert!(json.get(key).is_none(), "{key} in {json}");
    }
    assert_eq!(
        plain.differences(&config),
        ["task.mean", "task.pad", "task.std"]
    );

    let mnist = committed_config("mnist-quick");
    let config = ExperimentConfig::parse(&edit(
        &mnist,
        "batch_size = 100\n",
        "batch_size = 100\nmean = [0.1307]\nstd = [0.3081]\n",
    ))
    .unwrap();
    let TaskConfig::Mnist { mean, std, .. } = &config.task else {
        panic!("an mnist task: {:?}", config.task)
    };
    assert_eq!(
        (mean.as_deref(), std.as_deref()),
        (Some(&[0.1307][..]), Some(&[0.3081][..]))
    );
}

#[test]
fn bad_image_input_values_name_their_key() {
    let cifar = committed_config("cifar10-quick");
    let stats = |mean: &str, std: &str| format!("crop = 24\nmean = {mean}\nstd = {std}\n");
    let good = "[0.5, 0.5, 0.5]";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "crop = 24\npad = 33\n".into(),
            vec!["task.pad", "0..=32", "got 33"],
        ),
        (
            "crop = 24\npad = -1\n".into(),
            vec!["task.pad", "0..=32", "got -1"],
        ),
        (
            "crop = 24\npad = 1.5\n".into(),
            vec!["task.pad", "whole number"],
        ),
        (
            "crop = 24\nmean = 0.5\nstd = [0.2]\n".into(),
            vec!["task.mean", "list of numbers"],
        ),
        (
            stats(good, "[0.2, 1e-50, 0.2]"),
            vec!["task.std[1]", "> 0", "got 1e-50"],
        ),
        (
            stats("[0.5, 1e40, 0.5]", good),
            vec!["task.mean[1]", "finite", "got 1e40"],
        ),
        ("crop = 24\npda = 4\n".into(), vec!["unknown field", "pda"]),
        (
            format!("crop = 24\nmean = {good}\n"),
            vec!["task.mean is given without task.std"],
        ),
        (
            format!("crop = 24\nstd = {good}\n"),
            vec!["task.std is given without task.mean"],
        ),
        (
            stats("[0.5, 0.5]", good),
            vec![
                "task.mean",
                "one value per channel",
                "3 for cifar10",
                "got 2",
            ],
        ),
        (
            stats(good, "[0.2, 0.2, 0.2, 0.2]"),
            vec!["task.std", "one value per channel", "got 4"],
        ),
        (
            stats(good, "[0.2, 0.0, 0.2]"),
            vec!["task.std[1]", "> 0", "got 0"],
        ),
        (
            stats(good, "[0.2, -0.1, 0.2]"),
            vec!["task.std[1]", "> 0", "got -0.1"],
        ),
        (
            stats("[0.5, nan, 0.5]", good),
            vec!["task.mean[1]", "finite", "NaN"],
        ),
        (
            stats(good, "[0.2, 0.2, inf]"),
            vec!["task.std[2]", "finite", "inf"],
        ),
    ];
    for (to, needles) in &cases {
        rejected(&edit(&cifar, "crop = 24\n", to), needles);
    }
    let mnist = committed_config("mnist-quick");
    let mnist_cases: &[(&str, &[&str])] = &[
        (
            "batch_size = 100\nmean = [0.1, 0.1, 0.1]\nstd = [0.3, 0.3, 0.3]\n",
            &["task.mean", "1 for mnist", "got 3"],
        ),
        (
            "batch_size = 100\nstd = [0.3]\n",
            &["task.std is given without task.mean"],
        ),
        // Padding is a CIFAR-10 key.
        ("batch_size = 100\npad = 4\n", &["unknown field", "pad"]),
    ];
    for (to, needles) in mnist_cases {
        rejected(&edit(&mnist, "batch_size = 100\n", to), needles);
    }
}

#[test]
fn sgd_takes_weight_decay_and_a_schedule_and_names_bad_values() {
    let cifar = committed_config("cifar10-quick");
    let recipe = "lr = 0.1\nmomentum = 0.9\nweight_decay = 1e-4\n\
                  schedule = { kind = \"step\", at = [0.5, 0.75], factor = 0.1 }\n";
    let config = ExperimentConfig::parse(&edit(&cifar, "lr = 0.1\n", recipe)).unwrap();
    // The milestones are fractions of train.max_steps (20000 here).
    let optimizer = &config.train.optimizer;
    assert_eq!(optimizer.learning_rate_at(9_999, 20_000, 0), 0.1);
    assert!((optimizer.learning_rate_at(10_000, 20_000, 0) - 0.01).abs() < 1e-15);
    assert!((optimizer.learning_rate_at(15_000, 20_000, 0) - 0.001).abs() < 1e-15);
    let cosine = "lr = 0.1\nschedule = { kind = \"cosine\" }\n";
    let config = ExperimentConfig::parse(&edit(&cifar, "lr = 0.1\n", cosine)).unwrap();
    assert!((config.train.optimizer.learning_rate_at(10_000, 20_000, 0) - 0.05).abs() < 1e-15);

    let cases: &[(&str, &[&str])] = &[
        (
            "lr = 0.1\nweight_decay = -1e-4\n",
            &["train.optimizer.weight_decay", ">= 0", "-0.0001"],
        ),
        (
            "lr = 0.1\nweight_decay = nan\n",
            &["train.optimizer.weight_decay", "finite", "NaN"],
        ),
        (
            "lr = 0.1\ndecay = { after_epochs = 1, factor = 0.5 }\nschedule = { kind = \"cosine\" }\n",
            &["train.optimizer.decay", "schedule", "keep one"],
        ),
        (
            "lr = 0.1\nschedule = { kind = \"step\", at = [0.75, 0.5], factor = 0.1 }\n",
            &[
                "train.optimizer.schedule.at",
                "strictly increasing",
                "(0, 1)",
            ],
        ),
        (
            "lr = 0.1\nschedule = { kind = \"step\", at = [0.5, 1.5], factor = 0.1 }\n",
            &["train.optimizer.schedule.at", "[0.5, 1.5]"],
        ),
        (
            "lr = 0.1\nschedule = { kind = \"step\", at = [0.5], factor = -0.1 }\n",
            &["train.optimizer.schedule.factor", "-0.1"],
        ),
        (
            "lr = 0.1\nschedule = { kind = \"step\", at = [0.5] }\n",
            &["missing field", "factor"],
        ),
        (
            "lr = 0.1\nschedule = { kind = \"exponential\" }\n",
            &["unknown variant", "exponential"],
        ),
    ];
    for (to, needles) in cases {
        rejected(&edit(&cifar, "lr = 0.1\n", to), needles);
    }
}

/// Through the binary on the real CIFAR-10 and MNIST copies: padded crops with given
/// statistics train (a few steps, to a level out of reach), and MNIST normalized by given
/// statistics evaluates.
#[test]
fn normalized_and_padded_image_inputs_run() {
    let Some(data) = real_data_or_skip() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let cifar = r#"name = "padded"
energy = "train_error"

[task]
kind = "cifar10"
train_limit = 64
test_limit = 16
batch_size = 16
crop = 32
pad = 4
mean = [0.4914, 0.4822, 0.4465]
std = [0.2470, 0.2435, 0.2616]

[task.net]
layers = [
    { kind = "conv2d", channels = 4, kernel = 3, padding = "same" },
    { kind = "relu" },
    { kind = "flatten" },
    { kind = "linear", features = 10 },
]

[train]
check_every = 2
max_steps = 4

[train.optimizer]
kind = "sgd"
lr = 0.1
momentum = 0.9
weight_decay = 5e-4
schedule = { kind = "step", at = [0.5], factor = 0.1 }
"#;
    let config = write(dir.path(), "padded.toml", cifar);
    let out = dir.path().join("padded");
    fail_with(
        [
            "train".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "1e-9".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
        &["did not reach", "within 4 steps"],
    );

    let mnist = edit(
        &committed_config("mnist-quick"),
        "batch_size = 100\n",
        "batch_size = 100\nmean = [0.1307]\nstd = [0.3081]\n",
    );
    let config = write(dir.path(), "mnist.toml", &mnist);
    let out = dir.path().join("mnist");
    succeed([
        "train".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--level".as_ref(),
        "1e9".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    let meta = read_json(&out.join("model.json"));
    assert!(f64_at(&meta, "energy") > 0.5, "an untrained net: {meta}");
    assert_eq!(meta["config"]["task"]["mean"][0].as_f64(), Some(0.1307));
}
