//! Running the binary, tiny configs, and reading what it writes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use levelset_models::Architecture;
use levelset_models::backend::{Compute, device};
use levelset_models::checkpoint;
use levelset_models::flat::flatten;
use levelset_models::nets::MlpConfig;
use serde_json::Value;

/// A polynomial regression config small enough that training to its levels takes a few
/// hundred Adam steps on 200 points (milliseconds), with a DSS grid of 20.
pub fn tiny_config(polynomial: &str) -> String {
    format!(
        r#"name = "tiny"
energy = "test_loss"

[task]
kind = "polynomial"
polynomial = "{polynomial}"
train_samples = 200
test_samples = 200
test_seed = 7

[train]
check_every = 10
max_steps = 3000

[train.optimizer]
kind = "adam"
lr = 0.05

[dss]
alpha = 0.95
slack = 1.1
grid = 20
insert_at = "midpoint"
order = "breadth_first"
max_depth = 4
max_beads = 64
first_bead_always = true
length_over = "weights"

[sweep]
levels = [0.1, 0.06]
pairs = 2
seed = 0
"#
    )
}

/// The quadratic tiny config.
pub fn tiny() -> String {
    tiny_config("quadratic")
}

/// `text` with its single occurrence of `from` replaced by `to`.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected exactly one {from:?} in the config"
    );
    text.replacen(from, to, 1)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `levelset ARGS` to completion.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_levelset"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the levelset binary runs");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `levelset ARGS` and asserts that it succeeds.
pub fn succeed<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = run(args);
    assert!(run.status.success(), "levelset failed: {}", run.describe());
    run
}

/// Runs `levelset ARGS`, asserts that it exits with a non-zero code (not a crash) and that
/// stderr contains every one of `needles`.
pub fn fail_with<I, S>(args: I, needles: &[&str]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = run(args);
    let code = run.status.code();
    assert!(
        matches!(code, Some(c) if c != 0),
        "levelset should have exited with an error: {}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("panicked"),
        "an error, not a panic: {}",
        run.describe()
    );
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr should mention {needle:?}: {}",
            run.describe()
        );
    }
    run
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `value` with every `wall_seconds` entry removed, at any depth.
pub fn without_wall_seconds(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "wall_seconds")
                .map(|(k, v)| (k.clone(), without_wall_seconds(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_wall_seconds).collect()),
        other => other.clone(),
    }
}

pub fn f64_at(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} should be a number in {value}"))
}

pub fn u64_at(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} should be an integer in {value}"))
}

/// The parameters stored in a checkpoint of the quadratic net, decoded.
///
/// `model.mpk` files are not compared byte for byte: Burn stores each parameter's random
/// `ParamId` in the record, so two saves of identical weights differ in those ids.
pub fn quadratic_params(dir: &Path) -> Vec<f32> {
    let net = MlpConfig::quadratic();
    let template = net.init::<Compute>(0, &device());
    let (model, _) = checkpoint::load(template, &Architecture::Mlp(net), dir, &device())
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    flatten(&model).into_data().to_vec::<f32>().unwrap()
}

/// A checkpoint's model, built by `build` for the architecture its sidecar records, and its
/// parameters, flattened.
pub fn load_checkpoint<M: burn::module::Module<Compute>>(
    dir: &Path,
    build: impl FnOnce(&Architecture) -> M,
) -> (M, Vec<f32>) {
    let meta = read_json(&dir.join("model.json"));
    let architecture: Architecture = serde_json::from_value(meta["architecture"].clone()).unwrap();
    let template = build(&architecture);
    let (model, _) = checkpoint::load(template, &architecture, dir, &device())
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    let flat = flatten(&model).into_data().to_vec::<f32>().unwrap();
    (model, flat)
}

/// The committed `levelset import` fixtures (`tests/fixtures/import/make_fixtures.py`).
pub fn import_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

/// Command-line words.
pub fn args(words: &[&dyn AsRef<OsStr>]) -> Vec<std::ffi::OsString> {
    words.iter().map(|w| w.as_ref().to_os_string()).collect()
}

/// `import --config CONFIG --from FROM --out OUT --data-dir DATA`.
pub fn import_args(config: &Path, from: &Path, out: &Path, data: &Path) -> Vec<std::ffi::OsString> {
    args(&[
        &"import",
        &"--config",
        &config,
        &"--from",
        &from,
        &"--out",
        &out,
        &"--data-dir",
        &data,
    ])
}

/// `train --config CONFIG --seed SEED --level LEVEL --out OUT --data-dir DATA`.
pub fn train_args(
    config: &Path,
    seed: &str,
    level: &str,
    out: &Path,
    data: &Path,
) -> Vec<std::ffi::OsString> {
    args(&[
        &"train",
        &"--config",
        &config,
        &"--seed",
        &seed,
        &"--level",
        &level,
        &"--out",
        &out,
        &"--data-dir",
        &data,
    ])
}

/// `connect --config CONFIG --a A --b B --level LEVEL --method METHOD --out OUT --data-dir
/// DATA`.
pub fn connect_args(
    config: &Path,
    endpoints: [&Path; 2],
    level: &str,
    method: &str,
    out: &Path,
    data: &Path,
) -> Vec<std::ffi::OsString> {
    let mut words = connect_words(config, endpoints, level, method, out);
    words.extend(args(&[&"--data-dir", &data]));
    words
}

/// `connect --config CONFIG --a A --b B --level LEVEL --method METHOD --out OUT`.
pub fn connect_words(
    config: &Path,
    [a, b]: [&Path; 2],
    level: &str,
    method: &str,
    out: &Path,
) -> Vec<std::ffi::OsString> {
    args(&[
        &"connect",
        &"--config",
        &config,
        &"--a",
        &a,
        &"--b",
        &b,
        &"--level",
        &level,
        &"--method",
        &method,
        &"--out",
        &out,
    ])
}

/// `sweep --config CONFIG --out OUT` followed by `extra` arguments.
pub fn sweep_args(config: &Path, out: &Path, extra: &[&OsStr]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "sweep".into(),
        "--config".into(),
        config.into(),
        "--out".into(),
        out.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_os_string()));
    args
}

/// Copies the folder `from` to `to`, its subfolders with it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
