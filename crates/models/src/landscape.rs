//! "A network plus its data is an energy": the one trait every task implements, and what the
//! training loop and every path method are written against.

use std::fmt;
use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::flat::unflatten;
use crate::nets::{
    CifarConvConfig, DescribedConfig, DescribedLmConfig, LayerNames, LstmLmConfig, MlpConfig,
    MnistConvConfig,
};
use crate::pattern::Pattern;
use crate::statistics::BnConfig;

/// Which quantity defines the level set. A task rejects the ones it cannot compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Energy {
    TrainLoss,
    TestLoss,
    TrainError,
    TestError,
    TrainPerplexity,
    TestPerplexity,
}

impl Energy {
    pub const ALL: [Energy; 6] = [
        Energy::TrainLoss,
        Energy::TestLoss,
        Energy::TrainError,
        Energy::TestError,
        Energy::TrainPerplexity,
        Energy::TestPerplexity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Energy::TrainLoss => "train_loss",
            Energy::TestLoss => "test_loss",
            Energy::TrainError => "train_error",
            Energy::TestError => "test_error",
            Energy::TrainPerplexity => "train_perplexity",
            Energy::TestPerplexity => "test_perplexity",
        }
    }

    /// Whether the energy is measured on the held-out split.
    pub fn held_out(self) -> bool {
        matches!(
            self,
            Energy::TestLoss | Energy::TestError | Energy::TestPerplexity
        )
    }
}

impl fmt::Display for Energy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The network family and its hyperparameters: enough to rebuild an untrained model, and
/// what a checkpoint is checked against before it is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    Mlp(MlpConfig),
    MnistConv(MnistConvConfig),
    CifarConv(CifarConvConfig),
    LstmLm(LstmLmConfig),
    /// A feed-forward image classifier described layer by layer (`[task.net]`).
    Described(DescribedConfig),
    /// A language model described layer by layer (`[task.net]` of a `ptb` task).
    DescribedLm(DescribedLmConfig),
}

impl Architecture {
    /// The net as a layer-by-layer description, where it has one: the described nets and the
    /// paper's MLPs, MNIST and CIFAR-10 convnets (which are built from theirs).
    pub fn described(&self) -> Option<DescribedConfig> {
        self.try_described().ok()
    }

    /// [`Architecture::described`], or why there is none: a language model, or an MLP config
    /// that does not validate.
    pub fn try_described(&self) -> Result<DescribedConfig, String> {
        match self {
            Architecture::Mlp(config) => config.described(),
            Architecture::MnistConv(config) => Ok(config.described()),
            Architecture::CifarConv(config) => Ok(config.described()),
            Architecture::Described(config) => Ok(config.clone()),
            other => Err(format!("not a feed-forward net: {other:?}")),
        }
    }

    /// The net as a described language model, where it is one: the described ones and the
    /// paper's PTB net (built from its description).
    pub fn language_model(&self) -> Option<DescribedLmConfig> {
        self.try_language_model().ok()
    }

    /// [`Architecture::language_model`], or why there is none: not a language model, or a
    /// paper config that does not validate.
    pub fn try_language_model(&self) -> Result<DescribedLmConfig, String> {
        match self {
            Architecture::LstmLm(config) => config.described(),
            Architecture::DescribedLm(config) => Ok(config.clone()),
            other => Err(format!("not a language model: {other:?}")),
        }
    }

    /// Whether two architectures build the same network: equal, or one a preset and the
    /// other its description (a checkpoint of the paper's net loads into the config that
    /// writes it out layer by layer, and back).
    pub fn same_net(&self, other: &Architecture) -> bool {
        self == other
            || self
                .described()
                .is_some_and(|net| other.described() == Some(net))
            || self
                .language_model()
                .is_some_and(|net| other.language_model() == Some(net))
    }

    /// The names the paper's convnets gave their parameter layers before they were built from
    /// their descriptions (`conv1`, ..., `fc2`), in the order of their parameter layers; none
    /// for other nets.
    pub fn field_names(&self) -> &'static [&'static str] {
        match self {
            Architecture::MnistConv(config) => config.field_names(),
            Architecture::CifarConv(config) => config.field_names(),
            _ => &[],
        }
    }

    /// The PyTorch names of a feed-forward net's parameter layers
    /// ([`NetDescription::pytorch_names`](crate::nets::NetDescription::pytorch_names)), the
    /// paper's convnets' [`Architecture::field_names`] first: what `levelset import` reads and,
    /// the first name of each layer, what `levelset export` writes. `None` for a net without
    /// a description (a language model).
    pub fn pytorch_names(&self) -> Option<Vec<LayerNames>> {
        let mut layers = self.described()?.net.pytorch_names();
        for (layer, field) in layers.iter_mut().zip(self.field_names()) {
            layer.pytorch.insert(0, field.to_string());
        }
        Some(layers)
    }
}

/// A classifier's class probabilities, [examples, classes], and the examples' labels.
pub type Probabilities<B> = (Tensor<B, 2>, Tensor<B, 1, Int>);

/// The inner (non-autodiff) module of a landscape's model.
pub type EvalModel<B, L> = <<L as Landscape<B>>::Model as AutodiffModule<B>>::InnerModule;

/// Which examples a measurement of curvature reads (`levelset hessian --split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSplit {
    Train,
    Test,
}

/// A model's loss over examples fixed in advance ([`Landscape::curvature_loss`]), its ReLU
/// and max pooling recording or holding an activation pattern.
pub type CurvatureLoss<'a, B, M> = Box<dyn Fn(&M, &mut Pattern<B>) -> Tensor<B, 1> + 'a>;

/// A network architecture, its data and a chosen energy.
pub trait Landscape<B: AutodiffBackend> {
    type Model: AutodiffModule<B> + 'static;
    /// One training minibatch, built by a Burn `Batcher`.
    type Batch: Send + Clone + fmt::Debug + 'static;
    /// Per-epoch training state that is not a parameter (an RNN's carried state, a dropout
    /// RNG).
    type Carry;

    fn architecture(&self) -> Architecture;
    fn energy_kind(&self) -> Energy;
    fn device(&self) -> &B::Device;

    /// A freshly initialized model; the same seed gives the same parameters.
    fn init(&self, seed: u64) -> Self::Model;

    /// The training batches a model trained with `seed` sees (shuffling and augmentation are
    /// seeded; tasks with fresh samples per model draw them from `seed`).
    fn loader(&self, seed: u64) -> Arc<dyn DataLoader<B, Self::Batch>>;

    /// Training state at the start of `epoch`.
    fn carry(&self, seed: u64, epoch: usize) -> Self::Carry;

    /// The training objective on one batch (a scalar tensor).
    fn loss(
        &self,
        model: &Self::Model,
        batch: Self::Batch,
        carry: &mut Self::Carry,
    ) -> Tensor<B, 1>;

    /// The configured energy of a model, evaluated in batches on data kept on the device.
    fn energy(&self, model: &EvalModel<B, Self>) -> f64;

    /// The energies of `k` models shaped like `template`, given as flat vectors (the rows of
    /// `points`, [k, num_params]). Tasks whose nets have a stacked forward evaluate all rows
    /// in one pass over the data; the rest evaluate them one by one.
    fn energies(
        &self,
        template: &EvalModel<B, Self>,
        points: Tensor<B::InnerBackend, 2>,
    ) -> Vec<f64> {
        pointwise_energies(self, template, points)
    }

    /// Whether [`Landscape::energies`] has a stacked pass, and how it compares with one by one
    /// on the backend of `device`.
    fn stacked_pass(&self, _device: &Device<B::InnerBackend>) -> StackedPass {
        StackedPass::Absent
    }

    /// How the net's running statistics are set at a point, for a net that keeps some
    /// (batch normalization): what every report says it used. `None` for other nets.
    fn statistics(&self) -> Option<BnConfig> {
        None
    }

    /// For a net with running statistics, `model` carrying the statistics
    /// [`Landscape::energy`] evaluates it with (`[bn]`'s `recompute` or `interpolate`), so that
    /// a file of it evaluates in PyTorch's `eval()` mode as the reports measured it. `None` for
    /// other nets, and for `[bn] stats = "batch"`, which normalizes each batch by its own
    /// statistics and keeps none.
    fn carrying_point_statistics(&self, _model: &EvalModel<B, Self>) -> Option<EvalModel<B, Self>> {
        None
    }

    /// For a classifier, `model`'s class probabilities (the softmax of its logits, with the
    /// statistics [`Landscape::energy`] uses) on every example its energy is measured on,
    /// [examples, classes], and the examples' labels: what an ensemble's error is computed
    /// from. `None` for other tasks.
    fn probabilities(&self, _model: &EvalModel<B, Self>) -> Option<Probabilities<B::InnerBackend>> {
        None
    }

    /// For a net with running statistics, its energy with the statistics it carries (a
    /// checkpoint's, an imported file's: PyTorch's `eval()` mode), beside the `[bn]` energy
    /// [`Landscape::energy`] gives; `None` for other nets.
    fn energy_with_carried_statistics(&self, _model: &EvalModel<B, Self>) -> Option<f64> {
        None
    }

    /// The two endpoints of the path now measured (flat vectors), called when a path method
    /// starts on a pair. A landscape whose energy at a point depends on where the point lies
    /// between them keeps them (`[bn] stats = "interpolate"`); the others ignore them.
    fn set_endpoints(&self, _a: &Tensor<B::InnerBackend, 1>, _b: &Tensor<B::InnerBackend, 1>) {}

    /// The mean loss the net trains on (a classifier's cross-entropy, a regression's error),
    /// without its weight penalty, dropout or augmentation, over the first `examples`
    /// examples of `split`, batch normalization with those examples' own statistics: the
    /// function whose Hessian `levelset hessian` measures, as a function of the model, its
    /// examples prepared once. A recording [`Pattern`] takes the net's activation pattern,
    /// a held one keeps the net on the piece where it was recorded. Tasks that do not hold the split, or hold fewer examples, say
    /// so.
    fn curvature_loss(
        &self,
        _split: DataSplit,
        _examples: usize,
    ) -> Result<CurvatureLoss<'_, B, Self::Model>, String> {
        Err(format!(
            "levelset hessian does not yet measure {:?}: image classifiers and regression \
             nets only",
            self.architecture()
        ))
    }

    /// Why [`Landscape::curvature_loss`] has no Hessian worth measuring, if it has none: a
    /// loss with kinks where examples sit (a mean absolute error is not differentiable where a
    /// residual is zero, and near a fit many residuals are), which differences of gradients
    /// across `e` turn into noise of order one instead of a second derivative. A net's own
    /// kinks (ReLU, max pooling) are not counted: the products hold their pattern.
    fn curvature_caveat(&self) -> Option<String> {
        None
    }

    /// Examples in a training batch (tokens for a language model), for throughput reports.
    fn batch_examples(batch: &Self::Batch) -> usize;

    /// Examples (tokens) one energy evaluation reads.
    fn eval_examples(&self) -> usize;
}

/// What a landscape's stacked evaluation of many points is worth on one backend. Stacking
/// never changes the FLOPs, only how well the kernels run, so this is a measured property of a
/// net on a backend (experiments/bench/README.md), not something to reason out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackedPass {
    /// The net has no stacked forward: `energies` evaluates points one by one.
    Absent,
    /// A stacked forward that measured slower than one by one here: kept for comparison.
    Slower,
    /// A stacked forward that measured faster than one by one here: the default.
    Faster,
}

/// Whether `B` runs on the CPU (flex, ndarray). There the FLOPs of a stacked pass cost the
/// same as one by one, and flex's grouped convolution and middle-axis broadcasts are slower
/// than its plain kernels; on the GPU backends one pass replaces many small kernel launches.
pub fn cpu_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.contains("flex") || name.contains("ndarray")
}

/// [`Landscape::energies`] one model at a time: the reference the stacked passes are tested
/// and benchmarked against.
pub fn pointwise_energies<B: AutodiffBackend, L: Landscape<B> + ?Sized>(
    landscape: &L,
    template: &EvalModel<B, L>,
    points: Tensor<B::InnerBackend, 2>,
) -> Vec<f64> {
    let [k, n] = points.dims();
    (0..k)
        .map(|j| {
            let row = points.clone().narrow(0, j, 1).reshape([n]);
            landscape.energy(&unflatten(template.clone(), row))
        })
        .collect()
}
