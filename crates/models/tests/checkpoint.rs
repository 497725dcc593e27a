//! Checkpoints and atomic writes: trained endpoints are reused across runs, so a checkpoint
//! must restore the exact parameters and refuse to load into the wrong network.

mod common;

use std::path::Path;

use burn::prelude::*;
use common::{flat_host, host, random_input, small_lstm_config, small_mnist_config};
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Compute, Train, device};
use levelset_models::checkpoint::{CheckpointError, CheckpointMeta, load, read_meta, save};
use levelset_models::nets::described::Layer;
use levelset_models::nets::described::Op;
use levelset_models::nets::{CifarConvConfig, MlpConfig, MnistConvConfig};
use levelset_models::{Architecture, Energy};

fn meta(architecture: Architecture, num_params: usize) -> CheckpointMeta {
    CheckpointMeta {
        levelset_version: env!("CARGO_PKG_VERSION").into(),
        architecture,
        config: serde_json::json!({"experiment": "test", "levels": [0.1, 0.05]}),
        seed: 42,
        energy_kind: Energy::TestLoss,
        energy: 0.0123456789,
        level: Some(0.05),
        steps: 321,
        backend: BACKEND_NAME.into(),
        num_params,
        imported_from: None,
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn save_then_load_restores_parameters_and_metadata() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("endpoint");
    let config = small_mnist_config();
    let arch = Architecture::MnistConv(config.clone());
    let model = config.init::<Compute>(5, &dev);
    let written = meta(arch.clone(), model.num_params());
    save(model.clone(), &written, &dir).unwrap();
    assert_eq!(
        listing(&dir),
        ["model.json", "model.mpk"],
        "no temporary files left"
    );

    let (loaded, read) = load(config.init::<Compute>(6, &dev), &arch, &dir, &dev).unwrap();
    assert_eq!(read, written);
    assert_eq!(read_meta(&dir).unwrap(), written);
    assert_eq!(
        flat_host(&loaded),
        flat_host(&model),
        "bit-exact parameters"
    );
    let x = random_input([2, 1, 28, 28], 1);
    assert_eq!(
        host(loaded.forward(x.clone(), None)),
        host(model.forward(x, None))
    );
    // The non-parameter field comes from the template, which matches the architecture.
    assert!(
        matches!(loaded.ops[9], Op::Dropout(p) if p == config.dropout),
        "{:?}",
        loaded.ops
    );

    // Saving again over an existing checkpoint replaces it.
    let other = config.init::<Compute>(7, &dev);
    save(other.clone(), &written, &dir).unwrap();
    let (reloaded, _) = load(config.init::<Compute>(0, &dev), &arch, &dir, &dev).unwrap();
    assert_eq!(flat_host(&reloaded), flat_host(&other));
    assert_eq!(listing(&dir), ["model.json", "model.mpk"]);
    // The preset written out layer by layer takes its checkpoint.
    let described = config.described();
    let (loaded, _) = load(
        described.init::<Compute>(0, &dev),
        &Architecture::Described(described),
        &dir,
        &dev,
    )
    .unwrap();
    assert_eq!(flat_host(&loaded), flat_host(&other));
}

#[test]
fn lstm_checkpoint_round_trips() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let config = small_lstm_config(30);
    let arch = Architecture::LstmLm(config.clone());
    let model = config.init::<Compute>(1, &dev);
    save(
        model.clone(),
        &meta(arch.clone(), model.num_params()),
        tmp.path(),
    )
    .unwrap();
    let (loaded, _) = load(config.init::<Compute>(2, &dev), &arch, tmp.path(), &dev).unwrap();
    assert_eq!(flat_host(&loaded), flat_host(&model));
    // The same net written out layer by layer takes the preset's checkpoint; another does not.
    let described = config.described().unwrap();
    let (loaded, _) = load(
        described.init::<Compute>(2, &dev),
        &Architecture::DescribedLm(described.clone()),
        tmp.path(),
        &dev,
    )
    .unwrap();
    assert_eq!(flat_host(&loaded), flat_host(&model));
    let mut other = described;
    other.net.weights = None;
    let err = load(
        other.init::<Compute>(2, &dev),
        &Architecture::DescribedLm(other),
        tmp.path(),
        &dev,
    )
    .unwrap_err();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{err}");
}

#[test]
fn loading_into_another_architecture_names_the_checkpoint() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let quadratic = MlpConfig::quadratic();
    let model = quadratic.init::<Compute>(0, &dev);
    save(
        model,
        &meta(Architecture::Mlp(quadratic.clone()), 33),
        tmp.path(),
    )
    .unwrap();

    // Same parameter shapes, different network (linear output): still refused.
    let cubic = MlpConfig::cubic();
    let err = load(
        cubic.init::<Compute>(0, &dev),
        &Architecture::Mlp(cubic),
        tmp.path(),
        &dev,
    )
    .unwrap_err();
    let message = err.to_string();
    match &err {
        CheckpointError::Architecture {
            path,
            expected,
            found,
        } => {
            assert!(path.starts_with(tmp.path()), "{path:?}");
            assert!(
                expected.contains("identity") && found.contains("sigmoid"),
                "{message}"
            );
        }
        other => panic!("expected an architecture error, got {other:?}"),
    }
    assert!(
        message.contains(&tmp.path().display().to_string()),
        "{message}"
    );

    let mnist = small_mnist_config();
    let err = load(
        mnist.init::<Compute>(0, &dev),
        &Architecture::MnistConv(mnist),
        tmp.path(),
        &dev,
    )
    .unwrap_err();
    assert!(
        matches!(err, CheckpointError::Architecture { .. }),
        "{err:?}"
    );
}

#[test]
fn missing_checkpoint_is_an_io_error_naming_the_path() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-written");
    let config = MlpConfig::quadratic();
    let err = load(
        config.init::<Compute>(0, &dev),
        &Architecture::Mlp(config),
        &dir,
        &dev,
    )
    .unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
}

#[test]
fn corrupt_sidecar_and_parameters_are_reported() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let config = MlpConfig::quadratic();
    let arch = Architecture::Mlp(config.clone());
    save(
        config.init::<Compute>(0, &dev),
        &meta(arch.clone(), 33),
        tmp.path(),
    )
    .unwrap();

    let sidecar = tmp.path().join("model.json");
    let good = std::fs::read(&sidecar).unwrap();
    std::fs::write(&sidecar, b"{\"levelset_version\": ").unwrap();
    let err = load(config.init::<Compute>(0, &dev), &arch, tmp.path(), &dev).unwrap_err();
    match &err {
        CheckpointError::Sidecar { path, .. } => assert_eq!(path, &sidecar),
        other => panic!("expected a sidecar error, got {other:?}"),
    }
    assert!(err.to_string().contains("model.json"), "{err}");

    std::fs::write(&sidecar, good).unwrap();
    std::fs::write(tmp.path().join("model.mpk"), b"not messagepack").unwrap();
    let err = load(config.init::<Compute>(0, &dev), &arch, tmp.path(), &dev).unwrap_err();
    assert!(matches!(err, CheckpointError::Record { .. }), "{err:?}");
    assert!(err.to_string().contains("model.mpk"), "{err}");
}

#[test]
fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("result.json");
    write_atomic(&path, b"first").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    write_atomic(&path, b"second, longer contents").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer contents");
    assert_eq!(listing(tmp.path()), ["result.json"]);

    let err = write_atomic(&tmp.path().join("missing-dir").join("x"), b"").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_checkpoint_loaded_for_training_is_trainable() {
    // Endpoints are saved from evaluation models and reloaded on the autodiff backend to
    // start curve fitting or further training.
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let config = MlpConfig::cubic();
    let arch = Architecture::Mlp(config.clone());
    let saved = config.init::<Compute>(3, &dev);
    save(saved.clone(), &meta(arch.clone(), 33), tmp.path()).unwrap();
    let (loaded, _) = load(config.init::<Train>(0, &dev), &arch, tmp.path(), &dev).unwrap();
    assert_eq!(flat_host(&loaded), flat_host(&saved));
    let grads = loaded
        .forward_flat(Tensor::ones([4, 1], &dev), None)
        .powi_scalar(2)
        .sum()
        .backward();
    let linears: Vec<_> = loaded.layers.iter().flatten().collect();
    assert_eq!(linears.len(), 3);
    for layer in linears {
        let Layer::Linear(layer) = layer else {
            panic!("an MLP's parameter layers are linear")
        };
        assert!(
            layer.weight.val().grad(&grads).is_some(),
            "loaded weight is tracked"
        );
    }
}

/// The variable through which a test hands its child process, whose writes fail, the folder to
/// write in.
#[cfg(unix)]
const WRITES_FAIL_IN: &str = "LEVELSET_TEST_WRITES_FAIL_IN";

/// Runs the test named `test` again in a child process where every write to a file fails with
/// EFBIG ("File too large"): the child's file-size limit is 0 and SIGXFSZ is ignored (which
/// `exec` keeps), so a write returns the error instead of killing the process. A file is still
/// created and only its write fails, as on a full disk. The limit holds for a whole process,
/// which is why it is a child's: in this one it would fail the writes of the tests running
/// beside. The child finds `dir` in [`WRITES_FAIL_IN`], and only that test runs in it.
#[cfg(unix)]
fn in_a_child_whose_writes_fail(test: &str, dir: &Path) {
    let output = std::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 0; exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact"])
        .env(WRITES_FAIL_IN, dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "1 passed": a name that matches no test passes too, having run nothing.
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in a child whose writes fail: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(unix)]
#[test]
fn a_checkpoint_write_that_fails_keeps_the_old_checkpoint() {
    let dev = device();
    let quadratic = MlpConfig::quadratic();
    let arch = Architecture::Mlp(quadratic.clone());
    if let Some(dir) = std::env::var_os(WRITES_FAIL_IN) {
        // The child, where the write fails: the error names the file.
        let other = quadratic.init::<Compute>(2, &dev);
        let err = save(other, &meta(arch, 33), Path::new(&dir)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("model.mpk") && message.contains("File too large"),
            "{message}"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = quadratic.init::<Compute>(1, &dev);
    save(good.clone(), &meta(arch.clone(), 33), tmp.path()).unwrap();

    in_a_child_whose_writes_fail(
        "a_checkpoint_write_that_fails_keeps_the_old_checkpoint",
        tmp.path(),
    );
    assert_eq!(
        listing(tmp.path()),
        ["model.json", "model.mpk"],
        "the failed write's temporary file is removed"
    );
    let (kept, _) = load(quadratic.init::<Compute>(3, &dev), &arch, tmp.path(), &dev).unwrap();
    assert_eq!(flat_host(&kept), flat_host(&good), "old checkpoint intact");
}

#[cfg(unix)]
#[test]
fn write_atomic_reports_a_failed_write_and_keeps_the_old_file() {
    if let Some(dir) = std::env::var_os(WRITES_FAIL_IN) {
        // The child, where the write fails: its own error comes back, not a later one.
        let err = write_atomic(&Path::new(&dir).join("results.json"), b"new").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("results.json");
    write_atomic(&path, b"old").unwrap();
    in_a_child_whose_writes_fail(
        "write_atomic_reports_a_failed_write_and_keeps_the_old_file",
        tmp.path(),
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(listing(tmp.path()), ["results.json"]);
}

/// Checkpoints written before the paper's convnets and MLPs were built from their descriptions
/// name their parameters after the nets' fields (`conv1.weight`, an MLP's `layers.1.weight`;
/// made by the binaries of c72bf83 and f3cd795, `tests/fixtures/README.md`); they load into
/// today's nets, parameter for parameter. Each holds its net's draws from seed 0, untrained.
#[test]
fn checkpoints_naming_the_nets_fields_load_into_the_described_presets() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dev = device();
    let mnist = MnistConvConfig {
        conv1: 4,
        conv2: 8,
        hidden: 16,
        dropout: 0.5,
    };
    let cifar = CifarConvConfig {
        conv1: 4,
        conv2: 4,
        fc1: 16,
        fc2: 8,
        ..CifarConvConfig::default()
    };
    let cubic = MlpConfig::cubic();
    let cases = [
        (
            "fields-cubic",
            Architecture::Mlp(cubic.clone()),
            cubic.init::<Compute>(0, &dev),
            cubic.init::<Compute>(9, &dev),
        ),
        (
            "fields-mnist",
            Architecture::MnistConv(mnist.clone()),
            mnist.init::<Compute>(0, &dev),
            mnist.init::<Compute>(9, &dev),
        ),
        (
            "fields-cifar10",
            Architecture::CifarConv(cifar.clone()),
            cifar.init::<Compute>(0, &dev),
            cifar.init::<Compute>(9, &dev),
        ),
    ];
    for (name, architecture, seed_0, template) in cases {
        let (model, meta) = load(template, &architecture, &fixtures.join(name), &dev)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(meta.steps, 0, "{name}");
        assert_eq!(flat_host(&model), flat_host(&seed_0), "{name}");
    }
}
