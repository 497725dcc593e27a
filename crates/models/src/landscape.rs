//! "A network plus its data is an energy": the one trait every task implements, and what the
//! training loop and every path method are written against.

use std::fmt;
use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::nets::{CifarConvConfig, LstmLmConfig, MlpConfig, MnistConvConfig};

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
}

/// The inner (non-autodiff) module of a landscape's model.
pub type EvalModel<B, L> = <<L as Landscape<B>>::Model as AutodiffModule<B>>::InnerModule;

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

    /// Examples in a training batch (tokens for a language model), for throughput reports.
    fn batch_examples(batch: &Self::Batch) -> usize;

    /// Examples (tokens) one energy evaluation reads.
    fn eval_examples(&self) -> usize;
}
