//! Files levelset did not write, read as a hostile user would craft them (issue 33): weight
//! files whose tensors are strided views, of other dtypes or not finite; a checkpoint whose
//! weights belong to another net; a saved string that lies. Each is read right or refused
//! with exit code 1 and the file and field named, never a panic or a wrong number.

use std::path::Path;

use levelset_experiments::weights::testing::{Storage, Tensor, TorchFile};
use safetensors::SafeTensors;
use serde_json::Value;
use tempfile::TempDir;

use super::common::*;

/// The cubic MLP fixture's tensors: name, shape and float32 values.
fn cubic_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(import_fixtures().join("cubic_mlp.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Imports `from` into the cubic config (its Sequential sits under `net.`).
fn import_cubic(config: &Path, from: &Path, out: &Path) -> Run {
    run(args(&[
        &"import",
        &"--config",
        &config,
        &"--from",
        &from,
        &"--out",
        &out,
        &"--map",
        &r"^net\.=",
    ]))
}

fn params(dir: &Path) -> Vec<f32> {
    load_checkpoint(dir, |architecture| match architecture {
        levelset_models::Architecture::Mlp(net) => {
            net.init::<levelset_models::backend::Compute>(0, &levelset_models::backend::device())
        }
        other => panic!("a cubic MLP, not {other:?}"),
    })
    .1
}

fn safetensors_file(path: &Path, tensors: &[(String, Vec<usize>, safetensors::Dtype, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A transposed weight, a weight at an offset into a storage it shares with a bias, and the
/// legacy stream: each imports to the parameters of the plain safetensors file. Before,
/// strides were ignored and the transposed weight imported with its rows and columns swapped,
/// with exit code 0.
#[test]
fn strided_torch_files_import_the_values_pytorch_reads() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "cubic.toml", &tiny_config("cubic"));
    let reference = dir.path().join("reference");
    let fixture = import_fixtures().join("cubic_mlp.safetensors");
    assert!(import_cubic(&config, &fixture, &reference).status.success());
    let expected = params(&reference);

    let tensors = cubic_tensors();
    let get = |name: &str| tensors.iter().find(|t| t.0 == name).unwrap();
    let mut file = TorchFile::default();
    // net.2.weight [4, 4] kept as the contiguous storage of its transpose: strides (1, 4).
    let (_, shape, w) = get("net.2.weight");
    assert_eq!(shape, &vec![4, 4]);
    let transposed: Vec<f32> = (0..16).map(|k| w[(k % 4) * 4 + k / 4]).collect();
    file = file.view(
        Storage {
            key: "t".into(),
            type_name: "FloatStorage".into(),
            elements: 16,
            bytes: floats(&transposed),
        },
        Tensor {
            name: "net.2.weight".into(),
            storage: "t".into(),
            offset: 0,
            shape: vec![4, 4],
            strides: vec![1, 4],
        },
    );
    // net.0.bias and net.0.weight in one storage, the weight at offset 4.
    let (_, _, b0) = get("net.0.bias");
    let (_, _, w0) = get("net.0.weight");
    let shared = Storage {
        key: "s".into(),
        type_name: "FloatStorage".into(),
        elements: 8,
        bytes: floats(&[b0.clone(), w0.clone()].concat()),
    };
    for (name, offset, shape, strides) in [
        ("net.0.bias", 0, vec![4], vec![1]),
        ("net.0.weight", 4, vec![4, 1], vec![1, 1]),
    ] {
        file = file.view(
            shared.clone(),
            Tensor {
                name: name.into(),
                storage: "s".into(),
                offset,
                shape,
                strides,
            },
        );
    }
    for name in ["net.2.bias", "net.4.weight", "net.4.bias"] {
        let (_, shape, values) = get(name);
        let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        file = file.float(name, values, &shape);
    }
    let zip = dir.path().join("strided.pt");
    file.write_zip(&zip);
    let legacy = dir.path().join("legacy.pth");
    file.write_legacy(&legacy);
    for (from, name) in [(&zip, "zip"), (&legacy, "legacy")] {
        let out = dir.path().join(name);
        let run = import_cubic(&config, from, &out);
        assert!(run.status.success(), "{name}: {}", run.stderr);
        assert_eq!(params(&out), expected, "{name}");
    }
}

/// float64 converts to float32 (and says so); integer and boolean tensors, and NaN or
/// infinite values, are refused naming the tensor with exit code 1. Before, float64 panicked
/// in a matmul, and an integer tensor ended in a segmentation fault.
#[test]
fn weights_of_other_dtypes_convert_or_are_refused_by_name() {
    use safetensors::Dtype;
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "cubic.toml", &tiny_config("cubic"));
    let reference = dir.path().join("reference");
    let fixture = import_fixtures().join("cubic_mlp.safetensors");
    assert!(import_cubic(&config, &fixture, &reference).status.success());
    let tensors = cubic_tensors();

    // PyTorch's own float64 file (`make_strided.py`), and the same as safetensors.
    let out = dir.path().join("torch-doubles");
    let run = import_cubic(&config, &import_fixtures().join("cubic_mlp_f64.pt"), &out);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(params(&out), params(&reference));
    let doubles: Vec<_> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let bytes = values
                .iter()
                .flat_map(|&v| (v as f64).to_le_bytes())
                .collect();
            (name.clone(), shape.clone(), Dtype::F64, bytes)
        })
        .collect();
    let path = dir.path().join("doubles.safetensors");
    safetensors_file(&path, &doubles);
    let out = dir.path().join("doubles");
    let run = import_cubic(&config, &path, &out);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("converting 6 tensors to float32: net.0.bias (F64)"),
        "{}",
        run.stdout
    );
    assert_eq!(params(&out), params(&reference));

    let with = |name: &str, dtype: Dtype, bytes: Vec<u8>| {
        let mut all: Vec<_> = tensors
            .iter()
            .map(|(n, shape, values)| (n.clone(), shape.clone(), Dtype::F32, floats(values)))
            .collect();
        let entry = all.iter_mut().find(|t| t.0 == name).unwrap();
        entry.2 = dtype;
        entry.3 = bytes;
        all
    };
    let cases = [
        (
            with("net.0.bias", Dtype::U8, vec![1, 2, 3, 4]),
            "net.0.bias: a U8 tensor",
        ),
        (
            with(
                "net.0.bias",
                Dtype::I64,
                [1i64, 2, 3, 4]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            "net.0.bias: a I64 tensor",
        ),
        (
            with(
                "net.2.weight",
                Dtype::F32,
                floats(&[[f32::NAN; 3].as_slice(), &[0.0; 13]].concat()),
            ),
            "net.2.weight: 3 of its 16 values are NaN or infinite",
        ),
        (
            with("net.4.bias", Dtype::F32, floats(&[f32::INFINITY])),
            "net.4.bias: 1 of its 1 values are NaN or infinite",
        ),
    ];
    for (k, (file, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case{k}.safetensors"));
        safetensors_file(&path, &file);
        let out = dir.path().join(format!("case{k}"));
        let run = import_cubic(&config, &path, &out);
        assert_eq!(run.status.code(), Some(1), "{expected}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
        assert!(
            run.stderr.contains(&path.display().to_string()),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(!levelset_models::checkpoint::exists(&out));
    }
}

/// A checkpoint whose `model.mpk` was written for another net (its sidecar says otherwise):
/// `eval` names the file and both nets instead of panicking in Burn's record loading.
#[test]
fn eval_of_weights_that_belong_to_another_net_is_an_error() {
    let dir = TempDir::new().unwrap();
    let quadratic = write(dir.path(), "q.toml", &tiny());
    let cubic = write(dir.path(), "c.toml", &tiny_config("cubic"));
    let train = |config: &Path, out: &Path| {
        succeed(args(&[
            &"train",
            &"--config",
            &config,
            &"--level",
            &"0.1",
            &"--seed",
            &"1",
            &"--out",
            &out,
        ]));
    };
    let (q, c) = (dir.path().join("q"), dir.path().join("c"));
    train(&quadratic, &q);
    train(&cubic, &c);
    std::fs::copy(c.join("model.mpk"), q.join("model.mpk")).unwrap();
    let run = run(args(&[
        &"eval",
        &"--config",
        &quadratic,
        &"--checkpoint",
        &q,
    ]));
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(run.stderr.contains("model.mpk"), "{}", run.stderr);
}

/// `connect --resume` reports only what it measures again: a saved string of NaNs, of
/// another net's size (or one that overflows), with no beads, or whose energies, segments or
/// lengths were edited, is refused, naming the file and the field; the honest one resumes.
#[test]
fn a_resumed_connect_measures_the_saved_string_again() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let connect = |out: &Path, resume: bool| {
        let mut words = args(&[
            &"connect",
            &"--config",
            &config,
            &"--level",
            &"0.06",
            &"--seed",
            &"3",
            &"--out",
            &out,
        ]);
        if resume {
            words.push("--resume".into());
        }
        run(words)
    };
    // A folder where report.json's temporary file goes stops the run after its string is
    // saved.
    let saved = dir.path().join("saved");
    let blocker = saved.join(".report.json.partial");
    std::fs::create_dir_all(&blocker).unwrap();
    let first = connect(&saved, false);
    assert!(!first.status.success());
    std::fs::remove_dir(&blocker).unwrap();
    assert!(saved.join("string.json").exists());
    let string: Value = read_json(&saved.join("string.json"));
    let num_params = u64_at(&string, "num_params");

    let honest = dir.path().join("honest");
    copy_dir(&saved, &honest);
    let run = connect(&honest, true);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.contains("measured again"), "{}", run.stdout);

    type Edit = Box<dyn Fn(&mut Value, &mut Vec<u8>)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|_, f32s| {
                for chunk in f32s.chunks_exact_mut(4) {
                    chunk.copy_from_slice(&f32::NAN.to_le_bytes());
                }
            }),
            "bead 0's parameter 0 is NaN",
        ),
        (
            Box::new(move |s, _| s["num_params"] = (num_params + 1).into()),
            "num_params is",
        ),
        (
            Box::new(|s, _| s["num_params"] = (1u64 << 62).into()),
            "parameters per bead",
        ),
        (
            Box::new(|s, f32s| {
                s["num_params"] = 0.into();
                s["bead_energies"] = Value::Array(Vec::new());
                f32s.clear();
            }),
            "num_params is 0",
        ),
        (
            Box::new(|s, _| {
                let energies: Vec<Value> = s["bead_energies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e.as_f64().unwrap() * 0.5).into())
                    .collect();
                s["bead_energies"] = Value::Array(energies.clone());
                s["report"]["bead_energies"] = Value::Array(energies);
            }),
            "bead 0's energy is",
        ),
        (
            Box::new(|s, _| s["report"]["segments"][0]["max_energy"] = 1e-9.into()),
            "segment 0 rises to",
        ),
        (
            Box::new(|s, _| {
                let length = s["report"]["normalized_length"].as_f64().unwrap();
                s["report"]["normalized_length"] = (length * 0.9).into();
            }),
            "its normalized length is",
        ),
    ];
    for (k, (edit, expected)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("case{k}"));
        copy_dir(&saved, &out);
        let mut string = read_json(&out.join("string.json"));
        let mut f32s = std::fs::read(out.join("string.f32")).unwrap();
        edit(&mut string, &mut f32s);
        std::fs::write(
            out.join("string.json"),
            serde_json::to_vec(&string).unwrap(),
        )
        .unwrap();
        std::fs::write(out.join("string.f32"), &f32s).unwrap();
        let run = connect(&out, true);
        assert_eq!(run.status.code(), Some(1), "{expected}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(
            !out.join("report.json").exists(),
            "{expected}: a report was written"
        );
        assert!(
            out.join("string.json").exists(),
            "{expected}: the saved string was removed"
        );
    }
}

/// A checkpoint as model zoos release them: `{"state_dict": ..., "epoch", "best_prec1"}`,
/// every name prefixed by DataParallel's `module.`, saved as `.th`: it imports without
/// `--key`, saying which key it used, what it ignored and which prefix it stripped.
#[test]
fn a_released_checkpoint_imports_as_it_is_wrapped() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "cubic.toml", &tiny_config("cubic"));
    let reference = dir.path().join("reference");
    let fixture = import_fixtures().join("cubic_mlp.safetensors");
    assert!(import_cubic(&config, &fixture, &reference).status.success());
    let file = cubic_tensors().into_iter().fold(
        TorchFile {
            wrap: vec!["state_dict".into()],
            ..TorchFile::default()
        },
        |file, (name, shape, values)| {
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            file.float(&format!("module.{name}"), &values, &shape)
        },
    );
    let path = dir.path().join("resnet-like.th");
    file.write_zip(&path);
    let out = dir.path().join("released");
    let run = import_cubic(&config, &path, &out);
    assert!(run.status.success(), "{}", run.stderr);
    for note in [
        "reading the weights under its key \"state_dict\"",
        "ignoring its other entries: epoch, best_prec1",
        "stripping the prefix \"module.\"",
    ] {
        assert!(run.stdout.contains(note), "{note}: {}", run.stdout);
    }
    assert_eq!(params(&out), params(&reference));
    let meta = read_json(&out.join("model.json"));
    assert_eq!(meta["imported_from"]["key"], "state_dict");
}

/// A BatchNorm step counter (`num_batches_tracked`) that is not one integer: a float, or
/// several entries. Refused before any data is read, naming the tensor.
#[test]
fn a_batch_norm_step_counter_that_is_not_one_integer_is_refused() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "b.toml", &super::resnet::resnet8('B'));
    let bytes = std::fs::read(import_fixtures().join("resnet8_b.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let counter = "layer1.0.bn2.num_batches_tracked";
    let one_float = (vec![], safetensors::Dtype::F32, 7f32.to_le_bytes().to_vec());
    let two_ints = (
        vec![2],
        safetensors::Dtype::I64,
        [7i64, 8].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    for (k, (shape, dtype, data)) in [one_float, two_ints].into_iter().enumerate() {
        let mut tensors: Vec<_> = file
            .tensors()
            .into_iter()
            .filter(|(name, _)| name != counter)
            .map(|(name, view)| {
                (
                    name,
                    view.shape().to_vec(),
                    view.dtype(),
                    view.data().to_vec(),
                )
            })
            .collect();
        tensors.push((counter.to_string(), shape, dtype, data));
        let path = dir.path().join(format!("bad-{k}.safetensors"));
        safetensors_file(&path, &tensors);
        fail_with(
            import_args(
                &config,
                &path,
                &dir.path().join(format!("out-{k}")),
                &dir.path().join("no-data"),
            ),
            &[counter, "one integer"],
        );
    }
}
