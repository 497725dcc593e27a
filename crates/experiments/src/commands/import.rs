//! `levelset import`: weights trained elsewhere, read from a PyTorch state_dict (saved by
//! `torch.save` or as `.safetensors`), put into the config's network and saved as a levelset
//! checkpoint, so that every path method connects them unchanged.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn_store::pytorch::PytorchReader;
use burn_store::{
    KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
    TensorSnapshot,
};
use levelset_data::fetch::sha256_file;
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_models::checkpoint::{self, CheckpointMeta, ImportedFrom};
use levelset_models::flat::num_params;
use levelset_models::outdir::OutputLock;

use super::pytorch_lstm;
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};

pub struct ImportArgs {
    pub config: ExperimentConfig,
    pub from: PathBuf,
    /// The state_dict's key in a `.pt` file holding a dictionary.
    pub key: Option<String>,
    pub out: PathBuf,
    /// `OLD=NEW` regex rules applied, in order, to the file's tensor names.
    pub map: Vec<String>,
    pub force: bool,
}

/// The file formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Safetensors,
    /// `torch.save`'s zip archive of a pickle.
    Pytorch,
}

/// The names a language model's parts are also read under (PyTorch's word_language_model
/// example's), and levelset's.
const LANGUAGE_MODEL_ALIASES: [(&str, &str); 3] = [
    ("encoder", "embedding"),
    ("rnn", "lstm"),
    ("decoder", "output"),
];

/// The keys under which training checkpoints conventionally keep the state_dict.
const CONVENTIONAL_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

pub fn run(mut args: ImportArgs) -> Result<()> {
    let extension = args.from.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = match extension {
        "safetensors" => Format::Safetensors,
        "pt" | "pth" => Format::Pytorch,
        _ => bail!(
            "{}: expected a PyTorch state_dict saved with torch.save (.pt, .pth) or as \
             .safetensors",
            args.from.display()
        ),
    };
    if format == Format::Safetensors && args.key.is_some() {
        bail!("--key applies to .pt files; a .safetensors file holds one flat state_dict");
    }
    if format == Format::Pytorch && args.key.is_none() {
        args.key = conventional_key(&args.from)?;
    }
    // Checked before any work, as `train` does: nothing is overwritten by accident.
    let _lock = OutputLock::acquire(&args.out)?;
    if !args.force && checkpoint::exists(&args.out) {
        bail!(
            "{} already holds a checkpoint; pass --force to replace it, or choose another --out",
            args.out.display()
        );
    }
    with_landscape(&args.config.clone(), (format, args))?
}

/// The conventional key every tensor of the `.pt` file at `path` sits under, if there is one.
fn conventional_key(path: &std::path::Path) -> Result<Option<String>> {
    let reader =
        PytorchReader::new(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let keys = reader.keys();
    Ok(CONVENTIONAL_KEYS
        .iter()
        .find(|key| {
            !keys.is_empty() && keys.iter().all(|name| name.starts_with(&format!("{key}.")))
        })
        .map(|key| key.to_string()))
}

/// The `--map` rules as a remapper, each `OLD=NEW` a regex and its replacement.
fn remapper(map: &[String]) -> Result<KeyRemapper> {
    let mut remapper = KeyRemapper::new();
    for rule in map {
        let Some((from, to)) = rule.split_once('=') else {
            bail!("--map {rule:?}: expected OLD=NEW (a regex and its replacement)");
        };
        remapper = remapper
            .add_pattern(from, to)
            .with_context(|| format!("--map {rule:?}: {from:?} is not a valid regex"))?;
    }
    Ok(remapper)
}

impl WithLandscape for (Format, ImportArgs) {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        let (format, args) = self;
        let digest = sha256_file(&args.from)?;
        let architecture = landscape.architecture();
        // A feed-forward net (described, or one of the paper's MLPs and convnets, which are
        // built from their descriptions) keeps PyTorch's Sequential positions (`3.weight` is
        // the fourth layer's, `layers.3.Linear.weight` here, gaps around activations
        // included); the paper's convnets also take their layers' old names (`conv1.weight`,
        // `fc2.bias`), as a module with those attributes names them. Linear weights are
        // transposed from PyTorch's [out, in].
        let mut rules = remapper(&args.map)?;
        if let Some(config) = architecture.described() {
            let layers = config.net.parameter_layers();
            let positions = layers.iter().map(|(i, _)| i.to_string());
            let fields = architecture.field_names().iter().map(|f| f.to_string());
            for (from, (i, name)) in positions.zip(&layers).chain(fields.zip(&layers)) {
                rules = rules
                    .add_pattern(format!(r"^{from}\.(.+)$"), format!("layers.{i}.{name}.$1"))
                    .expect("a fixed pattern");
            }
        }
        // A language model takes a module's `embedding`, `lstm` and `output` (or, as PyTorch's
        // word_language_model example names them, `encoder`, `rnn` and `decoder`); its LSTM's
        // packed gate tensors are split into Burn's gates below.
        let language_model = architecture.language_model().is_some();
        if language_model {
            for (from, to) in LANGUAGE_MODEL_ALIASES {
                rules = rules
                    .add_pattern(format!(r"^{from}\.(.+)$"), format!("{to}.$1"))
                    .expect("a fixed pattern");
            }
        }
        let read = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", args.from.display());
        let snapshots: Vec<TensorSnapshot> = match format {
            Format::Safetensors => SafetensorsStore::from_file(&args.from)
                .remap(rules)
                .get_all_snapshots()
                .map_err(|e| read(&e))?
                .values()
                .cloned()
                .collect(),
            Format::Pytorch => {
                // Its default renumbers indices contiguously, which would lose the positions.
                let mut store = PytorchStore::from_file(&args.from)
                    .remap(rules)
                    .map_indices_contiguous(false);
                if let Some(key) = &args.key {
                    store = store.with_top_level_key(key.clone());
                }
                store
                    .get_all_snapshots()
                    .map_err(|e| read(&e))?
                    .values()
                    .cloned()
                    .collect()
            }
        };
        let snapshots = if language_model {
            pytorch_lstm::unpack(snapshots, "lstm")?
        } else {
            snapshots
        };
        let mut model = landscape.init(0);
        // PyTorch's conventions (Linear weights transposed) by the module's layer types; the
        // rules above already name enum variants, so none are skipped.
        let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), false);
        let mut problems = Vec::new();
        if !result.missing.is_empty() {
            let names: Vec<&str> = result
                .missing
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            problems.push(format!("missing from the file: {}", names.join(", ")));
        }
        if !result.unused.is_empty() {
            problems.push(format!(
                "in the file but not in the network: {}",
                result.unused.join(", ")
            ));
        }
        if !result.errors.is_empty() {
            let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
            problems.push(format!("not applied: {}", errors.join("; ")));
        }
        if !problems.is_empty() {
            let naming = if language_model {
                "as PyTorch names a module's nn.Embedding `embedding` (or `encoder`), nn.LSTM \
                 `lstm` (or `rnn`; the i-th lstm layer is its layer i, `weight_ih_l{i}`, ...) \
                 and nn.Linear `output` (or `decoder`); a bidirectional LSTM or one with a \
                 projection has no levelset counterpart"
            } else {
                "with the i-th described layer's tensors named `i.weight`, `i.bias`, as \
                 PyTorch's Sequential names them (the paper's convnets also by their layers' \
                 names, `conv1.weight`, ...)"
            };
            bail!(
                "{} does not fit config '{}' (its tensor names after --map, {naming}, against \
                 the network's):\n  {}\n(rename tensors with --map OLD=NEW, regexes applied in \
                 order)",
                args.from.display(),
                args.config.name,
                problems.join("\n  ")
            );
        }
        let kind = landscape.energy_kind();
        let energy = landscape.energy(&model.valid());
        let meta = CheckpointMeta {
            levelset_version: env!("CARGO_PKG_VERSION").to_string(),
            architecture,
            config: serde_json::to_value(&args.config)?,
            seed: 0,
            energy_kind: kind,
            energy,
            level: None,
            steps: 0,
            backend: BACKEND_NAME.to_string(),
            num_params: num_params(&model),
            imported_from: Some(ImportedFrom {
                path: args.from.clone(),
                sha256: digest,
                map: args.map.clone(),
                key: args.key.clone(),
            }),
        };
        checkpoint::save(model, &meta, &args.out)?;
        println!(
            "{}: imported {} tensors from {}; {kind} {energy:.6}; checkpoint in {}",
            args.config.name,
            result.applied.len(),
            args.from.display(),
            args.out.display()
        );
        Ok(())
    }
}
