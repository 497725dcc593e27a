//! `levelset import`: weights trained elsewhere, read from a PyTorch state_dict (saved by
//! `torch.save` or as `.safetensors`), put into the config's network and saved as a levelset
//! checkpoint, so that every path method connects them unchanged.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::tensor::DType;
use burn_store::{ApplyError, ModuleSnapshot, PyTorchToBurnAdapter, TensorSnapshot};
use levelset_data::fetch::sha256_file;
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_models::checkpoint::{
    self, CheckpointMeta, ImportedCounter, ImportedFrom, ImportedName,
};
use levelset_models::flat::num_params;
use levelset_models::outdir::OutputLock;

use super::pytorch_lstm;
use super::pytorch_names::{self, COUNTER, LANGUAGE_MODEL_ALIASES};
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::weights::{self, Format, Named, ReadErrors};

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

pub fn run(args: ImportArgs) -> Result<()> {
    let format = weights::format_of(&args.from)?;
    if format == Format::Safetensors && args.key.is_some() {
        bail!("--key applies to torch.save files; a .safetensors file holds one flat state_dict");
    }
    // Checked before any work, as `train` does: nothing is overwritten by accident.
    let _lock = OutputLock::acquire(&args.out)?;
    if !args.force && checkpoint::exists(&args.out) {
        bail!(
            "{} already holds a checkpoint; pass --force to replace it, or choose another --out",
            args.out.display()
        );
    }
    let tree = weights::read_tree(&args.from, format)?;
    let found = weights::state_dict(&tree, args.key.as_deref())
        .with_context(|| args.from.display().to_string())?;
    for note in &found.notes {
        println!("{}: {note}", args.from.display());
    }
    // BatchNorm's step counter (an integer) is not a parameter or a statistic levelset keeps:
    // its running statistics are. The counts are kept in the checkpoint's sidecar, for
    // `levelset export` to write back.
    let (counters, tensors): (Vec<_>, Vec<_>) = found
        .tensors
        .into_iter()
        .partition(|(name, _)| name.rsplit('.').next() == Some(COUNTER));
    let counters = counters
        .iter()
        .map(|(name, tensor)| counter(name, tensor))
        .collect::<Result<Vec<_>>>()
        .with_context(|| args.from.display().to_string())?;
    if !counters.is_empty() {
        println!(
            "{}: keeping {} BatchNorm step counters ({COUNTER}) in the checkpoint's sidecar for \
             export: the running means and variances are imported, the counts are not used",
            args.from.display(),
            counters.len()
        );
    }
    let found = weights::StateDict { tensors, ..found };
    let (key, tensors) = (found.key, found.tensors);
    let converted: Vec<String> = tensors
        .iter()
        .filter(|(_, t)| weights::is_float(t.dtype) && t.dtype != DType::F32)
        .map(|(name, t)| format!("{name} ({:?})", t.dtype))
        .collect();
    if !converted.is_empty() {
        println!(
            "{}: converting {} tensors to float32: {}",
            args.from.display(),
            converted.len(),
            converted.join(", ")
        );
    }
    with_landscape(
        &args.config.clone(),
        (tensors, counters, ImportArgs { key, ..args }),
    )?
}

/// A BatchNorm step counter's value: one integer (PyTorch's is an int64 scalar).
fn counter(name: &str, tensor: &weights::ForeignTensor) -> Result<ImportedCounter> {
    let one = tensor.shape.iter().product::<usize>() == 1;
    if !one || !(tensor.dtype.is_int() || tensor.dtype.is_uint()) {
        bail!(
            "{name}: a BatchNorm step counter is one integer, found a {:?} tensor of shape {:?}",
            tensor.dtype,
            tensor.shape
        );
    }
    let value = (tensor.loader)()
        .and_then(|data| {
            data.convert::<i64>()
                .to_vec::<i64>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))
        })
        .with_context(|| name.to_string())?;
    Ok(ImportedCounter {
        file: name.to_string(),
        value: value[0],
    })
}

impl WithLandscape for (Named, Vec<ImportedCounter>, ImportArgs) {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        let (tensors, counters, args) = self;
        let digest = sha256_file(&args.from)?;
        let architecture = landscape.architecture();
        // A feed-forward net (described, or one of the paper's MLPs and convnets, which are
        // built from their descriptions) keeps PyTorch's Sequential positions (`3.weight` is
        // the fourth layer's, `layers.3.Linear.weight` here, gaps around activations
        // included); the paper's convnets also take their layers' old names (`conv1.weight`,
        // `fc2.bias`), as a module with those attributes names them. Linear weights are
        // transposed from PyTorch's [out, in].
        let mut rules = pytorch_names::rules("--map", &args.map)?;
        let names = pytorch_names::import_names(&architecture);
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
        let mut model = landscape.init(0);
        // No tensor of the file is read that is larger than the network's largest: a small
        // file can declare a huge tensor (a deflated storage) under a parameter's name.
        let largest = largest_tensor(&model);
        let errors = ReadErrors::default();
        let snapshots: Vec<TensorSnapshot> = tensors
            .iter()
            .map(|(name, tensor)| weights::snapshot(name, tensor, largest, &errors))
            .collect();
        let (snapshots, by_rules) = rules.remap(snapshots);
        let (snapshots, by_names) = names.remap(snapshots);
        // Both remaps keep the order and give (new name, old name) a tensor: the file's name
        // and levelset's, for export to write back.
        let renamed: Vec<ImportedName> = by_rules
            .into_iter()
            .zip(by_names)
            .map(|((_, file), (levelset, _))| ImportedName { file, levelset })
            .collect();
        let snapshots = if language_model {
            pytorch_lstm::unpack(snapshots, "lstm")?
        } else {
            snapshots
        };
        // PyTorch's conventions (Linear weights transposed) by the module's layer types; the
        // rules above already name enum variants, so none are skipped. burn-store's `apply`
        // moves the module out of `model` in unsafe code while it maps it, so a panic inside
        // (Burn's `from_data` panics on an integer tensor for a float parameter) drops the
        // module twice: what once ended an integer safetensors import in a segmentation
        // fault. Every snapshot here is float32 and reports a tensor it cannot give as an
        // error, never a panic.
        debug_assert!(snapshots.iter().all(|s| s.dtype == DType::F32));
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
        // A tensor that could not be read is named by the reader's own message; Burn's
        // applier keeps only a debug string of it.
        let mut not_applied: Vec<String> = errors.borrow().clone();
        not_applied.extend(
            result
                .errors
                .iter()
                .filter(|e| !matches!(e, ApplyError::LoadError { .. }))
                .map(|e| e.to_string()),
        );
        if !not_applied.is_empty() {
            problems.push(format!("not applied: {}", not_applied.join("; ")));
        }
        if !problems.is_empty() {
            let naming = if language_model {
                "as PyTorch names a module's nn.Embedding `embedding` (or `encoder`), nn.LSTM \
                 `lstm` (or `rnn`; the i-th lstm layer is its layer i, `weight_ih_l{i}`, ...) \
                 and nn.Linear `output` (or `decoder`); a bidirectional LSTM or one with a \
                 projection has no levelset counterpart"
            } else {
                "with the i-th described layer's tensors named `i.weight`, `i.bias`, as \
                 PyTorch's Sequential names them, a residual block's layers `i.body.j.weight` \
                 and `i.shortcut.j.weight` (the paper's convnets also by their layers' names, \
                 `conv1.weight`, ...; a CIFAR ResNet as its PyTorch implementations name it, \
                 `conv1`, `bn1`, `layer1.0.conv1`, ..., `layer2.0.shortcut.0`, ..., `linear`)"
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
        let evaluated = model.valid();
        let energy = landscape.energy(&evaluated);
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
                names: renamed,
                counters,
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
        if let (Some(bn), Some(carried)) = (
            landscape.statistics(),
            landscape.energy_with_carried_statistics(&evaluated),
        ) {
            println!(
                "{}: with the file's running statistics (PyTorch's eval() mode) the {kind} is \
                 {carried:.6}; the {energy:.6} above is with [bn] stats = \"{}\", as every \
                 path method measures it",
                args.config.name,
                bn.stats.name()
            );
        }
        Ok(())
    }
}

/// The most elements any tensor of `model` holds (parameters and buffers alike).
fn largest_tensor<M: ModuleSnapshot<Train>>(model: &M) -> usize {
    model
        .collect(None, None, false)
        .iter()
        .map(|s| s.shape.num_elements())
        .max()
        .unwrap_or(0)
}
