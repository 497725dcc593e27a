//! `levelset import`: weights trained elsewhere, read from a `.safetensors` file saved by
//! PyTorch, put into the config's network and saved as a levelset checkpoint, so that every
//! path method connects them unchanged.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn_store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use levelset_models::Landscape;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_models::checkpoint::{self, CheckpointMeta, ImportedFrom};
use levelset_models::flat::num_params;
use levelset_models::outdir::OutputLock;
use sha2::{Digest, Sha256};

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};

pub struct ImportArgs {
    pub config: ExperimentConfig,
    pub from: PathBuf,
    pub out: PathBuf,
    /// `OLD=NEW` regex rules applied, in order, to the file's tensor names.
    pub map: Vec<String>,
    pub force: bool,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let extension = args.from.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension {
        "safetensors" => {}
        "pt" | "pth" => bail!(
            "{}: PyTorch pickles are not read yet; save the state_dict as safetensors \
             (`safetensors.torch.save_file(model.state_dict(), \"model.safetensors\")`) and \
             import that",
            args.from.display()
        ),
        _ => bail!(
            "{}: expected a .safetensors file (a PyTorch state_dict saved with safetensors)",
            args.from.display()
        ),
    }
    // Checked before any work, as `train` does: nothing is overwritten by accident.
    let _lock = OutputLock::acquire(&args.out)?;
    if !args.force && checkpoint::exists(&args.out) {
        bail!(
            "{} already holds a checkpoint; pass --force to replace it, or choose another --out",
            args.out.display()
        );
    }
    with_landscape(&args.config.clone(), args)?
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

fn sha256(path: &std::path::Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

impl WithLandscape for ImportArgs {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        let digest = sha256(&self.from)?;
        // PyTorch's Sequential numbers layers with gaps (0, 2, 4 around activations), while
        // levelset's layer lists count 0, 1, 2: the indices are made contiguous, and Linear
        // weights are transposed from PyTorch's [out, in].
        let mut store = SafetensorsStore::from_file(&self.from)
            .with_from_adapter(PyTorchToBurnAdapter)
            .remap(remapper(&self.map)?)
            .map_indices_contiguous(true)
            .allow_partial(true);
        let mut model = landscape.init(0);
        let result = model
            .load_from(&mut store)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.from.display()))?;
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
            bail!(
                "{} does not fit config '{}' (its tensor names after --map, with layer \
                 indices made contiguous, against the network's):\n  {}\n(rename tensors \
                 with --map OLD=NEW, regexes applied in order)",
                self.from.display(),
                self.config.name,
                problems.join("\n  ")
            );
        }
        let kind = landscape.energy_kind();
        let energy = landscape.energy(&model.valid());
        let meta = CheckpointMeta {
            levelset_version: env!("CARGO_PKG_VERSION").to_string(),
            architecture: landscape.architecture(),
            config: serde_json::to_value(&self.config)?,
            seed: 0,
            energy_kind: kind,
            energy,
            level: None,
            steps: 0,
            backend: BACKEND_NAME.to_string(),
            num_params: num_params(&model),
            imported_from: Some(ImportedFrom {
                path: self.from.clone(),
                sha256: digest,
                map: self.map.clone(),
            }),
        };
        checkpoint::save(model, &meta, &self.out)?;
        println!(
            "{}: imported {} tensors from {}; {kind} {energy:.6}; checkpoint in {}",
            self.config.name,
            result.applied.len(),
            self.from.display(),
            self.out.display()
        );
        Ok(())
    }
}
