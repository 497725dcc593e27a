//! Language models described in the config (`[task.net]` of a `ptb` task) with weights from
//! PyTorch: two state_dicts of `nn.Embedding`, a two-layer `nn.LSTM` and `nn.Linear`
//! (fixtures written by `tests/fixtures/import/make_fixtures.py`), one named as PyTorch's
//! word_language_model example names its parts, are imported, give PyTorch's logits, and are
//! connected by DSS and a Bezier curve.

use std::path::Path;

use levelset_data::testing::fixture_data_dir;
use levelset_models::Architecture;
use levelset_models::backend::{Compute, device};
use levelset_models::nets::LstmLm;
use tempfile::TempDir;

use crate::common::*;

/// The fixtures' net on the committed PTB extract, whose vocabulary (`VOCAB`) they were made
/// for.
pub const CONFIG: &str = r#"
name = "imported-lm"
energy = "test_loss"

[task]
kind = "ptb"
train_file = "ptb.valid.txt"
heldout_file = "ptb.test.txt"
heldout_limit = 400
batch_size = 4
steps = 5

[task.net]
layers = [
    { kind = "embedding", features = 5 },
    { kind = "lstm", hidden = 4 },
    { kind = "lstm", hidden = 4 },
    { kind = "linear", features = VOCAB },
]

[train]
check_every = 10
max_steps = 20

[train.optimizer]
kind = "sgd"
lr = 1.0

[dss]
alpha = 0.98
slack = 1.05
grid = 6
insert_at = "midpoint"
order = "breadth_first"
max_depth = 2
max_beads = 4
first_bead_always = true
length_over = "weights"

[curve]
kind = "bezier"
bends = 1
steps = 10
optimizer = { kind = "adam", lr = 1e-3 }
slack = 1.05
length_over = "weights"
"#;

/// A described language model's checkpoint and its parameters, flattened.
fn load(dir: &Path) -> (LstmLm<Compute>, Vec<f32>) {
    load_checkpoint(dir, |architecture| {
        let Architecture::DescribedLm(net) = architecture else {
            panic!("a described language model, got {architecture:?}")
        };
        net.init::<Compute>(0, &device())
    })
}

/// A copy of the safetensors file `from` at `to` with every tensor renamed by `rename` (the
/// header's names change; offsets are relative to the data, which is copied as it is).
fn rename_safetensors(from: &Path, to: &Path, rename: impl Fn(&str) -> String) {
    let bytes = std::fs::read(from).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    let renamed: serde_json::Map<String, serde_json::Value> = header
        .into_iter()
        .map(|(name, entry)| match name.as_str() {
            "__metadata__" => (name, entry),
            _ => (rename(&name), entry),
        })
        .collect();
    let text = serde_json::to_vec(&renamed).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + length..]);
    std::fs::write(to, out).unwrap();
}

fn floats(value: &serde_json::Value) -> Vec<f64> {
    match value {
        serde_json::Value::Array(items) => items.iter().flat_map(floats).collect(),
        v => vec![v.as_f64().unwrap()],
    }
}

#[test]
fn a_pytorch_lstm_language_model_imports_and_connects() {
    let dir = TempDir::new().unwrap();
    let expected = read_json(&import_fixtures().join("ptb_lstm.json"));
    let vocab = u64_at(&expected, "vocab");
    let config = write(
        dir.path(),
        "lm.toml",
        &CONFIG.replace("VOCAB", &vocab.to_string()),
    );
    // The fixtures are made for the committed extract's vocabulary: always read it.
    let data = fixture_data_dir();
    let import = |from: &str, out: &str| {
        let out = dir.path().join(out);
        succeed(import_args(
            &config,
            &import_fixtures().join(from),
            &out,
            &data,
        ));
        out
    };
    let a = import("ptb_lstm_a.safetensors", "a");
    let b = import("ptb_lstm_b.safetensors", "b");
    let a_pt = import("ptb_lstm_a.pt", "a-pt");
    assert!(
        load(&a_pt).1 == load(&a).1,
        "the .pt and .safetensors differ"
    );

    // Net b held as two one-layer LSTMs, `lstm1` and `lstm2`, imports with the book's --map
    // rules as the same parameters.
    let split = dir.path().join("split.safetensors");
    rename_safetensors(
        &import_fixtures().join("ptb_lstm_b.safetensors"),
        &split,
        |name| {
            let (first, rest) = name.split_once('.').unwrap();
            match (first, rest.strip_suffix("_l1")) {
                ("lstm", Some(stem)) => format!("lstm2.{stem}_l0"),
                ("lstm", None) => format!("lstm1.{rest}"),
                _ => name.to_string(),
            }
        },
    );
    let mut words = import_args(&config, &split, &dir.path().join("split"), &data);
    for rule in [
        r"^lstm1\.(\w+)_l0$=lstm.${1}_l0",
        r"^lstm2\.(\w+)_l0$=lstm.${1}_l1",
    ] {
        words.extend(["--map".into(), rule.into()]);
    }
    succeed(words);
    assert!(
        load(&dir.path().join("split")).1 == load(&b).1,
        "the split LSTMs' import differs from the stacked one's"
    );

    // Net a's logits are PyTorch's, at every step (first 16 logits) and over the whole
    // vocabulary at the last step.
    let (model, _) = load(&a);
    let tokens: Vec<i64> = floats(&expected["tokens"])
        .into_iter()
        .map(|t| t as i64)
        .collect();
    let dev = device();
    let tokens = burn::tensor::Tensor::<Compute, 2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(tokens, [2, 5]),
        &dev,
    );
    let (logits, _) = model.forward(tokens, None);
    let v = vocab as usize;
    let got = logits.into_data().to_vec::<f32>().unwrap();
    let first: Vec<f32> = (0..10)
        .flat_map(|row| got[row * v..row * v + 16].to_vec())
        .collect();
    let last: Vec<f32> = [4, 9]
        .iter()
        .flat_map(|row| got[row * v..(row + 1) * v].to_vec())
        .collect();
    for (got, want) in [
        (first, floats(&expected["first_logits"])),
        (last, floats(&expected["last_step_logits"])),
    ] {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (*g as f64 - w).abs() < 1e-4,
                "levelset {g} against PyTorch's {w}"
            );
        }
    }

    // `eval` reports the imported net's energy, as the import recorded it.
    let eval = succeed(args(&[
        &"eval",
        &"--config",
        &config,
        &"--checkpoint",
        &a,
        &"--data-dir",
        &data,
    ]));
    let report: serde_json::Value = serde_json::from_str(&eval.stdout).unwrap();
    let energy = |c: &Path| f64_at(&read_json(&c.join("model.json")), "energy");
    assert_eq!(f64_at(&report, "energy"), energy(&a));

    // Connected as any two checkpoints: DSS and a Bezier curve.
    let level = format!("{}", 1.1 * energy(&a).max(energy(&b)));
    for method in ["dss", "bezier"] {
        let out = dir.path().join(method);
        succeed(connect_args(&config, [&a, &b], &level, method, &out, &data));
        let report = read_json(&out.join("report.json"));
        assert_eq!(report["status"], "connected", "{method}: {report}");
        assert!(f64_at(&report, "endpoint_distance") > 0.0);
    }

    // A net that does not fit: one LSTM layer too few, and a wrong vocabulary.
    let one_layer = write(
        dir.path(),
        "one.toml",
        &CONFIG.replace("VOCAB", &vocab.to_string()).replace(
            "    { kind = \"lstm\", hidden = 4 },\n    { kind = \"lstm\"",
            "    { kind = \"lstm\"",
        ),
    );
    fail_with(
        import_args(
            &one_layer,
            &import_fixtures().join("ptb_lstm_b.safetensors"),
            &dir.path().join("one"),
            &data,
        ),
        &["in the file but not in the network", "lstm.1.input_gate"],
    );
    let wrong_vocab = write(dir.path(), "wrong.toml", &CONFIG.replace("VOCAB", "10"));
    fail_with(
        args(&[
            &"eval",
            &"--config",
            &wrong_vocab,
            &"--checkpoint",
            &a,
            &"--data-dir",
            &data,
        ]),
        &[&format!(
            "net.layers[3] (linear): gives 10 features, but the training text's \
             vocabulary has {vocab} words"
        )],
    );
}

/// A ptb task's net is checked when the config is read: the paper's sizes or a description,
/// not both, not neither; a description a language model.
#[test]
fn a_language_model_config_is_checked_before_any_work() {
    let dir = TempDir::new().unwrap();
    let train = |name: &str, text: &str| {
        args(&[
            &"train",
            &"--config",
            &write(dir.path(), name, text),
            &"--level",
            &"1",
            &"--out",
            &dir.path().join(name).with_extension("out"),
        ])
    };
    let config = CONFIG.replace("VOCAB", "12");
    fail_with(
        train(
            "both.toml",
            &edit(&config, "steps = 5\n", "steps = 5\nembed = 8\nlayers = 2\n"),
        ),
        &["task.net and task.embed, task.layers both describe the network; keep one"],
    );
    let net = config.find("[task.net]").unwrap()..config.find("[train]").unwrap();
    let mut paper = config.clone();
    paper.replace_range(net, "embed = 8\nhidden = 8\n\n");
    fail_with(
        train("neither.toml", &paper),
        &[
            "task.layers, task.init_scale missing",
            "or describe a net in [task.net]",
        ],
    );
    fail_with(
        train(
            "relu.toml",
            &edit(
                &config,
                "{ kind = \"lstm\", hidden = 4 },\n    {",
                "{ kind = \"relu\" },\n    {",
            ),
        ),
        &["task.net.layers[1] (relu): a language model is an embedding, one or more lstm layers"],
    );
    // An image task refuses a language model's layers, with the reason.
    let image = "name = \"x\"\nenergy = \"test_loss\"\n[task]\nkind = \"mnist\"\nbatch_size = 10\n\
                 [task.net]\nlayers = [{ kind = \"embedding\", features = 4 }]\n\
                 [train]\ncheck_every = 1\nmax_steps = 1\n[train.optimizer]\nkind = \"sgd\"\nlr = 0.1\n";
    fail_with(
        train("image.toml", image),
        &["task.net.layers[0] (embedding): embedding and lstm layers make language models"],
    );
}
