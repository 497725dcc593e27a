//! `levelset train`: one endpoint to a level, saved as a checkpoint.

use std::path::{Path, PathBuf};

use levelset_models::backend::BACKEND_NAME;
use tempfile::TempDir;

use crate::common::*;

/// Trains the tiny quadratic config to `level` from `seed` into `dir/name`.
pub fn train(dir: &Path, config: &Path, level: f64, seed: u64, name: &str) -> PathBuf {
    let out = dir.join(name);
    succeed([
        "train".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--level".as_ref(),
        level.to_string().as_ref(),
        "--seed".as_ref(),
        seed.to_string().as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    out
}

#[test]
fn train_reaches_the_level_and_writes_a_checkpoint() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("a");
    let run = succeed([
        "train".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--level".as_ref(),
        "0.1".as_ref(),
        "--seed".as_ref(),
        "1".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(out.join("model.mpk").is_file());
    let meta = read_json(&out.join("model.json"));
    assert_eq!(f64_at(&meta, "level"), 0.1);
    assert_eq!(u64_at(&meta, "seed"), 1);
    assert_eq!(meta["energy_kind"], "test_loss");
    let energy = f64_at(&meta, "energy");
    assert!(energy > 0.0 && energy <= 0.1, "energy {energy}");
    // An untrained sigmoid net is far above 0.1, so it took steps, checked every 10.
    let steps = u64_at(&meta, "steps");
    assert!(
        steps > 0 && steps.is_multiple_of(10) && steps <= 3000,
        "steps {steps}"
    );
    assert_eq!(meta["backend"], BACKEND_NAME);
    assert_eq!(meta["levelset_version"], env!("CARGO_PKG_VERSION"));
    // The authors' bias-free 1-4-4-1: 4 + 16 + 4 weights.
    assert_eq!(u64_at(&meta, "num_params"), 24);
    assert_eq!(meta["architecture"]["kind"], "mlp");
    assert_eq!(meta["architecture"]["output"], "sigmoid");
    assert_eq!(meta["config"]["name"], "tiny");
    assert_eq!(meta["config"]["task"]["polynomial"], "quadratic");
    assert_eq!(quadratic_params(&out).len(), 24);
    assert_eq!(meta["architecture"]["bias"], false);
    assert!(run.stdout.contains("<= 0.1"), "{}", run.stdout);
    assert!(run.stdout.contains(&out.display().to_string()));
}

#[test]
fn the_same_seed_trains_the_same_model() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let first = train(dir.path(), &config, 0.08, 5, "first");
    let again = train(dir.path(), &config, 0.08, 5, "again");
    let other = train(dir.path(), &config, 0.08, 6, "other");
    // The sidecars hold no times, so they match exactly.
    assert_eq!(
        read_json(&first.join("model.json")),
        read_json(&again.join("model.json"))
    );
    // Bit-identical weights. (`model.mpk` bytes differ: Burn records random parameter ids.)
    let params = quadratic_params(&first);
    let bits = |p: &[f32]| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&params), bits(&quadratic_params(&again)));
    assert_ne!(
        params,
        quadratic_params(&other),
        "another seed, another model"
    );
    assert_eq!(
        u64_at(&read_json(&other.join("model.json")), "seed"),
        6,
        "the seed is recorded"
    );
}

#[test]
fn an_unreachable_level_is_an_error_that_says_how_close_it_got() {
    let dir = TempDir::new().unwrap();
    let text = edit(&tiny(), "max_steps = 3000", "max_steps = 20");
    let config = write(dir.path(), "tiny.toml", &text);
    let out = dir.path().join("a");
    fail_with(
        [
            "train".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "1e-6".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &["did not reach", "within 20 steps", "best"],
    );
    assert!(!out.join("model.json").exists(), "no checkpoint is written");
    assert!(!out.join("model.mpk").exists());
}

#[test]
fn a_level_already_met_takes_no_steps() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = train(dir.path(), &config, 1e9, 0, "a");
    let meta = read_json(&out.join("model.json"));
    assert_eq!(u64_at(&meta, "steps"), 0);
    assert!(f64_at(&meta, "energy") > 0.1, "an untrained net: {meta}");
}

/// `levelset eval` recomputes a checkpoint's energy under a config: the same value the
/// training recorded, and an error naming both architectures for a checkpoint of another net.
#[test]
fn eval_recomputes_the_recorded_energy_and_refuses_another_architecture() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let a = train(dir.path(), &config, 0.1, 1, "a");
    let eval = |config: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "eval".into(),
            "--config".into(),
            config.into(),
            "--checkpoint".into(),
            a.clone().into(),
        ]
    };
    let run = succeed(eval(&config));
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let meta = read_json(&a.join("model.json"));
    assert_eq!(report["energy"], meta["energy"], "{report}");
    assert_eq!(report["recorded"]["energy"], meta["energy"]);
    assert_eq!(report["energy_kind"], "test_loss");
    assert_eq!(report["num_params"], 24);
    assert_eq!(report["config"], "tiny");

    let cubic = write(dir.path(), "cubic.toml", &tiny_config("cubic"));
    fail_with(eval(&cubic), &["loading", "checkpoint holds a"]);
}

/// `levelset import` reads a PyTorch state_dict (safetensors, torch.save) into the config's net:
/// the network then computes the outputs the PyTorch module computes, and the checkpoint
/// records the file's SHA-256. Names that do not fit are errors that say why; the same
/// state_dict saved by torch.save imports to the same parameters.
#[test]
fn import_reads_pytorch_state_dicts_into_the_configs_network() {
    use levelset_models::Architecture;
    use levelset_models::backend::{Compute, device};
    use levelset_models::checkpoint;
    use levelset_models::flat::flatten;
    use levelset_models::nets::MlpConfig;

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import");
    let weights = fixtures.join("cubic_mlp.safetensors");
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "cubic.toml", &tiny_config("cubic"));
    let out = dir.path().join("imported");
    let import = |map: &[&str], out: &Path| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "import".into(),
            "--config".into(),
            config.clone().into(),
            "--from".into(),
            weights.clone().into(),
            "--out".into(),
            out.into(),
        ];
        for rule in map {
            args.push("--map".into());
            args.push(rule.into());
        }
        args
    };
    // The Sequential sits in an attribute `net` (net.0.weight, ...): without --map its
    // tensors are not the described positions' (0.weight, 2.weight, 4.weight).
    fail_with(
        import(&[], &out),
        &[
            "missing from the file: layers.0.Linear.",
            "in the file but not in the network: net.",
        ],
    );
    assert!(!checkpoint::exists(&out));
    // Renamed to `layers.*` (a module holding the Sequential as `layers`), they are the
    // described positions too; renamed to anything else, they name no described layer.
    succeed(import(&[r"^net\.=layers."], &dir.path().join("as-layers")));
    fail_with(
        import(&[r"^net\.=seq."], &out),
        &["in the file but not in the network: seq.0.bias, seq.0.weight, seq.2.bias"],
    );
    succeed(import(&[r"^net\.="], &out));

    let net = MlpConfig::cubic();
    let dev = device();
    let (model, meta) = checkpoint::load(
        net.init::<Compute>(0, &dev),
        &Architecture::Mlp(net.clone()),
        &out,
        &dev,
    )
    .unwrap();
    let expected = read_json(&fixtures.join("cubic_mlp.json"));
    let inputs: Vec<f32> = expected["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let x = burn::tensor::Tensor::<Compute, 1>::from_floats(inputs.as_slice(), &dev)
        .reshape([inputs.len(), 1]);
    let got = model
        .forward_flat(x, None)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    for (g, e) in got.iter().zip(expected["outputs"].as_array().unwrap()) {
        let e = e.as_f64().unwrap();
        assert!(
            (*g as f64 - e).abs() < 1e-5,
            "levelset {g} against PyTorch's {e}"
        );
    }
    let source = meta.imported_from.expect("the sidecar records the source");
    assert_eq!(source.path, weights);
    assert_eq!(
        source.sha256,
        "11791073dcedd0bba15f4cb2ef22015d350857e5c78bec29b084adeecb3ebb00"
    );
    assert_eq!(source.map, vec![r"^net\.=".to_string()]);
    // The imported checkpoint is an ordinary one: eval computes its energy.
    let eval = succeed([
        "eval".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--checkpoint".as_ref(),
        out.as_os_str(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&eval.stdout).unwrap();
    assert_eq!(report["energy"], serde_json::json!(meta.energy));

    // Into the quadratic net (no biases), the biases are left over.
    let quadratic = write(dir.path(), "quadratic.toml", &tiny());
    let mut args = import(&[r"^net\.="], &dir.path().join("q"));
    args[2] = quadratic.into();
    fail_with(
        args,
        &["in the file but not in the network: layers.0.Linear.bias"],
    );
    fail_with(
        import(&["(unclosed=x"], &dir.path().join("r")),
        &["--map \"(unclosed=x\"", "not a valid regex"],
    );
    // The same state_dict saved by torch.save imports to the same parameters.
    let mut args = import(&[r"^net\.="], &dir.path().join("pt"));
    args[4] = fixtures.join("cubic_mlp.pt").into();
    succeed(args);
    let cubic_params = |dir: &Path| {
        let (model, _) = checkpoint::load(
            net.init::<Compute>(0, &dev),
            &Architecture::Mlp(net.clone()),
            dir,
            &dev,
        )
        .unwrap();
        flatten(&model).into_data().to_vec::<f32>().unwrap()
    };
    assert_eq!(cubic_params(&dir.path().join("pt")), cubic_params(&out));
    let mut args = import(&[r"^net\.="], &dir.path().join("k"));
    args[4] = fixtures.join("cubic_mlp.pt").into();
    args.extend(["--key".into(), "state_dict".into()]);
    fail_with(args, &["cubic_mlp.pt", "state_dict"]);
    let pickle = write(dir.path(), "model.pt", "not a zip archive");
    let mut args = import(&[], &dir.path().join("p"));
    args[4] = pickle.into();
    fail_with(args, &["model.pt"]);
    let mut args = import(&[], &dir.path().join("t"));
    args[4] = write(dir.path(), "model.onnx", "").into();
    fail_with(
        args,
        &[
            "model.onnx",
            "neither a torch.save file (a zip archive or a pickle stream) nor a safetensors \
             file, by its first bytes",
        ],
    );
}
