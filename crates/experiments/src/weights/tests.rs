//! The readers against files written byte by byte ([`super::testing`]): strided views read
//! as PyTorch reads them, and every lie a file can tell about its storages refused.

use std::path::Path;

use burn::tensor::DType;

use super::testing::{Storage, Tensor, TorchFile, contiguous_strides};
use super::*;

/// Each tensor's name, shape and values as float32.
type Read = Vec<(String, Vec<usize>, Vec<f32>)>;

fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn storage(key: &str, values: &[f32]) -> Storage {
    Storage {
        key: key.into(),
        type_name: "FloatStorage".into(),
        elements: values.len() as i64,
        bytes: floats(values),
    }
}

fn tensor(name: &str, key: &str, offset: i64, shape: &[i64], strides: &[i64]) -> Tensor {
    Tensor {
        name: name.into(),
        storage: key.into(),
        offset,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
    }
}

/// The tensors of `file` written as a zip archive (and, if `legacy`, also as a legacy
/// stream, which must read the same), each read as float32 in the tensor's row-major order.
fn read_back(file: &TorchFile, dir: &Path) -> Result<Read> {
    let path = dir.join("file.pt");
    file.write_zip(&path);
    let zip = read_all(&path)?;
    let legacy_path = dir.join("legacy.pt");
    file.write_legacy(&legacy_path);
    let legacy = read_all(&legacy_path)?;
    assert_eq!(
        zip, legacy,
        "the zip archive and the legacy stream read differently"
    );
    Ok(zip)
}

fn read_all(path: &Path) -> Result<Read> {
    let format = format_of(path)?;
    let tree = read_tree(path, format)?;
    tree.tensors()?
        .into_iter()
        .map(|(name, t)| {
            let data = float32(&name, &t, usize::MAX)?;
            Ok((name, t.shape.clone(), data.to_vec::<f32>().unwrap()))
        })
        .collect()
}

fn error_of(file: &TorchFile) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.pt");
    file.write_zip(&path);
    match read_all(&path) {
        Ok(t) => panic!("expected an error, read {t:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn strided_views_read_as_pytorch_lays_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let s: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let file = TorchFile::default()
        // A transposed [2, 3] weight: w.t() of a contiguous [3, 2], as a state_dict holds
        // `linear.weight` after `weight.data = weight.data.t()`.
        .view(storage("0", &s[..6]), tensor("t", "0", 0, &[2, 3], &[1, 2]))
        // A channels_last conv weight [2, 3, 2, 2]: strides (12, 1, 6, 3).
        .view(
            storage("1", &s),
            tensor("c", "1", 0, &[2, 3, 2, 2], &[12, 1, 6, 3]),
        )
        // big[10:14] and big[0:8:2] of one storage, and an expanded (stride 0) row.
        .view(storage("2", &s), tensor("slice", "2", 10, &[4], &[1]))
        .view(storage("2", &s), tensor("step", "2", 0, &[4], &[2]))
        .view(storage("2", &s), tensor("expand", "2", 5, &[2, 3], &[0, 1]));
    let tensors = read_back(&file, dir.path()).unwrap();
    let get = |n: &str| tensors.iter().find(|t| t.0 == n).unwrap().2.clone();
    assert_eq!(get("t"), vec![0., 2., 4., 1., 3., 5.]);
    // Element [o, i, h, w] of a channels_last tensor sits at o*12 + i + h*6 + w*3.
    let mut expected = Vec::new();
    for o in 0..2 {
        for i in 0..3 {
            for h in 0..2 {
                for w in 0..2 {
                    expected.push((o * 12 + i + h * 6 + w * 3) as f32);
                }
            }
        }
    }
    assert_eq!(get("c"), expected);
    assert_eq!(get("slice"), vec![10., 11., 12., 13.]);
    assert_eq!(get("step"), vec![0., 2., 4., 6.]);
    assert_eq!(get("expand"), vec![5., 6., 7., 5., 6., 7.]);
}

#[test]
fn every_lie_about_a_storage_is_refused() {
    let four = [1f32, 2., 3., 4.];
    let view = |t: Tensor| TorchFile::default().view(storage("0", &four), t);
    let cases: Vec<(TorchFile, &str)> = vec![
        // A storage shorter than the pickle declares (torch.load refuses it too).
        (
            TorchFile::default().view(
                Storage {
                    bytes: floats(&four[..2]),
                    ..storage("0", &four)
                },
                tensor("w", "0", 0, &[4], &[1]),
            ),
            "member archive/data/0 holds 8 bytes, but storage 0 is 4 elements",
        ),
        // A storage longer than declared is not the storage the pickle means.
        (
            TorchFile::default().view(
                Storage {
                    elements: 2,
                    ..storage("0", &four)
                },
                tensor("w", "0", 0, &[2], &[1]),
            ),
            "holds 16 bytes, but storage 0 is 2 elements",
        ),
        (
            TorchFile {
                omit: vec!["archive/data/0".into()],
                ..view(tensor("w", "0", 0, &[4], &[1]))
            },
            "no member archive/data/0",
        ),
        (view(tensor("w", "0", -1, &[4], &[1])), "a negative offset"),
        (
            view(tensor("w", "0", 1, &[4], &[1])),
            "reaches past the end of its storage 0",
        ),
        (
            view(tensor("w", "0", 1 << 60, &[4], &[1])),
            "reaches past the end",
        ),
        (
            view(tensor("w", "0", 0, &[2, 2], &[3, 1])),
            "reaches past the end",
        ),
        (
            view(tensor("w", "0", 0, &[2], &[i64::MAX])),
            "reaches past the end",
        ),
        (
            view(tensor("w", "0", 0, &[2], &[1, 1])),
            "of different ranks",
        ),
        (
            view(tensor("w", "0", 0, &[-4], &[1])),
            "a negative offset, size or stride",
        ),
    ];
    for (file, expected) in cases {
        let error = error_of(&file);
        assert!(
            error.contains(expected),
            "expected {expected:?} in: {error}"
        );
    }
}

#[test]
fn a_deflated_storage_reads_as_far_as_its_tensor_reaches() {
    // 64 MiB of zeros deflate to a few dozen KB, and the tensor uses their first 4 elements:
    // the reader inflates up to the tensor's last element, in a buffer of the tensor's size.
    let dir = tempfile::tempdir().unwrap();
    let elements = 16 << 20;
    let file = TorchFile {
        deflate: true,
        ..TorchFile::default().view(
            Storage {
                key: "0".into(),
                type_name: "FloatStorage".into(),
                elements,
                bytes: vec![0; elements as usize * 4],
            },
            tensor("w", "0", 0, &[4], &[1]),
        )
    };
    let path = dir.path().join("bomb.pt");
    file.write_zip(&path);
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    let tensors = read_all(&path).unwrap();
    assert_eq!(tensors[0].2, vec![0.0; 4]);
}

#[test]
fn a_tensor_larger_than_the_network_is_refused_before_it_is_read() {
    let loads = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = loads.clone();
    let tensor = ForeignTensor {
        dtype: DType::F32,
        shape: vec![1 << 28],
        loader: std::rc::Rc::new(move || {
            counter.set(counter.get() + 1);
            bail!("read")
        }),
    };
    let error = float32("w", &tensor, 1000).unwrap_err().to_string();
    assert!(
        error.contains("larger than any tensor of the network"),
        "{error}"
    );
    assert_eq!(loads.get(), 0);
}

#[test]
fn floats_convert_and_integers_and_non_finite_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.pt");
    let doubles: Vec<u8> = [1.5f64, -2.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let halves: Vec<u8> = [0x3c00u16, 0xc000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [0x3f80u16, 0x4040]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let longs: Vec<u8> = [7i64, 8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let typed = |key: &str, type_name: &str, bytes: Vec<u8>| Storage {
        key: key.into(),
        type_name: type_name.into(),
        elements: 2,
        bytes,
    };
    let file = TorchFile::default()
        .view(
            typed("0", "DoubleStorage", doubles),
            tensor("d", "0", 0, &[2], &[1]),
        )
        .view(
            typed("1", "HalfStorage", halves),
            tensor("h", "1", 0, &[2], &[1]),
        )
        .view(
            typed("2", "BFloat16Storage", bf16),
            tensor("b", "2", 0, &[2], &[1]),
        )
        .view(
            typed("3", "LongStorage", longs),
            tensor("n", "3", 0, &[2], &[1]),
        )
        .float("nan", &[1.0, f32::NAN, f32::INFINITY], &[3]);
    file.write_zip(&path);
    let tree = read_tree(&path, format_of(&path).unwrap()).unwrap();
    let tensors = tree.tensors().unwrap();
    let read = |name: &str| {
        let (_, t) = tensors.iter().find(|(n, _)| n == name).unwrap();
        float32(name, t, usize::MAX).map(|d| d.to_vec::<f32>().unwrap())
    };
    assert_eq!(read("d").unwrap(), vec![1.5, -2.25]);
    assert_eq!(read("h").unwrap(), vec![1.0, -2.0]);
    assert_eq!(read("b").unwrap(), vec![1.0, 3.0]);
    let e = read("n").unwrap_err().to_string();
    assert!(e.contains("n: a I64 tensor"), "{e}");
    let e = read("nan").unwrap_err().to_string();
    assert!(
        e.contains("2 of its 3 values are NaN or infinite (the first at flat index 1"),
        "{e}"
    );
}

#[test]
fn safetensors_of_every_dtype_read_or_refuse_cleanly() {
    use ::safetensors::tensor::TensorView;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let f64s: Vec<u8> = [0.5f64, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let u8s = vec![1u8, 2];
    let views = vec![
        (
            "a",
            TensorView::new(::safetensors::Dtype::F64, vec![2], &f64s).unwrap(),
        ),
        (
            "b",
            TensorView::new(::safetensors::Dtype::U8, vec![2], &u8s).unwrap(),
        ),
    ];
    ::safetensors::serialize_to_file(views, None, &path).unwrap();
    assert_eq!(format_of(&path).unwrap(), Format::Safetensors);
    let tensors = read_tree(&path, Format::Safetensors)
        .unwrap()
        .tensors()
        .unwrap();
    let get = |name: &str| &tensors.iter().find(|(n, _)| n == name).unwrap().1;
    let a = get("a");
    assert_eq!(
        float32("a", a, 10).unwrap().to_vec::<f32>().unwrap(),
        vec![0.5, 4.0]
    );
    let b = get("b");
    let e = float32("b", b, 10).unwrap_err().to_string();
    assert!(e.contains("b: a U8 tensor"), "{e}");
}

#[test]
fn the_format_comes_from_the_bytes_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = TorchFile::default().float("w", &[1.0, 2.0], &[2]);
    for (name, legacy) in [("weights.th", false), ("weights.safetensors", true)] {
        let path = dir.path().join(name);
        if legacy {
            file.write_legacy(&path);
        } else {
            file.write_zip(&path);
        }
        let expected = if legacy {
            Format::TorchLegacy
        } else {
            Format::TorchZip
        };
        assert_eq!(format_of(&path).unwrap(), expected);
    }
    let text = dir.path().join("notes.pt");
    std::fs::write(&text, "hello").unwrap();
    let e = format_of(&text).unwrap_err().to_string();
    assert!(e.contains("neither a torch.save file"), "{e}");
}

#[test]
fn a_name_two_entries_give_is_an_error() {
    let file = TorchFile::default()
        .float("w", &[1.0], &[1])
        .float("w", &[2.0], &[1]);
    assert!(error_of(&file).contains("tensor w appears twice"));
}

/// `file`'s state_dict as `import` finds it: its names, the key and the notes.
fn found(
    file: &TorchFile,
    key: Option<&str>,
) -> Result<(Vec<String>, Option<String>, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.th");
    file.write_zip(&path);
    let tree = read_tree(&path, format_of(&path)?)?;
    let found = state_dict(&tree, key)?;
    let names = found.tensors.into_iter().map(|(n, _)| n).collect();
    Ok((names, found.key, found.notes))
}

#[test]
fn released_checkpoints_are_read_as_they_are_wrapped() {
    let weights = |names: &[&str]| {
        names.iter().fold(TorchFile::default(), |f, n| {
            f.float(n, &[1.0, 2.0], &[1, 2])
        })
    };
    let bare = weights(&["0.weight", "0.bias"]);
    let (names, key, notes) = found(&bare, None).unwrap();
    assert_eq!(
        (names, key),
        (vec!["0.weight".to_string(), "0.bias".into()], None)
    );
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);

    // Every wrapper key, with DataParallel's and torch.compile's prefixes.
    for key in WRAPPER_KEYS {
        let file = TorchFile {
            wrap: vec![key.to_string()],
            ..weights(&[
                "_orig_mod.module.conv1.weight",
                "_orig_mod.module.linear.bias",
            ])
        };
        let (names, used, notes) = found(&file, None).unwrap();
        assert_eq!(names, vec!["conv1.weight", "linear.bias"]);
        assert_eq!(used.as_deref(), Some(key));
        assert_eq!(
            notes,
            vec![
                format!("reading the weights under its key {key:?}"),
                "ignoring its other entries: epoch, best_prec1".to_string(),
                "stripping the prefix \"_orig_mod.\" (torch.compile) from every name".into(),
                "stripping the prefix \"module.\" (DataParallel / DistributedDataParallel) \
                 from every name"
                    .into(),
            ]
        );
    }
    // A prefix only some names carry is a name, not a wrapper's.
    let (names, ..) = found(&weights(&["module.a", "b"]), None).unwrap();
    assert_eq!(names, vec!["module.a", "b"]);

    let two = TorchFile {
        wrap: vec!["state_dict".into(), "model".into()],
        ..weights(&["0.weight"])
    };
    let e = found(&two, None).unwrap_err().to_string();
    assert!(
        e.contains(r#"it holds weights under "state_dict" and "model": choose one with --key"#),
        "{e}"
    );
    let (names, used, _) = found(&two, Some("model")).unwrap();
    assert_eq!(
        (names, used.as_deref()),
        (vec!["0.weight".to_string()], Some("model"))
    );
    let e = found(&two, Some("ema")).unwrap_err().to_string();
    assert!(
        e.contains("no entry \"ema\" (its keys: state_dict, model, epoch, best_prec1)"),
        "{e}"
    );
}

mod properties {
    //! Crafted files at random: any bytes as a pickle, and every byte of a valid `torch.save`
    //! archive or legacy stream changed, give values or errors, never a panic.

    use proptest::prelude::*;

    use super::super::testing::TorchFile;
    use super::super::*;

    /// A small state_dict in both formats: a weight at an offset of a shared storage, a
    /// transposed view, a float64 tensor.
    fn valid_files() -> &'static (Vec<u8>, Vec<u8>) {
        static FILES: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        FILES.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let s: Vec<f32> = (0..8).map(|v| v as f32).collect();
            let file = TorchFile::default()
                .view(
                    super::storage("0", &s),
                    super::tensor("a", "0", 2, &[2, 3], &[1, 2]),
                )
                .float("b", &[1.0, 2.0, 3.0], &[3]);
            let (zip, legacy) = (dir.path().join("z.pt"), dir.path().join("l.pt"));
            file.write_zip(&zip);
            file.write_legacy(&legacy);
            (std::fs::read(zip).unwrap(), std::fs::read(legacy).unwrap())
        })
    }

    /// Reads `bytes` as a file the way `import` does, every tensor included.
    fn read_everything(bytes: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, bytes).unwrap();
        let Ok(format) = format_of(&path) else { return };
        let Ok(tree) = read_tree(&path, format) else {
            return;
        };
        let Ok(tensors) = tree.tensors() else { return };
        for (name, tensor) in tensors {
            let _ = float32(&name, &tensor, 1 << 16);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_are_a_pickle_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = super::super::pickle::read(&bytes);
        }

        #[test]
        fn a_changed_byte_of_a_torch_file_reads_or_fails_cleanly(
            legacy in any::<bool>(),
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let (zip, stream) = valid_files();
            let mut bytes = if legacy { stream.clone() } else { zip.clone() };
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] = value;
            }
            read_everything(&bytes);
        }
    }
}
