//! Experiment configs (TOML). Unknown keys are errors, and every value is range-checked with
//! the offending key named, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use levelset_models::nets::described::Shape;
use levelset_models::nets::described_lm::check_language_model;
use levelset_models::nets::{
    CIFAR_CROP, CifarConvConfig, DescribedConfig, MNIST_INPUT, MnistConvConfig, NetDescription,
    ResnetConfig,
};
use levelset_models::statistics::{BnConfig, StatsMode};
use levelset_models::tasks::regression_net;
use levelset_models::train::TrainSettings;
use levelset_models::{Architecture, DataSplit, Energy};
use levelset_strings::sizes::at_most;
use levelset_strings::{
    AlignConfig, CurveConfig, CurveKind, DssConfig, HessianConfig, Method, NebConfig,
};
use serde::{Deserialize, Serialize};

/// The largest sample count, layer width or pair count a config takes: each sizes an
/// allocation, and a typo must be an error naming its key, not an aborted allocation.
pub const MAX_TASK_SIZE: usize = 100_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Short name used in reports.
    pub name: String,
    /// The quantity whose sublevel sets are studied.
    pub energy: Energy,
    pub task: TaskConfig,
    pub train: TrainSettings,
    /// Dynamic String Sampling settings (`connect`, `sweep`).
    #[serde(default)]
    pub dss: Option<DssConfig>,
    #[serde(default)]
    pub sweep: Option<SweepConfig>,
    /// Many minima connected into one graph per level (`levelset graph`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphConfig>,
    /// The curvature measured at every point of a path (`connect --hessian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hessian: Option<HessianSection>,
    /// Bezier / polychain curve settings (`connect --method bezier|polychain`).
    #[serde(default)]
    pub curve: Option<CurveConfig>,
    /// Nudged elastic band settings (`connect --method neb`).
    #[serde(default)]
    pub neb: Option<NebConfig>,
    /// Weight matching settings (`connect --align`; defaults when absent).
    #[serde(default)]
    pub align: Option<AlignConfig>,
    /// The pairs `reproduce methods` compares every path method on.
    #[serde(default)]
    pub compare: Option<CompareConfig>,
    /// The widths `reproduce width` sweeps over.
    #[serde(default)]
    pub width: Option<WidthConfig>,
    /// Which running statistics a batch-normalized net is evaluated with at a point
    /// (`stats = "recompute"`, the default, `"interpolate"` or `"batch"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn: Option<BnConfig>,
}

/// `[task.net]` of an image task: a net described layer by layer (`layers = [...]`), or a
/// preset by name (`preset = "resnet"` with its `depth`, `width` and `shortcut`, or
/// `preset = "resnet20"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Table", into = "toml::Table")]
pub enum ImageNetSpec {
    Layers(NetDescription),
    Resnet(ResnetConfig),
}

impl TryFrom<toml::Table> for ImageNetSpec {
    type Error = String;
    fn try_from(table: toml::Table) -> Result<Self, String> {
        let value = toml::Value::Table(table);
        if value.get("preset").is_some() {
            value.try_into().map(ImageNetSpec::Resnet)
        } else {
            value.try_into().map(ImageNetSpec::Layers)
        }
        .map_err(|e: toml::de::Error| e.message().to_string())
    }
}

impl From<ImageNetSpec> for toml::Table {
    fn from(spec: ImageNetSpec) -> toml::Table {
        let table = match &spec {
            ImageNetSpec::Layers(net) => toml::Table::try_from(net),
            ImageNetSpec::Resnet(net) => toml::Table::try_from(net),
        };
        table.expect("a net spec is a TOML table")
    }
}

impl ImageNetSpec {
    /// The net layer by layer (a preset written out).
    pub fn description(&self) -> Result<NetDescription, String> {
        match self {
            ImageNetSpec::Layers(net) => Ok(net.clone()),
            ImageNetSpec::Resnet(net) => net.description(IMAGE_CLASSES),
        }
    }
}

/// Which pairs the comparison runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    pub level: f64,
    pub pairs: usize,
    #[serde(default)]
    pub seed: u64,
    /// For a net with running statistics (batch normalization): the `[bn] stats` modes whose
    /// straight line and DSS string the statistics table compares on the same pairs (none:
    /// no table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statistics: Vec<StatsMode>,
}

impl CompareConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.level.is_finite() && self.level > 0.0) {
            return Err(format!(
                "compare.level must be positive, got {}",
                self.level
            ));
        }
        if self.pairs == 0 {
            return Err("compare.pairs must be at least 1".into());
        }
        if let Some(k) =
            (1..self.statistics.len()).find(|&k| self.statistics[..k].contains(&self.statistics[k]))
        {
            return Err(format!(
                "compare.statistics names {} twice",
                self.statistics[k].name()
            ));
        }
        Ok(())
    }
}

/// The widths `reproduce width` sweeps over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidthConfig {
    pub widths: Vec<usize>,
}

impl WidthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(format!(
                "width.widths must list positive widths, got {:?}",
                self.widths
            ));
        }
        for (i, &width) in self.widths.iter().enumerate() {
            levelset_strings::sizes::at_most(&format!("width.widths[{i}]"), width, MAX_TASK_SIZE)?;
        }
        Ok(())
    }
}

/// Levels x pairs for `levelset sweep`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Levels L0, in the order they are run.
    pub levels: Vec<f64>,
    /// Endpoint pairs per level.
    pub pairs: usize,
    /// Base seed; pair `p` trains its endpoints from seeds derived from it.
    #[serde(default)]
    pub seed: u64,
    /// How each pair's second endpoint is made.
    #[serde(default)]
    pub partner: Partner,
    /// Pairs of checkpoints (imported or trained before) to connect instead of training
    /// endpoints: pair `p` is `checkpoints[p]` at every level. Paths relative to the
    /// directory `levelset` runs in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<CheckpointPair>,
}

/// The path methods `connect` offers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodName {
    /// Dynamic String Sampling (the paper), settings in `[dss]`.
    #[default]
    Dss,
    /// A trained Bezier curve (Garipov et al. 2018), settings in `[curve]`.
    Bezier,
    /// A trained polygonal chain (Garipov et al. 2018), settings in `[curve]`.
    Polychain,
    /// Nudged elastic band with AutoNEB insertion (Draxler et al. 2018), settings in `[neb]`.
    Neb,
}

impl MethodName {
    /// The method with the config's settings for it, or an error naming the missing section.
    pub fn method(self, config: &ExperimentConfig) -> Result<Method> {
        let curve = |kind| -> Result<Method> {
            let mut curve = config.curve()?.clone();
            curve.kind = kind;
            Ok(Method::Curve(curve))
        };
        match self {
            MethodName::Dss => Ok(Method::Dss {
                config: config.dss()?.clone(),
                endpoint_training: config.train.clone(),
            }),
            MethodName::Bezier => curve(CurveKind::Bezier),
            MethodName::Polychain => curve(CurveKind::Polychain),
            MethodName::Neb => Ok(Method::Neb(config.neb()?.clone())),
        }
    }

    /// The name `--method` and `graph.method` take.
    pub fn name(self) -> &'static str {
        match self {
            MethodName::Dss => "dss",
            MethodName::Bezier => "bezier",
            MethodName::Polychain => "polychain",
            MethodName::Neb => "neb",
        }
    }

    /// Whether the path's beads are a dense sampling of a curve rather than trained models.
    pub fn samples_a_curve(self) -> bool {
        matches!(self, MethodName::Bezier | MethodName::Polychain)
    }
}

/// Many minima, one graph per level, for `levelset graph` (its flags override each key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Levels L0, each a graph of its own, run in this order.
    #[serde(default)]
    pub levels: Vec<f64>,
    /// Minima to train, from seeds derived from `seed` (minima 2p and 2p + 1 are a sweep's
    /// pair p with the same seed); with `checkpoints`, 0 or their number.
    #[serde(default)]
    pub minima: usize,
    #[serde(default)]
    pub seed: u64,
    /// The path method run on the pairs the straight line does not join.
    #[serde(default)]
    pub method: MethodName,
    /// Weight-match each pair's second minimum to its first before its line and path.
    #[serde(default)]
    pub align: bool,
    /// Checkpoints (imported or trained before) to take as the minima instead of training
    /// them, the same at every level. Paths relative to the directory `levelset` runs in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<PathBuf>,
}

/// The curvature `connect --hessian` measures at every point of a path, as `levelset hessian`
/// measures it at a checkpoint (the same defaults as its flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HessianSection {
    /// The largest eigenvalues (0: none).
    #[serde(default = "one")]
    pub top: usize,
    /// Lanczos iterations (default: 2 x top + 10).
    #[serde(default)]
    pub iterations: Option<usize>,
    /// Also estimate the trace (Hutchinson).
    #[serde(default)]
    pub trace: bool,
    /// Rademacher probes of the trace's estimate.
    #[serde(default = "fifty")]
    pub probes: usize,
    /// The examples the loss is measured on: the first `examples` of `split`.
    #[serde(default = "train_split")]
    pub split: DataSplit,
    #[serde(default = "five_hundred")]
    pub examples: usize,
    /// Seeds the Lanczos start vector and the probes (the same at every point).
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}

fn fifty() -> usize {
    50
}

fn five_hundred() -> usize {
    500
}

fn train_split() -> DataSplit {
    DataSplit::Train
}

impl Default for HessianSection {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

impl HessianSection {
    /// What `levelset_strings::hessian` measures, checked.
    pub fn settings(&self) -> Result<HessianConfig, String> {
        // Each is a count of Hessian-vector products (or of vectors held): bounded, whatever
        // a file says.
        at_most("hessian.top", self.top, MAX_PRODUCTS)?;
        at_most("hessian.probes", self.probes, MAX_PRODUCTS)?;
        if let Some(iterations) = self.iterations {
            at_most("hessian.iterations", iterations, MAX_PRODUCTS)?;
        }
        let settings = HessianConfig {
            top: self.top,
            iterations: self.iterations.unwrap_or(2 * self.top + 10),
            probes: if self.trace { self.probes } else { 0 },
            split: self.split,
            examples: self.examples,
            seed: self.seed,
        };
        settings.validate().map_err(|e| format!("hessian: {e}"))?;
        Ok(settings)
    }
}

/// The most Hessian-vector products (eigenvalues, Lanczos iterations, probes) a `[hessian]`
/// asks for at one point.
pub const MAX_PRODUCTS: usize = 100_000;

/// The largest number of minima a graph takes: every pair's straight line is measured.
pub const MAX_MINIMA: usize = 1000;

impl GraphConfig {
    pub fn validate(&self) -> Result<(), String> {
        validate_levels("graph.levels", &self.levels)?;
        at_most("graph.minima", self.minima, MAX_MINIMA)?;
        at_most("graph.checkpoints", self.checkpoints.len(), MAX_MINIMA)?;
        if !self.checkpoints.is_empty() {
            if self.minima != 0 && self.minima != self.checkpoints.len() {
                return Err(format!(
                    "graph.minima is {} but graph.checkpoints lists {}: with checkpoints, the \
                     minima are the checkpoints",
                    self.minima,
                    self.checkpoints.len()
                ));
            }
        } else if self.minima == 1 {
            return Err("graph.minima must be at least 2 (a graph joins minima)".into());
        }
        Ok(())
    }

    /// The settings a run uses, checked complete: at least one level and two minima.
    pub fn complete(&self) -> Result<(), String> {
        self.validate()?;
        if self.levels.is_empty() {
            return Err(
                "a graph needs a level: pass --level L0 or --levels a,b,c, or set graph.levels"
                    .into(),
            );
        }
        if self.count() < 2 {
            return Err(
                "a graph needs at least 2 minima: pass --minima N, or set graph.minima or \
                 graph.checkpoints"
                    .into(),
            );
        }
        Ok(())
    }

    /// The number of minima.
    pub fn count(&self) -> usize {
        if self.checkpoints.is_empty() {
            self.minima
        } else {
            self.checkpoints.len()
        }
    }
}

/// Checks a list of levels: positive numbers, each once.
fn validate_levels(key: &str, levels: &[f64]) -> Result<(), String> {
    if let Some(bad) = levels.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
        return Err(format!("{key} must be positive numbers, found {bad}"));
    }
    if let Some((i, dup)) = levels
        .iter()
        .enumerate()
        .find(|(i, l)| levels[..*i].contains(l))
    {
        return Err(format!(
            "{key} lists {dup} twice (entry {i}): each level is run once"
        ));
    }
    Ok(())
}

/// Two checkpoint directories to connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointPair {
    pub a: PathBuf,
    pub b: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Partner {
    /// Trained independently from its own seed (Figure 1).
    #[default]
    Independent,
    /// The first endpoint with two hidden units of one layer exchanged: the same function at
    /// another point (Appendix E).
    SwappedUnits { layer: usize, units: [usize; 2] },
}

impl SweepConfig {
    fn validate(&self) -> Result<(), String> {
        if self.levels.is_empty() {
            return Err("sweep.levels must list at least one level".into());
        }
        validate_levels("sweep.levels", &self.levels)?;
        if self.pairs == 0 {
            return Err("sweep.pairs must be at least 1".into());
        }
        at_most("sweep.pairs", self.pairs, MAX_TASK_SIZE)?;
        if !self.checkpoints.is_empty() {
            if self.checkpoints.len() != self.pairs {
                return Err(format!(
                    "sweep.pairs is {} but sweep.checkpoints lists {} pairs: with checkpoints, \
                     pair p is checkpoints[p]",
                    self.pairs,
                    self.checkpoints.len()
                ));
            }
            if self.partner != Partner::Independent {
                return Err(
                    "sweep.partner makes second endpoints; with sweep.checkpoints both are given"
                        .into(),
                );
            }
        }
        if let Partner::SwappedUnits { units, .. } = self.partner
            && units[0] == units[1]
        {
            return Err(format!(
                "sweep.partner.units must name two different units, got {units:?}"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolynomialKind {
    Quadratic,
    Cubic,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskConfig {
    /// Figure 1's regression tasks: a 1-4-4-1 sigmoid net, fresh training points per model.
    Polynomial {
        polynomial: PolynomialKind,
        /// Biases in the net's layers; absent: as the authors' scripts (none in the
        /// quadratic net, every layer in the cubic one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        biases: Option<bool>,
        /// A net described layer by layer, in place of the paper's: one input feature, one
        /// output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        net: Option<NetDescription>,
        train_samples: usize,
        test_samples: usize,
        test_seed: u64,
        #[serde(default)]
        batch_size: Option<usize>,
    },
    /// Deep linear nets on random linear regression (Prop 2.2).
    LinearRegression {
        widths: Vec<usize>,
        train_samples: usize,
        test_samples: usize,
        noise: f32,
        task_seed: u64,
    },
    /// One-hidden-layer ReLU nets of width `width` on the Gaussian-mixture regression task
    /// (Thm 2.4 / Cor 2.5).
    ReluWidth {
        input_dim: usize,
        width: usize,
        components: usize,
        train_samples: usize,
        test_samples: usize,
        task_seed: u64,
    },
    /// Appendix E: a bias-free 2-`hidden`-2 ReLU net mapping three points of the plane round
    /// a cycle.
    ThreePointCycle { hidden: usize },
    Mnist {
        /// The data directory holding `mnist/` (see [`TaskConfig::resolve_data_dir`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_dir: Option<PathBuf>,
        /// Use only the first `n` training / test images (quick configs).
        #[serde(default)]
        train_limit: Option<usize>,
        #[serde(default)]
        test_limit: Option<usize>,
        batch_size: usize,
        #[serde(default)]
        model: MnistConvConfig,
        /// A net described layer by layer or a preset, in place of the paper's (`model`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        net: Option<ImageNetSpec>,
        /// Per-channel input normalization, `(x - mean) / std` applied after pixels are
        /// scaled to [0, 1]: `mean = [...]` and `std = [...]`, both or neither, one value per
        /// channel (one for MNIST), each std > 0. Absent: pixels are only scaled.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "mean_values"
        )]
        mean: Option<Vec<f64>>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "std_values"
        )]
        std: Option<Vec<f64>>,
    },
    Cifar10 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_dir: Option<PathBuf>,
        #[serde(default)]
        train_limit: Option<usize>,
        #[serde(default)]
        test_limit: Option<usize>,
        batch_size: usize,
        /// The side of the square inputs: training takes random `crop` x `crop` windows
        /// (flipped left-right at random), evaluation the central window of each image, the
        /// whole image in file order when `crop` is 32.
        crop: usize,
        /// Pixels of zero padding on each side of a training image before its random crop
        /// (torchvision's `RandomCrop(32, padding=4)` for the CIFAR ResNets: `crop = 32`,
        /// `pad = 4`). Padding is pixel value 0 before normalization, so it becomes
        /// `-mean/std`. Evaluation images are never padded. Default 0, at most 32.
        #[serde(
            default,
            skip_serializing_if = "is_zero",
            deserialize_with = "pad_pixels"
        )]
        pad: usize,
        #[serde(default)]
        model: CifarConvConfig,
        /// A net described layer by layer or a preset, in place of the paper's (`model`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        net: Option<ImageNetSpec>,
        /// Per-channel input normalization, `(x - mean) / std` applied after pixels are
        /// scaled to [0, 1]: `mean = [...]` and `std = [...]`, both or neither, one value per
        /// channel (three for CIFAR-10), each std > 0. Absent: the exact per-channel
        /// statistics of the training images used (after `train_limit`). The usual constants
        /// of the full training set: `mean = [0.4914, 0.4822, 0.4465]`,
        /// `std = [0.2470, 0.2435, 0.2616]`.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "mean_values"
        )]
        mean: Option<Vec<f64>>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "std_values"
        )]
        std: Option<Vec<f64>>,
    },
    Ptb {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_dir: Option<PathBuf>,
        /// Training text inside `data_dir` (the offline copy trains on `ptb.valid.txt`).
        train_file: String,
        heldout_file: String,
        batch_size: usize,
        steps: usize,
        #[serde(default)]
        train_limit: Option<usize>,
        #[serde(default)]
        heldout_limit: Option<usize>,
        /// The paper's net: its sizes and initial scale (all four, or `net` instead).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        embed: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hidden: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layers: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init_scale: Option<f32>,
        /// A language model described layer by layer, in place of the paper's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        net: Option<NetDescription>,
    },
}

/// The side of CIFAR-10's images, the largest crop and the widest padding.
const CIFAR_SIDE: usize = 32;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

// A value of the wrong type inside `[task]` reaches serde through the tagged enum's buffer,
// whose errors name no key; these name theirs.

fn pad_pixels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let pad = i64::deserialize(d).map_err(|e| {
        serde::de::Error::custom(format!("task.pad must be a whole number of pixels: {e}"))
    })?;
    usize::try_from(pad).map_err(|_| serde::de::Error::custom(pad_range(pad)))
}

fn pad_range(pad: impl std::fmt::Display) -> String {
    format!(
        "task.pad must be in 0..={CIFAR_SIDE} (pixels of zero padding on each side of the \
         {CIFAR_SIDE}x{CIFAR_SIDE} images), got {pad}"
    )
}

fn channel_values<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
) -> Result<Option<Vec<f64>>, D::Error> {
    Vec::<f64>::deserialize(d).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "task.{key} must be a list of numbers, one per channel: {e}"
        ))
    })
}

fn mean_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    channel_values(d, "mean")
}

fn std_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    channel_values(d, "std")
}

/// Checks an image task's `mean` and `std` (both or neither, one finite value per channel,
/// std > 0) for `channels`-channel images of `task`.
fn check_normalization(
    mean: &Option<Vec<f64>>,
    std: &Option<Vec<f64>>,
    channels: usize,
    task: &str,
) -> Result<(), String> {
    let (mean, std) = match (mean, std) {
        (None, None) => return Ok(()),
        (Some(mean), Some(std)) => (mean, std),
        (given, _) => {
            let (has, lacks) = if given.is_some() {
                ("mean", "std")
            } else {
                ("std", "mean")
            };
            return Err(format!(
                "task.{has} is given without task.{lacks}: normalizing inputs takes both \
                 per-channel lists, or neither"
            ));
        }
    };
    for (key, values) in [("mean", mean), ("std", std)] {
        if values.len() != channels {
            return Err(format!(
                "task.{key} must list one value per channel ({channels} for {task} images), \
                 got {} values",
                values.len()
            ));
        }
        // Inputs are normalized in f32: the values must be finite there too.
        if let Some((i, v)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(**v as f32).is_finite())
        {
            return Err(format!(
                "task.{key}[{i}] must be a finite number (in f32), got {v:?}"
            ));
        }
    }
    if let Some((i, v)) = std.iter().enumerate().find(|(_, v)| (**v as f32) <= 0.0) {
        return Err(format!("task.std[{i}] must be > 0 (in f32), got {v:?}"));
    }
    Ok(())
}

/// Both image tasks classify into ten classes.
pub const IMAGE_CLASSES: usize = 10;

/// Checks a described net (`task.net`) against the task's images, and that the paper's net
/// (`task.model`) is not also configured.
fn described<M: PartialEq>(
    net: &ImageNetSpec,
    model: &M,
    default: &M,
    input: [usize; 3],
) -> Result<(), String> {
    if model != default {
        return Err("task.model and task.net both describe the network; keep one".into());
    }
    net.description()
        .and_then(|net| net.shapes(input, IMAGE_CLASSES))
        .map(|_| ())
        .map_err(|e| format!("task.net.{e}"))
}

/// A polynomial task's described net (`task.net`), checked: one input feature, one output, no
/// dropout.
pub fn polynomial_net(net: &NetDescription) -> Result<DescribedConfig, String> {
    let config = DescribedConfig::new(net.clone(), Shape::Flat(1), 1)
        .map_err(|e| format!("task.net.{e}"))?;
    regression_net(&Architecture::Described(config.clone())).map_err(|e| format!("task.{e}"))?;
    Ok(config)
}

impl TaskConfig {
    /// Whether the task's net keeps running statistics (a `batch_norm` layer).
    pub fn has_running_statistics(&self) -> bool {
        match self {
            TaskConfig::Mnist { net: Some(net), .. }
            | TaskConfig::Cifar10 { net: Some(net), .. } => net
                .description()
                .is_ok_and(|net| net.has_running_statistics()),
            _ => false,
        }
    }

    /// Fixes the data directory by levelset's one resolution order (`--data-dir` as `flag` >
    /// `$LEVELSET_DATA_DIR` > this config's `data_dir` > the per-user default), so that what
    /// runs, and what the results record, is the folder actually read. False when the task
    /// reads no data.
    pub fn resolve_data_dir(&mut self, flag: Option<&Path>) -> Result<bool> {
        let Some(slot) = self.data_dir_mut() else {
            return Ok(false);
        };
        let (dir, _) = levelset_data::locate::resolve_data_dir(flag, slot.as_deref())
            .map_err(anyhow::Error::msg)?;
        *slot = Some(dir);
        Ok(true)
    }

    fn data_dir_mut(&mut self) -> Option<&mut Option<PathBuf>> {
        match self {
            TaskConfig::Mnist { data_dir, .. }
            | TaskConfig::Cifar10 { data_dir, .. }
            | TaskConfig::Ptb { data_dir, .. } => Some(data_dir),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        // Sample counts and layer sizes each size an allocation.
        let positive = |key: &str, v: usize| {
            if v == 0 {
                Err(format!("task.{key} must be at least 1"))
            } else {
                at_most(&format!("task.{key}"), v, MAX_TASK_SIZE)
            }
        };
        let optional = |key: &str, v: Option<usize>| v.map_or(Ok(()), |v| positive(key, v));
        match self {
            TaskConfig::Polynomial {
                train_samples,
                test_samples,
                batch_size,
                biases,
                net,
                ..
            } => {
                positive("train_samples", *train_samples)?;
                positive("test_samples", *test_samples)?;
                optional("batch_size", *batch_size)?;
                match (net, biases) {
                    (Some(_), Some(_)) => Err("task.net and task.biases both describe the \
                                               network; keep one"
                        .into()),
                    (Some(net), None) => polynomial_net(net).map(|_| ()),
                    (None, _) => Ok(()),
                }
            }
            TaskConfig::LinearRegression {
                widths,
                train_samples,
                test_samples,
                noise,
                ..
            } => {
                if widths.len() < 2 || widths.contains(&0) {
                    return Err(format!(
                        "task.widths must list at least two positive sizes, got {widths:?}"
                    ));
                }
                for (i, &width) in widths.iter().enumerate() {
                    at_most(&format!("task.widths[{i}]"), width, MAX_TASK_SIZE)?;
                }
                if noise.is_nan() || *noise < 0.0 {
                    return Err(format!("task.noise must be >= 0, got {noise}"));
                }
                positive("train_samples", *train_samples)?;
                positive("test_samples", *test_samples)
            }
            TaskConfig::ReluWidth {
                input_dim,
                width,
                components,
                train_samples,
                test_samples,
                ..
            } => {
                positive("input_dim", *input_dim)?;
                positive("width", *width)?;
                positive("components", *components)?;
                positive("train_samples", *train_samples)?;
                positive("test_samples", *test_samples)
            }
            TaskConfig::ThreePointCycle { hidden } => positive("hidden", *hidden),
            TaskConfig::Mnist {
                train_limit,
                test_limit,
                batch_size,
                model,
                net,
                mean,
                std,
                ..
            } => {
                optional("train_limit", *train_limit)?;
                optional("test_limit", *test_limit)?;
                positive("batch_size", *batch_size)?;
                check_normalization(mean, std, MNIST_INPUT[0], "mnist")?;
                match net {
                    Some(net) => described(net, model, &MnistConvConfig::default(), MNIST_INPUT),
                    None => model.validate().map_err(|e| format!("task.model: {e}")),
                }
            }
            TaskConfig::Cifar10 {
                train_limit,
                test_limit,
                batch_size,
                crop,
                pad,
                model,
                net,
                mean,
                std,
                ..
            } => {
                optional("train_limit", *train_limit)?;
                optional("test_limit", *test_limit)?;
                positive("batch_size", *batch_size)?;
                if *pad > CIFAR_SIDE {
                    return Err(pad_range(pad));
                }
                check_normalization(mean, std, 3, "cifar10")?;
                if let Some(net) = net {
                    if *crop == 0 || *crop > CIFAR_SIDE {
                        return Err(format!(
                            "task.crop must be in 1..={CIFAR_SIDE} (the images' side), got {crop}"
                        ));
                    }
                    return described(net, model, &CifarConvConfig::default(), [3, *crop, *crop]);
                }
                // The network's first fully connected layer is sized for 24x24 inputs.
                if *crop != CIFAR_CROP {
                    return Err(format!(
                        "task.crop must be {CIFAR_CROP} (the convnet's input side), got {crop}"
                    ));
                }
                model.validate().map_err(|e| format!("task.model: {e}"))
            }
            TaskConfig::Ptb {
                batch_size,
                steps,
                train_limit,
                heldout_limit,
                embed,
                hidden,
                layers,
                init_scale,
                net,
                ..
            } => {
                positive("batch_size", *batch_size)?;
                positive("steps", *steps)?;
                optional("train_limit", *train_limit)?;
                optional("heldout_limit", *heldout_limit)?;
                let paper = [
                    ("embed", embed.is_some()),
                    ("hidden", hidden.is_some()),
                    ("layers", layers.is_some()),
                    ("init_scale", init_scale.is_some()),
                ];
                let keys = |given: bool| {
                    paper
                        .iter()
                        .filter(|(_, is)| *is == given)
                        .map(|(key, _)| format!("task.{key}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if let Some(net) = net {
                    if paper.iter().any(|(_, given)| *given) {
                        return Err(format!(
                            "task.net and {} both describe the network; keep one",
                            keys(true)
                        ));
                    }
                    // The vocabulary is known once the training text is read.
                    return check_language_model(net, None).map_err(|e| format!("task.net.{e}"));
                }
                let (Some(embed), Some(hidden), Some(layers), Some(init_scale)) =
                    (embed, hidden, layers, init_scale)
                else {
                    return Err(format!(
                        "{} missing: the paper's language model takes task.embed, task.hidden, \
                         task.layers and task.init_scale (or describe a net in [task.net])",
                        keys(false)
                    ));
                };
                positive("embed", *embed)?;
                positive("hidden", *hidden)?;
                positive("layers", *layers)?;
                if !init_scale.is_finite() || *init_scale <= 0.0 {
                    return Err(format!("task.init_scale must be > 0, got {init_scale}"));
                }
                Ok(())
            }
        }
    }
}

impl ExperimentConfig {
    /// The dotted keys whose values differ between `self` and `other` (`dss.grid`,
    /// `sweep.levels`), for errors that must say what changed; empty when they are equal.
    pub fn differences(&self, other: &ExperimentConfig) -> Vec<String> {
        let as_json = |c: &ExperimentConfig| serde_json::to_value(c).expect("configs serialize");
        let mut keys = Vec::new();
        differing_keys(&as_json(self), &as_json(other), "", &mut keys);
        keys
    }

    /// Parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            bail!("name must not be empty");
        }
        self.task.validate().map_err(anyhow::Error::msg)?;
        // Name the full key: `train.optimizer.lr`, `train.check_every`.
        self.train
            .optimizer
            .validate()
            .map_err(|e| anyhow::anyhow!("train.optimizer.{e}"))?;
        self.train
            .validate()
            .map_err(|e| anyhow::anyhow!("train.{e}"))?;
        if let Some(dss) = &self.dss {
            dss.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(sweep) = &self.sweep {
            sweep.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(graph) = &self.graph {
            graph.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(hessian) = &self.hessian {
            hessian.settings().map_err(anyhow::Error::msg)?;
        }
        if let Some(curve) = &self.curve {
            curve.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(neb) = &self.neb {
            neb.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(align) = &self.align {
            align.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(compare) = &self.compare {
            compare.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(width) = &self.width {
            width.validate().map_err(anyhow::Error::msg)?;
        }
        if let Some(bn) = &self.bn {
            bn.validate().map_err(anyhow::Error::msg)?;
            if !self.task.has_running_statistics() {
                bail!(
                    "[bn] sets how batch normalization's running statistics are evaluated, \
                     but this config's net has no batch_norm layer; remove the section"
                );
            }
        }
        Ok(())
    }

    /// The `[dss]` section, required by the commands that connect endpoints.
    pub fn dss(&self) -> Result<&DssConfig> {
        section(&self.dss, &self.name, "dss")
    }

    pub fn curve(&self) -> Result<&CurveConfig> {
        section(&self.curve, &self.name, "curve")
    }

    pub fn neb(&self) -> Result<&NebConfig> {
        section(&self.neb, &self.name, "neb")
    }
}

fn section<'a, T>(value: &'a Option<T>, config: &str, name: &str) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("config {config} has no [{name}] section"))
}

/// Appends to `keys` the dotted keys (below `at`) whose values differ between `a` and `b`.
pub fn differing_keys(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: &str,
    keys: &mut Vec<String>,
) {
    use serde_json::Value;
    let key = |name: &str| {
        if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        }
    };
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let null = Value::Null;
                let (x, y) = (a.get(name).unwrap_or(&null), b.get(name).unwrap_or(&null));
                differing_keys(x, y, &key(name), keys);
            }
        }
        _ if a != b => keys.push(if at.is_empty() {
            "(the whole config)".into()
        } else {
            at.into()
        }),
        _ => {}
    }
}

/// The config at `path`, its data folder resolved (`--data-dir` first); a `--data-dir` for a
/// task without data files is an error.
pub fn load_config(path: &Path, data_dir: Option<PathBuf>) -> Result<ExperimentConfig> {
    let mut config = ExperimentConfig::load(path)?;
    if !config.task.resolve_data_dir(data_dir.as_deref())? && data_dir.is_some() {
        bail!(
            "--data-dir given, but the {} task of {} uses no data directory",
            config.name,
            path.display()
        );
    }
    Ok(config)
}
