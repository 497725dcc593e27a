//! `levelset export`: a checkpoint's weights as a PyTorch state_dict in a safetensors file,
//! under the names `levelset import` reads, so that a file imported and exported again comes
//! back with the same names, shapes, dtypes and bits: Linear weights in PyTorch's [out, in],
//! an LSTM's gates packed in PyTorch's order, BatchNorm's running statistics and step
//! counter beside its scale and shift. A `connect` run's points are exported the same way,
//! one file a point, with `path.json` listing them in path order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::{AutodiffModule, Module, ParamId};
use burn::prelude::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::{
    BurnToPyTorchAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, TensorSnapshot,
};
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{Compute, Train};
use levelset_models::checkpoint::{self, CheckpointMeta};
use levelset_models::flat::flatten;
use levelset_models::outdir::OutputLock;
use levelset_models::statistics::StatsMode;
use levelset_models::{Architecture, Energy, EvalModel, Landscape};
use levelset_strings::path::positions;
use serde_json::json;

use super::connect::SavedPath;
use super::eval::Target;
use super::pytorch_lstm;
use super::pytorch_names::{self, ExportNames};
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::pair::load_model;

pub struct ExportArgs {
    pub config: ExperimentConfig,
    /// One checkpoint, to the file `out`; or every point of a `connect` run folder, to the
    /// folder `out`.
    pub target: Target,
    /// The safetensors file (a checkpoint) or the folder (a path) to write.
    pub out: PathBuf,
    /// `OLD=NEW` regex rules applied, in order, to the exported names.
    pub names: Vec<String>,
    /// A checkpoint imported from PyTorch whose file's names the tensors take (a path's
    /// points, which were never imported themselves, named as their endpoint's file).
    pub names_from: Option<PathBuf>,
    /// A curve's samples to export, evenly spaced in `t` (the report's when `None`).
    pub points: Option<usize>,
    pub force: bool,
}

/// The file `path.json` lists a path's points in.
pub const PATH_LIST: &str = "path.json";

pub fn run(args: ExportArgs) -> Result<()> {
    // The rules and the target are checked before the data is read.
    pytorch_names::rules("--names", &args.names)?;
    if let (Some(_), Target::Checkpoint(_)) = (args.points, &args.target) {
        bail!("--points samples a curve: it goes with --path RUN, a bezier or polychain run");
    }
    let written = match &args.target {
        Target::Checkpoint(_) => args.out.clone(),
        Target::Path(_) => args.out.join(PATH_LIST),
    };
    if !args.force && written.exists() {
        bail!(
            "{} already exists; pass --force to replace it, or choose another --out",
            written.display()
        );
    }
    let _lock = match &args.target {
        Target::Path(_) => Some(OutputLock::acquire(&args.out)?),
        Target::Checkpoint(_) => None,
    };
    with_landscape(&args.config.clone(), args)?
}

impl WithLandscape for ExportArgs {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        match &self.target {
            Target::Checkpoint(dir) => self.checkpoint(&landscape, dir),
            Target::Path(run) => self.path(&landscape, run),
        }
    }
}

impl ExportArgs {
    /// The names the exported tensors take: `--names-from`'s file's (with counters of 0: no
    /// training counted steps at the point exported), else `own`'s (the import record of the
    /// checkpoint exported), else the description's.
    fn export_names(
        &self,
        architecture: &Architecture,
        own: Option<&CheckpointMeta>,
    ) -> Result<ExportNames> {
        match &self.names_from {
            Some(dir) => {
                let meta = checkpoint::read_meta(dir)?;
                let Some(record) = meta.imported_from else {
                    bail!(
                        "--names-from {}: not an imported checkpoint (its sidecar has no \
                         imported_from), so it holds no file's names",
                        dir.display()
                    );
                };
                Ok(ExportNames::new(architecture, Some(&record)).uncounted())
            }
            None => Ok(ExportNames::new(
                architecture,
                own.and_then(|meta| meta.imported_from.as_ref()),
            )),
        }
    }

    fn rules_note(&self) -> &'static str {
        if self.names.is_empty() {
            ""
        } else {
            ", then --names"
        }
    }

    fn checkpoint<L: Landscape<Train>>(&self, landscape: &L, dir: &Path) -> Result<()> {
        let architecture = landscape.architecture();
        let (model, meta) = load_model(landscape, dir, &self.config.name)?;
        let names = self.export_names(&architecture, Some(&meta))?;
        let rules = pytorch_names::rules("--names", &self.names)?;
        let tensors = state_dict::<Compute, _>(
            &model.valid(),
            architecture.language_model().is_some(),
            &names,
            &rules,
        )
        .with_context(|| format!("exporting {}", dir.display()))?;
        let count = tensors.len();
        write(
            &self.out,
            tensors,
            &metadata(&self.config, meta.energy_kind, meta.energy),
        )?;
        println!(
            "{}: exported {count} tensors of {} to {} ({}{})",
            self.config.name,
            dir.display(),
            self.out.display(),
            names.source,
            self.rules_note()
        );
        Ok(())
    }

    /// Every point of the run in `run`, each with the statistics `[bn]` gives it at its point
    /// (a net with running statistics), one file a point; a curve's points of control under
    /// `bends/`; `path.json` last.
    fn path<L: Landscape<Train>>(&self, landscape: &L, run: &Path) -> Result<()> {
        let saved = SavedPath::read(run)?;
        let saved = match self.points {
            Some(count) => saved
                .resampled(count)
                .with_context(|| format!("exporting {}", run.display()))?,
            None => saved,
        };
        let architecture = landscape.architecture();
        let models = saved.models(landscape, &self.config.name)?;
        let flats: Vec<Tensor<Compute, 1>> = models.iter().map(flatten).collect();
        let along = positions(
            &flats
                .iter()
                .map(|f| f.to_data().to_vec::<f32>().expect("f32 parameters"))
                .collect::<Vec<_>>(),
        );
        if let (Some(first), Some(last)) = (flats.first(), flats.last()) {
            landscape.set_endpoints(first, last);
        }
        // A curve sampled at other `t` than its report's is measured here, in one pass.
        let (energies, measured): (Vec<f64>, bool) = match saved.reported_energies() {
            Some(reported) => (reported.to_vec(), false),
            None => (
                landscape.energies(&models[0], Tensor::stack(flats, 0)),
                true,
            ),
        };
        // The beads were never imported: their names are the description's or
        // `--names-from`'s, their counters 0.
        let names = self.export_names(&architecture, None)?;
        let rules = pytorch_names::rules("--names", &self.names)?;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let kind = saved.report.energy;
        let export = |model: &EvalModel<Train, L>, file: &str, energy: f64, t: Option<f64>| {
            let model = landscape
                .carrying_point_statistics(model)
                .unwrap_or_else(|| model.clone());
            let tensors = state_dict::<Compute, _>(
                &model,
                architecture.language_model().is_some(),
                &names,
                &rules,
            )?;
            let mut metadata = metadata(&self.config, kind, energy);
            if let Some(t) = t {
                metadata.insert("t".to_string(), t.to_string());
            }
            write(&self.out.join(file), tensors, &metadata)
        };
        let mut points = Vec::with_capacity(models.len());
        for (k, model) in models.iter().enumerate() {
            let file = format!("{k:04}.safetensors");
            export(model, &file, energies[k], Some(along[k]))
                .with_context(|| format!("exporting point {k} ({})", saved.describe(k)))?;
            points.push(json!({ "file": file, "t": along[k], "energy": energies[k] }));
        }
        // A curve's points of control, each with the energy connect measured at it.
        let mut control_points = Vec::new();
        if !saved.control_points().is_empty() {
            std::fs::create_dir_all(self.out.join("bends"))
                .with_context(|| format!("creating {}", self.out.join("bends").display()))?;
        }
        for (k, dir) in saved.control_points().iter().enumerate() {
            let (model, meta) = load_model(landscape, dir, &self.config.name)?;
            let file = format!("bends/{k:04}.safetensors");
            export(&model.valid(), &file, meta.energy, None)
                .with_context(|| format!("exporting the point of control {}", dir.display()))?;
            control_points.push(json!({ "file": file, "energy": meta.energy }));
        }
        let count = points.len();
        let mut list = json!({
            "run": run,
            "method": &saved.report.method,
            "config": self.config.name,
            "energy_kind": kind,
            "energies": if measured { "measured by export" } else { "the report's" },
            "points": points,
        });
        if !control_points.is_empty() {
            list["control_points"] = json!(control_points);
        }
        let path = self.out.join(PATH_LIST);
        write_atomic(&path, &serde_json::to_vec_pretty(&list)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let bends = if control_points.is_empty() {
            String::new()
        } else {
            format!(
                " and its {} points of control to bends/",
                control_points.len()
            )
        };
        println!(
            "{}: exported the {} points of {} ({}){bends} to {} ({}{}); {} lists them in path \
             order",
            self.config.name,
            count,
            run.display(),
            saved.report.method,
            self.out.display(),
            names.source,
            self.rules_note(),
            path.display()
        );
        if let Some(bn) = landscape.statistics()
            && bn.stats == StatsMode::Batch
        {
            println!(
                "{}: [bn] stats = \"batch\": the energies were measured with each batch's own \
                 statistics (PyTorch's train() mode), which no file keeps; the files' running \
                 statistics are the bead checkpoints'",
                self.config.name
            );
        }
        Ok(())
    }
}

/// What the file says of itself: levelset's version, the config and the energy measured at
/// the point (a checkpoint's as it records it) (safetensors metadata is strings; the energy is Rust's shortest
/// representation that reads back to the same f64).
pub fn metadata(config: &ExperimentConfig, kind: Energy, energy: f64) -> HashMap<String, String> {
    HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "levelset_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("config".to_string(), config.name.clone()),
        ("energy_kind".to_string(), kind.name().to_string()),
        ("energy".to_string(), energy.to_string()),
    ])
}

/// `model`'s tensors as a PyTorch state_dict: each in PyTorch's layout under the file's name
/// `names` gives it, an LSTM's gates (`language_model`) packed first, then the BatchNorm
/// counters, then `rules` on every name. A tensor without a name, a recorded name that no
/// tensor takes, or two tensors under one name are errors.
pub fn state_dict<B: Backend, M: Module<B>>(
    model: &M,
    language_model: bool,
    names: &ExportNames,
    rules: &KeyRemapper,
) -> Result<Vec<TensorSnapshot>> {
    // burn-store collects a running statistic as the value it holds, without the updates
    // still pending for it (a `RunningState` applies them in `into_record`, `valid` and
    // `value_sync` only): a statistics pass's last batches would be lost. A record round
    // trip applies them.
    let model = model.clone().load_record(model.clone().into_record());
    let snapshots: Vec<TensorSnapshot> = model
        .collect(None, None, false)
        .iter()
        .map(pytorch_layout)
        .collect();
    let snapshots = if language_model {
        pytorch_lstm::pack(snapshots, "lstm")?
    } else {
        snapshots
    };
    let mut out = Vec::with_capacity(snapshots.len() + names.counters.len());
    let mut unnamed = Vec::new();
    let mut named = Vec::new();
    for mut snapshot in snapshots {
        let levelset = snapshot.full_path();
        match names.name(&levelset) {
            Some(name) => {
                snapshot.path_stack = Some(name.split('.').map(String::from).collect());
                named.push(levelset);
                out.push(snapshot);
            }
            None => unnamed.push(levelset),
        }
    }
    if !unnamed.is_empty() {
        bail!(
            "no PyTorch name for {} in {}",
            unnamed.join(", "),
            names.source
        );
    }
    let unused = names.unused(&named);
    if !unused.is_empty() {
        bail!(
            "{} names {} but the network has no such tensor: the checkpoint does not hold \
             the imported net",
            names.source,
            unused.join(", ")
        );
    }
    for (name, value) in &names.counters {
        out.push(TensorSnapshot::from_data(
            TensorData::new(vec![*value], Vec::<usize>::new()),
            name.split('.').map(String::from).collect(),
            Vec::new(),
            ParamId::new(),
        ));
    }
    let (out, _) = rules.remap(out);
    let mut all: Vec<String> = out.iter().map(TensorSnapshot::full_path).collect();
    all.sort_unstable();
    if let Some(twice) = all.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "two tensors are named {} (after --names); rename one of them",
            twice[0]
        );
    }
    Ok(out)
}

/// `snapshot` in PyTorch's layout (a Linear weight transposed to [out, in], as burn-store's
/// adapter does, the inverse of the one import uses) under levelset's own name: the adapter
/// would also rename a norm layer's `gamma` and `beta`, which the names table does instead.
fn pytorch_layout(snapshot: &TensorSnapshot) -> TensorSnapshot {
    let adapted = BurnToPyTorchAdapter.adapt(snapshot);
    TensorSnapshot::from_closure(
        adapted.clone_data_fn(),
        adapted.dtype,
        adapted.shape.clone(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    )
}

/// The safetensors encoding of `tensors` with `metadata`.
pub fn encode(tensors: Vec<TensorSnapshot>, metadata: &HashMap<String, String>) -> Result<Vec<u8>> {
    let data = tensors
        .iter()
        .map(|t| {
            let name = t.full_path();
            let data = t.to_data().map_err(|e| anyhow!("{name}: {e:?}"))?;
            Ok((name, data))
        })
        .collect::<Result<Vec<(String, TensorData)>>>()?;
    let views = data
        .iter()
        .map(|(name, data)| {
            let dtype = match data.dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::F64 => safetensors::Dtype::F64,
                DType::I64 => safetensors::Dtype::I64,
                other => bail!("{name}: a {other:?} tensor, which export does not write"),
            };
            let view =
                safetensors::tensor::TensorView::new(dtype, data.shape.to_vec(), data.as_bytes())
                    .map_err(|e| anyhow!("{name}: {e}"))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata.clone())).map_err(|e| anyhow!("{e}"))
}

/// Writes `tensors` to `out` as a safetensors file, atomically (a temporary file beside it,
/// synced and renamed), so that `out` is either absent, the old file or the whole new one.
pub fn write(
    out: &Path,
    tensors: Vec<TensorSnapshot>,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let bytes = encode(tensors, metadata)?;
    write_atomic(out, &bytes).with_context(|| format!("writing {}", out.display()))
}
