//! `levelset export` (issue 39): every model levelset makes goes back to PyTorch. Each import
//! fixture, imported and exported again, comes back with the file's names, shapes, dtypes and
//! bytes; a checkpoint without an import record is named by its description's table, which
//! names the fixtures' nets as PyTorch does.

use std::path::{Path, PathBuf};

use levelset_data::testing::{fixture_data_dir, real_or_fixture_data_dir};
use levelset_experiments::weights;
use safetensors::SafeTensors;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;
use crate::{described, imported_lm, resnet};

/// A tensor as the comparison sees it: name, dtype, shape and bytes.
type Entry = (String, String, Vec<usize>, Vec<u8>);

/// A weights file's state_dict as levelset's reader finds it (any format; a training
/// checkpoint's dict unwrapped, a DataParallel prefix stripped), sorted by name.
fn file_tensors(path: &Path) -> Vec<Entry> {
    let format = weights::format_of(path).unwrap();
    let tree = weights::read_tree(path, format).unwrap();
    let found = weights::state_dict(&tree, None).unwrap();
    let mut out: Vec<Entry> = found
        .tensors
        .iter()
        .map(|(name, tensor)| {
            let data = (tensor.loader)().unwrap();
            (
                name.clone(),
                format!("{:?}", data.dtype),
                data.shape.to_vec(),
                data.as_bytes().to_vec(),
            )
        })
        .collect();
    out.sort();
    out
}

/// An exported file's tensors, read by the safetensors crate itself, sorted by name, and its
/// metadata.
fn exported(path: &Path) -> (Vec<Entry>, Value) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<Entry> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                format!("{:?}", view.dtype()),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    out.sort();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = serde_json::to_value(header.metadata()).unwrap();
    (out, metadata)
}

/// `export --config CONFIG --path RUN --out OUT --data-dir DATA`.
fn export_path_args(config: &Path, run: &Path, out: &Path, data: &Path) -> Vec<std::ffi::OsString> {
    args(&[
        &"export",
        &"--config",
        &config,
        &"--path",
        &run,
        &"--out",
        &out,
        &"--data-dir",
        &data,
    ])
}

/// One task's fixtures: its config, data (none for a regression task) and `--map` rules.
struct Task {
    config: PathBuf,
    data: Option<PathBuf>,
    map: Vec<&'static str>,
}

impl Task {
    /// The cubic MLP fixture's task: the tiny cubic config, its Sequential under `net.`.
    fn cubic(dir: &Path) -> Task {
        Task {
            config: write(dir, "cubic.toml", &tiny_config("cubic")),
            data: None,
            map: vec![r"^net\.="],
        }
    }

    /// The MNIST convnet fixtures' task.
    fn convnet(dir: &Path) -> Task {
        Task {
            config: write(dir, "convnet.toml", described::CONFIG),
            data: Some(real_or_fixture_data_dir()),
            map: Vec::new(),
        }
    }

    /// The LSTM language model fixtures' task, on the committed PTB extract whose vocabulary
    /// they were made for.
    fn language_model(dir: &Path) -> Task {
        let vocab = u64_at(
            &read_json(&import_fixtures().join("ptb_lstm.json")),
            "vocab",
        );
        Task {
            config: write(
                dir,
                "lm.toml",
                &imported_lm::CONFIG.replace("VOCAB", &vocab.to_string()),
            ),
            data: Some(fixture_data_dir()),
            map: Vec::new(),
        }
    }

    /// The ResNet-8 fixtures' task with shortcuts of `option`, on a CIFAR-10 folder of noise.
    fn resnet(dir: &Path, option: char) -> Task {
        Task {
            config: write(
                dir,
                &format!("resnet-{option}.toml"),
                &resnet::resnet8(option),
            ),
            data: Some(noise_cifar(&dir.join("noise"))),
            map: Vec::new(),
        }
    }

    /// `--config CONFIG` and `--data-dir DATA` where the task has data.
    fn task_args(&self) -> Vec<std::ffi::OsString> {
        let mut words = args(&[&"--config", &self.config]);
        if let Some(data) = &self.data {
            words.extend(args(&[&"--data-dir", data]));
        }
        words
    }

    /// `export --checkpoint CHECKPOINT --out OUT` for this task, and `extra`.
    fn export_args(
        &self,
        checkpoint: &Path,
        out: &Path,
        extra: &[&str],
    ) -> Vec<std::ffi::OsString> {
        let mut words = args(&[&"export", &"--checkpoint", &checkpoint, &"--out", &out]);
        words.extend(self.task_args());
        words.extend(extra.iter().map(Into::into));
        words
    }

    fn export(&self, checkpoint: &Path, out: &Path, extra: &[&str]) -> Run {
        run(self.export_args(checkpoint, out, extra))
    }

    /// Imports `fixture` into the checkpoint `out`.
    fn import(&self, fixture: &str, out: &Path) {
        let from = import_fixtures().join(fixture);
        let mut words = args(&[&"import", &"--from", &from, &"--out", &out]);
        words.extend(self.task_args());
        for rule in &self.map {
            words.push("--map".into());
            words.push(rule.into());
        }
        succeed(words);
    }

    /// Imports `fixture`, exports the checkpoint, and returns the checkpoint and the file.
    fn round_trip(&self, dir: &Path, fixture: &str) -> (PathBuf, PathBuf) {
        let checkpoint = dir.join(format!("{fixture}.checkpoint"));
        self.import(fixture, &checkpoint);
        let out = dir.join(format!("{fixture}.exported.safetensors"));
        let run = self.export(&checkpoint, &out, &[]);
        assert!(run.status.success(), "{fixture}: {}", run.describe());
        (checkpoint, out)
    }
}

/// A CIFAR-10 folder of 64 training and 64 test images of noise, for nets whose import only
/// needs some data to evaluate on (the committed extracts have no CIFAR-10).
fn noise_cifar(dir: &Path) -> PathBuf {
    let folder = dir.join("cifar10");
    std::fs::create_dir_all(&folder).unwrap();
    let mut state = 0x2545_f491_u32;
    for file in ["data_batch_1.bin", "test_batch.bin"] {
        let mut bytes = Vec::with_capacity(64 * 3073);
        for record in 0..64u8 {
            bytes.push(record % 10);
            for _ in 0..3072 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                bytes.push(state as u8);
            }
        }
        std::fs::write(folder.join(file), bytes).unwrap();
    }
    dir.to_path_buf()
}

/// `dir`'s checkpoint as one imported before imports recorded names (`names` and `counters`
/// removed from its sidecar's `imported_from`), or never imported (`imported_from` removed).
fn forget_import(checkpoint: &Path, entirely: bool) {
    let path = checkpoint.join("model.json");
    let mut meta = read_json(&path);
    let record = meta.as_object_mut().unwrap();
    if entirely {
        record.remove("imported_from").unwrap();
    } else {
        let from = record["imported_from"].as_object_mut().unwrap();
        from.remove("names").unwrap();
        from.remove("counters");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

/// Every import fixture whose tensors are float32 (all but `cubic_mlp_f64.pt`, which import
/// converts to float32) comes back from import and export with the same names, shapes,
/// dtypes and bytes: the MLP, the MNIST convnets (saved as safetensors, in a training
/// checkpoint's dict, strided and in the legacy format), the LSTM language models (one named
/// as PyTorch's word_language_model example names its parts) and both CIFAR ResNets with
/// their BatchNorm counters (the option-A one a released checkpoint, whose DataParallel
/// prefix is not part of the module's names). The file's metadata records levelset's
/// version, the config and the checkpoint's energy.
#[test]
fn every_import_fixture_comes_back_bit_for_bit() {
    let temp = TempDir::new().unwrap();
    let dir = temp.path();
    let tasks = [
        (
            Task::cubic(dir),
            vec!["cubic_mlp.safetensors", "cubic_mlp.pt"],
        ),
        (
            Task::convnet(dir),
            vec![
                "mnist_convnet_a.safetensors",
                "mnist_convnet_b.safetensors",
                "mnist_convnet_a.pt",
                "mnist_convnet_a_legacy.pth",
                "mnist_convnet_a_strided.pt",
            ],
        ),
        (
            Task::language_model(dir),
            vec![
                "ptb_lstm_a.safetensors",
                "ptb_lstm_b.safetensors",
                "ptb_lstm_a.pt",
            ],
        ),
        (Task::resnet(dir, 'B'), vec!["resnet8_b.safetensors"]),
        (Task::resnet(dir, 'A'), vec!["resnet8_a.th"]),
    ];
    for (task, fixtures) in &tasks {
        for fixture in fixtures {
            let (checkpoint, out) = task.round_trip(dir, fixture);
            // For `check_with_torch.py`, which loads the exported files into PyTorch.
            if let Some(keep) = std::env::var_os("LEVELSET_KEEP_EXPORTS") {
                let keep = Path::new(&keep);
                std::fs::create_dir_all(keep).unwrap();
                std::fs::copy(&out, keep.join(out.file_name().unwrap())).unwrap();
            }
            let (tensors, metadata) = exported(&out);
            let expected = file_tensors(&import_fixtures().join(fixture));
            let names = |all: &[Entry]| all.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
            assert_eq!(names(&tensors), names(&expected), "{fixture}: names");
            for (got, want) in tensors.iter().zip(&expected) {
                assert!(
                    got == want,
                    "{fixture}: {} differs: {:?} {:?} against {:?} {:?}",
                    got.0,
                    got.1,
                    got.2,
                    want.1,
                    want.2
                );
            }
            let meta = read_json(&checkpoint.join("model.json"));
            assert_eq!(metadata["levelset_version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(metadata["config"], meta["config"]["name"], "{metadata}");
            let energy: f64 = metadata["energy"].as_str().unwrap().parse().unwrap();
            assert_eq!(energy, f64_at(&meta, "energy"), "{fixture}");
        }
    }
}

/// A checkpoint without the file's names gets its description's: an nn.Sequential's
/// positions (the convnet fixture's own names), a CIFAR ResNet's PyTorch names with a
/// BatchNorm counter of 0, a language model's levelset names; `--names` renames after them,
/// and an existing file is kept without `--force`.
#[test]
fn a_net_never_imported_gets_its_descriptions_names() {
    let temp = TempDir::new().unwrap();
    let dir = temp.path();

    // The convnet, as a checkpoint imported before imports recorded the file's names.
    let convnet = Task::convnet(dir);
    let (checkpoint, _) = convnet.round_trip(dir, "mnist_convnet_b.safetensors");
    forget_import(&checkpoint, false);
    let out = dir.join("convnet.safetensors");
    let run = convnet.export(&checkpoint, &out, &[]);
    assert!(
        run.status.success() && run.stdout.contains("before imports recorded"),
        "{}",
        run.describe()
    );
    let expected = file_tensors(&import_fixtures().join("mnist_convnet_b.safetensors"));
    assert!(exported(&out).0 == expected);
    // An existing file is refused, then replaced with --force.
    fail_with(
        convnet.export_args(&checkpoint, &out, &[]),
        &["already exists", "--force"],
    );
    succeed(convnet.export_args(&checkpoint, &out, &["--force"]));
    assert!(exported(&out).0 == expected);

    // The ResNet as if levelset had trained it: PyTorch's names, counters of 0.
    let resnet = Task::resnet(dir, 'B');
    let (checkpoint, _) = resnet.round_trip(dir, "resnet8_b.safetensors");
    forget_import(&checkpoint, true);
    let out = dir.join("resnet.safetensors");
    let run = resnet.export(&checkpoint, &out, &[]);
    assert!(run.status.success(), "{}", run.describe());
    let counters = |all: Vec<Entry>| -> Vec<Entry> {
        all.into_iter()
            .map(|(name, dtype, shape, bytes)| {
                if name.ends_with(".num_batches_tracked") {
                    assert_eq!((dtype.as_str(), shape.len()), ("I64", 0), "{name}");
                    (name, dtype, shape, 0i64.to_le_bytes().to_vec())
                } else {
                    (name, dtype, shape, bytes)
                }
            })
            .collect()
    };
    let expected = file_tensors(&import_fixtures().join("resnet8_b.safetensors"));
    assert_eq!(
        expected
            .iter()
            .filter(|e| e.0.ends_with("num_batches_tracked"))
            .count(),
        9
    );
    assert!(exported(&out).0 == counters(expected));

    // The cubic MLP by position, then under the fixture's module attribute with --names.
    let cubic = Task::cubic(dir);
    let (checkpoint, _) = cubic.round_trip(dir, "cubic_mlp.safetensors");
    forget_import(&checkpoint, true);
    let out = dir.join("cubic.safetensors");
    succeed(cubic.export_args(&checkpoint, &out, &["--names", "^=net."]));
    let expected = file_tensors(&import_fixtures().join("cubic_mlp.safetensors"));
    assert!(exported(&out).0 == expected);
    let clash = dir.join("clash.safetensors");
    fail_with(
        cubic.export_args(&checkpoint, &clash, &["--names", r"\.(weight|bias)$=.w"]),
        &["two tensors are named", "--names"],
    );
    assert!(!clash.exists());
    fail_with(
        cubic.export_args(&checkpoint, &clash, &["--names", "no-equals-sign"]),
        &["--names", "OLD=NEW"],
    );

    // The language model named as levelset names its parts.
    let lm = Task::language_model(dir);
    let (checkpoint, _) = lm.round_trip(dir, "ptb_lstm_a.safetensors");
    forget_import(&checkpoint, true);
    let out = dir.join("lm.safetensors");
    let run = lm.export(&checkpoint, &out, &[]);
    assert!(run.status.success(), "{}", run.describe());
    // Net a is named as the word_language_model example names it; levelset's own names
    // are net b's.
    let mut renamed: Vec<Entry> = file_tensors(&import_fixtures().join("ptb_lstm_a.safetensors"))
        .into_iter()
        .map(|(name, dtype, shape, bytes)| {
            let name = name
                .replace("encoder.", "embedding.")
                .replace("rnn.", "lstm.")
                .replace("decoder.", "output.");
            (name, dtype, shape, bytes)
        })
        .collect();
    renamed.sort();
    assert!(exported(&out).0 == renamed);
}

/// `export --path` and `eval --path`: two imported convnets connected by DSS; every point of
/// the string is written with `path.json` in path order, each file imports back to the
/// energy the report measured (and `eval` of its bead gives), the first is endpoint a's file
/// again under `--names-from`; `eval --path --ensemble` measures the ensembles. A Bezier run's
/// samples are rebuilt from its saved points of control to the report's energies, and
/// exported with them, and resampled by --points; a crafted bends/ folder or none is
/// refused, naming them. A regression task has no ensemble error.
#[test]
fn a_paths_points_export_and_evaluate() {
    let dir = TempDir::new().unwrap();
    let data = real_or_fixture_data_dir();
    let convnet = Task::convnet(dir.path());
    let config = convnet.config.clone();
    let import = |net: &str| {
        let out = dir.path().join(net);
        convnet.import(&format!("mnist_convnet_{net}.safetensors"), &out);
        out
    };
    let (a, b) = (import("a"), import("b"));
    let energy = |c: &Path| f64_at(&read_json(&c.join("model.json")), "energy");
    let level = format!("{}", 1.2 * energy(&a).max(energy(&b)));
    let dss = dir.path().join("dss");
    succeed(connect_args(&config, [&a, &b], &level, "dss", &dss, &data));
    let report = read_json(&dss.join("report.json"));
    let beads = u64_at(&report, "beads") as usize;

    let points = dir.path().join("points");
    let export_path = |run: &Path, out: &Path| {
        let mut words = export_path_args(&config, run, out, &data);
        words.extend(args(&[&"--names-from", &a]));
        words
    };
    succeed(export_path(&dss, &points));
    let list = read_json(&points.join("path.json"));
    let listed = list["points"].as_array().unwrap();
    assert_eq!(listed.len(), beads, "{list}");
    let mut previous = -1.0;
    for (k, point) in listed.iter().enumerate() {
        let t = f64_at(point, "t");
        assert!(t > previous && (0.0..=1.0).contains(&t), "{list}");
        previous = t;
        let reported = report["bead_energies"][k].as_f64().unwrap();
        assert_eq!(f64_at(point, "energy"), reported, "{list}");
        // The file imports back into the config's net, at the report's energy.
        let file = points.join(point["file"].as_str().unwrap());
        let back = dir.path().join(format!("back-{k}"));
        succeed(import_args(&config, &file, &back, &data));
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * y.abs().max(1.0);
        assert!(
            close(energy(&back), reported),
            "point {k}: {} against {reported}",
            energy(&back)
        );
        let eval = succeed(args(&[
            &"eval",
            &"--config",
            &config,
            &"--checkpoint",
            &dss.join("beads").join(format!("{k:04}")),
            &"--data-dir",
            &data,
        ]));
        let eval: Value = serde_json::from_str(&eval.stdout).unwrap();
        assert_eq!(f64_at(&eval, "energy"), energy(&back), "point {k}");
    }
    assert_eq!(f64_at(&listed[0], "t"), 0.0);
    assert_eq!(f64_at(&listed[beads - 1], "t"), 1.0);
    // The first point is endpoint a, under its file's names, bit for bit.
    let first = points.join(listed[0]["file"].as_str().unwrap());
    let expected = file_tensors(&import_fixtures().join("mnist_convnet_a.safetensors"));
    assert!(exported(&first).0 == expected);
    // The folder is not written over without --force.
    fail_with(export_path(&dss, &points), &["path.json", "--force"]);

    // Every point's energy, and the ensembles' errors.
    let run = succeed(args(&[
        &"eval",
        &"--config",
        &config,
        &"--path",
        &dss,
        &"--ensemble",
        &"--data-dir",
        &data,
    ]));
    let eval: Value = serde_json::from_str(&run.stdout).unwrap();
    let evaluated = eval["points"].as_array().unwrap();
    assert_eq!(evaluated.len(), beads);
    for point in evaluated {
        let (got, reported) = (f64_at(point, "energy"), f64_at(point, "reported"));
        assert!(
            (got - reported).abs() <= 1e-5 * reported.abs().max(1.0),
            "{eval}"
        );
    }
    let ensemble = &eval["ensemble"];
    assert_eq!(ensemble["split"], "test", "{eval}");
    assert_eq!(u64_at(ensemble, "members") as usize, beads);
    for key in ["error", "endpoints_ensemble"] {
        assert!((0.0..=1.0).contains(&f64_at(ensemble, key)), "{eval}");
    }
    assert_eq!(ensemble["points"].as_array().unwrap().len(), beads);
    assert_eq!(ensemble["endpoints"][0], ensemble["points"][0], "{eval}");

    // A curve keeps its points of control (the endpoints and its bend): its samples are
    // rebuilt from them, to the energies the report measured, and exported in path order.
    let bezier = dir.path().join("bezier");
    succeed(connect_args(
        &config,
        [&a, &b],
        &level,
        "bezier",
        &bezier,
        &data,
    ));
    let curve = read_json(&bezier.join("report.json"));
    let samples = u64_at(&curve, "beads") as usize;
    for k in 0..3 {
        let bend = bezier.join("bends").join(format!("{k:04}"));
        assert!(bend.join("model.json").is_file(), "{}", bend.display());
    }
    assert!(!bezier.join("bends").join("0003").exists());
    let run = succeed(args(&[
        &"eval",
        &"--config",
        &config,
        &"--path",
        &bezier,
        &"--data-dir",
        &data,
    ]));
    let eval: Value = serde_json::from_str(&run.stdout).unwrap();
    let evaluated = eval["points"].as_array().unwrap();
    assert_eq!(evaluated.len(), samples);
    for (k, point) in evaluated.iter().enumerate() {
        let (got, reported) = (f64_at(point, "energy"), f64_at(point, "reported"));
        assert!(
            (got - reported).abs() <= 1e-5 * reported.abs().max(1.0),
            "{eval}"
        );
        assert_eq!(f64_at(point, "curve_t"), k as f64 / (samples - 1) as f64);
    }
    let curve_points = dir.path().join("curve-points");
    succeed(export_path(&bezier, &curve_points));
    let list = read_json(&curve_points.join("path.json"));
    assert_eq!(list["points"].as_array().unwrap().len(), samples, "{list}");
    assert_eq!(list["method"], "bezier");
    assert_eq!(list["energies"], "the report's");
    // Its points of control go beside the samples, at the energies connect measured.
    let control = list["control_points"].as_array().unwrap();
    assert_eq!(control.len(), 3, "{list}");
    for point in control {
        assert!(curve_points.join(point["file"].as_str().unwrap()).is_file());
    }
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * y.abs().max(1.0);
    let reported = |k: usize| curve["bead_energies"][k].as_f64().unwrap();
    assert!(close(f64_at(&control[0], "energy"), reported(0)), "{list}");
    assert!(
        close(f64_at(&control[2], "energy"), reported(samples - 1)),
        "{list}"
    );
    // --points resamples the curve, measuring the energies at the new points.
    let resampled = dir.path().join("curve-5");
    let mut words = export_path(&bezier, &resampled);
    words.extend(args(&[&"--points", &"5"]));
    succeed(words);
    let list = read_json(&resampled.join("path.json"));
    let listed = list["points"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{list}");
    assert_eq!(list["energies"], "measured by export");
    assert!(close(f64_at(&listed[0], "energy"), reported(0)), "{list}");
    assert!(
        close(f64_at(&listed[4], "energy"), reported(samples - 1)),
        "{list}"
    );
    // The middle sample is t = 0.5, which the report sampled when its count is odd.
    if samples % 2 == 1 {
        let middle = reported(samples / 2);
        assert!(close(f64_at(&listed[2], "energy"), middle), "{list}");
    }
    // --points is refused for a string and without --path.
    let mut words = export_path(&dss, &dir.path().join("dss-5"));
    words.extend(args(&[&"--points", &"5"]));
    fail_with(words, &["--points samples a curve", "dss"]);
    // A crafted bends/ folder is refused by name: a point of control more than the report
    // counted, a gap in the indices, a lone endpoint.
    copy_dir(&bezier.join("bends/0002"), &bezier.join("bends/0003"));
    fail_with(
        export_path(&bezier, &dir.path().join("curve-extra")),
        &["bends", "holds 4 points of control, its report 3"],
    );
    std::fs::remove_dir_all(bezier.join("bends/0003")).unwrap();
    std::fs::rename(bezier.join("bends/0001"), bezier.join("bends/0007")).unwrap();
    fail_with(
        export_path(&bezier, &dir.path().join("curve-gap")),
        &["bends", "gaps"],
    );
    std::fs::remove_dir_all(bezier.join("bends/0007")).unwrap();
    std::fs::remove_dir_all(bezier.join("bends/0002")).unwrap();
    fail_with(
        export_path(&bezier, &dir.path().join("curve-lone")),
        &["bends", "1 points of control"],
    );
    // Without its points of control, a curve is refused, naming them.
    std::fs::remove_dir_all(bezier.join("bends")).unwrap();
    fail_with(
        export_path(&bezier, &dir.path().join("curve-points-2")),
        &["bezier curve", "points of control", "bends"],
    );

    // A regression task's path evaluates, but has no ensemble error.
    let tiny = write(dir.path(), "tiny.toml", &tiny());
    let own = dir.path().join("own");
    succeed(args(&[
        &"connect",
        &"--config",
        &tiny,
        &"--level",
        &"0.06",
        &"--out",
        &own,
    ]));
    let run = succeed(args(&[&"eval", &"--config", &tiny, &"--path", &own]));
    let eval: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        eval["points"].as_array().unwrap().len() as u64,
        u64_at(&read_json(&own.join("report.json")), "beads")
    );
    fail_with(
        args(&[&"eval", &"--config", &tiny, &"--path", &own, &"--ensemble"]),
        &["--ensemble", "not a classifier"],
    );
}

/// A batch-normalized net's points carry the running statistics `[bn]` gives them at their
/// point (`recompute`: the statistics pass's; `interpolate`: the endpoints', interpolated), so
/// that evaluating a file with its own statistics (PyTorch's `eval()` mode, `eval`'s
/// `energy_with_carried_statistics`) gives the energy the report measured.
#[test]
fn a_batch_normalized_paths_points_carry_their_statistics() {
    let temp = TempDir::new().unwrap();
    let dir = temp.path();
    let data = real_or_fixture_data_dir();
    let config = |stats: &str| {
        write(
            dir,
            &format!("{stats}.toml"),
            &resnet::MNIST_RESNET.replace("STATS", stats),
        )
    };
    let recompute = config("recompute");
    let train = |seed: &str| {
        let out = dir.join(seed);
        succeed(train_args(&recompute, seed, "2.0", &out, &data));
        out
    };
    let (a, b) = (train("1"), train("2"));
    let energy = |c: &Path| f64_at(&read_json(&c.join("model.json")), "energy");
    let level = format!("{}", 1.1 * energy(&a).max(energy(&b)));
    for stats in ["recompute", "interpolate"] {
        let config = config(stats);
        let run = dir.join(format!("dss-{stats}"));
        succeed(connect_args(&config, [&a, &b], &level, "dss", &run, &data));
        let points = dir.join(format!("points-{stats}"));
        succeed(export_path_args(&config, &run, &points, &data));
        let list = read_json(&points.join("path.json"));
        for (k, point) in list["points"].as_array().unwrap().iter().enumerate() {
            // Imported and evaluated under `recompute`: a single checkpoint has no endpoints
            // to interpolate between, and the energy with the file's own statistics does
            // not depend on `[bn]`.
            let back = dir.join(format!("back-{stats}-{k}"));
            let file = points.join(point["file"].as_str().unwrap());
            succeed(import_args(&recompute, &file, &back, &data));
            let eval = succeed(args(&[
                &"eval",
                &"--config",
                &recompute,
                &"--checkpoint",
                &back,
                &"--data-dir",
                &data,
            ]));
            let eval: Value = serde_json::from_str(&eval.stdout).unwrap();
            let carried = f64_at(&eval, "energy_with_carried_statistics");
            let reported = f64_at(point, "energy");
            assert!(
                (carried - reported).abs() <= 1e-5 * reported.abs().max(1.0),
                "{stats}, point {k}: {carried} with the file's statistics, {reported} reported"
            );
        }
    }
}
