//! Regression landscapes: an MLP (or a net described layer by layer with flat inputs) fitted to
//! real-valued targets (the polynomial tasks, deep linear nets, ReLU width studies, Appendix
//! E's three-point cycle).

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_data::Regression;
use serde::{Deserialize, Serialize};

use super::{host_values, unsupported};
use crate::flat::unflatten_stacked;
use crate::landscape::{
    Architecture, CurvatureLoss, DataSplit, Energy, EvalModel, Landscape, StackedPass, cpu_backend,
};
use crate::nets::described::{Activations, NormMode, Shape};
use crate::nets::{Described, DescribedConfig, LayerSpec};
use crate::pattern::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    /// Mean absolute error (the paper's polynomial tasks).
    Mae,
    /// Mean squared error.
    Mse,
}

/// Where a model's training sample comes from.
#[derive(Clone)]
pub enum TrainSample {
    /// Every model trains on the same data.
    Fixed(Arc<Regression>),
    /// Each model draws its own sample from its training seed (the paper's polynomial tasks
    /// train every model on 10k fresh points).
    Fresh(Arc<dyn Fn(u64) -> Regression + Send + Sync>),
}

impl TrainSample {
    fn draw(&self, seed: u64) -> Arc<Regression> {
        match self {
            TrainSample::Fixed(data) => data.clone(),
            TrainSample::Fresh(make) => Arc::new(make(seed)),
        }
    }
}

pub struct RegressionTask<B: AutodiffBackend> {
    /// One of the paper's MLPs, or a net described layer by layer with flat inputs.
    architecture: Architecture,
    /// The net layer by layer, as it is built.
    described: DescribedConfig,
    loss: RegressionLoss,
    energy: Energy,
    sample: TrainSample,
    /// Rows per minibatch; `None` trains on the full sample each step.
    batch_size: Option<usize>,
    /// The data the energy is measured on, on the device.
    eval: (Tensor<B::InnerBackend, 2>, Tensor<B::InnerBackend, 2>),
    device: B::Device,
}

impl<B: AutodiffBackend> RegressionTask<B> {
    /// `reference_seed` picks the training sample a `train_loss` energy is measured on when
    /// samples are fresh per model.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        architecture: Architecture,
        loss: RegressionLoss,
        energy: Energy,
        sample: TrainSample,
        test: &Regression,
        reference_seed: u64,
        batch_size: Option<usize>,
        device: &B::Device,
    ) -> Result<Self, String> {
        let described = regression_net(&architecture)?;
        let Shape::Flat(d_in) = described.input else {
            unreachable!("regression_net: flat inputs")
        };
        let d_out = described.classes;
        let eval_data = match energy {
            Energy::TestLoss => test.clone(),
            Energy::TrainLoss => (*sample.draw(reference_seed)).clone(),
            other => {
                return Err(unsupported(
                    "regression",
                    other,
                    &[Energy::TrainLoss, Energy::TestLoss],
                ));
            }
        };
        if eval_data.d_in != d_in || eval_data.d_out != d_out {
            return Err(format!(
                "the data has {} inputs and {} outputs but the network takes {d_in} and gives \
                 {d_out}",
                eval_data.d_in, eval_data.d_out
            ));
        }
        if batch_size == Some(0) {
            return Err("batch_size must be at least 1".into());
        }
        let eval = rows_to_tensors(&eval_data, 0..eval_data.n, device);
        Ok(Self {
            architecture,
            described,
            loss,
            energy,
            sample,
            batch_size,
            eval,
            device: device.clone(),
        })
    }

    fn objective<BB: Backend>(&self, pred: Tensor<BB, 2>, y: Tensor<BB, 2>) -> Tensor<BB, 1> {
        self.errors(pred, y).mean()
    }

    /// Per-entry losses; `y` broadcasts over leading dimensions of `pred`.
    fn errors<BB: Backend, const D: usize>(
        &self,
        pred: Tensor<BB, D>,
        y: Tensor<BB, D>,
    ) -> Tensor<BB, D> {
        let diff = pred - y;
        match self.loss {
            RegressionLoss::Mae => diff.abs(),
            RegressionLoss::Mse => diff.powi_scalar(2),
        }
    }
}

/// The net of a regression task, layer by layer: one of the paper's MLPs, or a described net
/// whose input is a row of features. Dropout is refused: the task trains without it.
pub fn regression_net(architecture: &Architecture) -> Result<DescribedConfig, String> {
    let described = architecture.try_described()?;
    if let Shape::Image(_) = described.input {
        return Err(format!(
            "a regression net takes rows of features, but this one takes {}s",
            described.input
        ));
    }
    let dropout =
        (described.net.layers.iter()).position(|l| matches!(l, LayerSpec::Dropout { .. }));
    if let Some(i) = dropout {
        return Err(format!(
            "net.layers[{i}] (dropout): a regression task trains without dropout; remove the \
             layer"
        ));
    }
    Ok(described)
}

fn rows_to_tensors<B: Backend>(
    data: &Regression,
    rows: std::ops::Range<usize>,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let n = rows.len();
    let x = data.x[rows.start * data.d_in..rows.end * data.d_in].to_vec();
    let y = data.y[rows.start * data.d_out..rows.end * data.d_out].to_vec();
    (
        Tensor::from_data(TensorData::new(x, [n, data.d_in]), device),
        Tensor::from_data(TensorData::new(y, [n, data.d_out]), device),
    )
}

/// A minibatch of rows.
#[derive(Debug, Clone)]
pub struct RowBatch<B: Backend> {
    pub x: Tensor<B, 2>,
    pub y: Tensor<B, 2>,
}

/// Items are contiguous row ranges of one sample; the loader shuffles their order.
struct RowChunks {
    data: Arc<Regression>,
    chunk: usize,
}

impl Dataset<std::ops::Range<usize>> for RowChunks {
    fn get(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let start = i * self.chunk;
        (start < self.data.n).then(|| start..(start + self.chunk).min(self.data.n))
    }

    fn len(&self) -> usize {
        self.data.n.div_ceil(self.chunk)
    }
}

struct RowBatcher {
    data: Arc<Regression>,
}

impl<B: Backend> Batcher<B, std::ops::Range<usize>, RowBatch<B>> for RowBatcher {
    fn batch(&self, items: Vec<std::ops::Range<usize>>, device: &B::Device) -> RowBatch<B> {
        // The loader hands out one chunk per batch (batch_size 1), so rows stay contiguous.
        let rows = items[0].clone();
        let (x, y) = rows_to_tensors(&self.data, rows, device);
        RowBatch { x, y }
    }
}

impl<B: AutodiffBackend> Landscape<B> for RegressionTask<B> {
    type Model = Described<B>;
    type Batch = RowBatch<B>;
    type Carry = ();

    fn architecture(&self) -> Architecture {
        self.architecture.clone()
    }

    fn energy_kind(&self) -> Energy {
        self.energy
    }

    fn device(&self) -> &B::Device {
        &self.device
    }

    fn init(&self, seed: u64) -> Described<B> {
        self.described.init(seed, &self.device)
    }

    fn loader(&self, seed: u64) -> Arc<dyn DataLoader<B, RowBatch<B>>> {
        let data = self.sample.draw(seed);
        let chunk = self.batch_size.unwrap_or(data.n).min(data.n).max(1);
        let dataset = RowChunks {
            data: data.clone(),
            chunk,
        };
        DataLoaderBuilder::new(RowBatcher { data })
            .batch_size(1)
            .shuffle(seed)
            .set_device(self.device.clone())
            .build(dataset)
    }

    fn carry(&self, _seed: u64, _epoch: usize) {}

    fn loss(&self, model: &Described<B>, batch: RowBatch<B>, _carry: &mut ()) -> Tensor<B, 1> {
        self.objective(model.forward_flat(batch.x, None), batch.y)
    }

    fn curvature_caveat(&self) -> Option<String> {
        (self.loss == RegressionLoss::Mae).then(|| {
            "the task's loss is the mean absolute error, which has no second derivative where \
             a residual is zero (near a fit, many are): differences of gradients across those \
             kinks measure noise, not a Hessian, and Lanczos and Hutchinson disagree on it. \
             Measure a task with a smooth loss (linear_regression's squared error, the image \
             classifiers' cross-entropy)"
                .to_string()
        })
    }

    fn curvature_loss(
        &self,
        split: DataSplit,
        examples: usize,
    ) -> Result<CurvatureLoss<'_, B, Described<B>>, String> {
        let (x, y) = match (split, &self.sample) {
            (DataSplit::Train, TrainSample::Fixed(data)) => {
                rows_to_tensors(data, 0..data.n, &self.device)
            }
            (DataSplit::Train, TrainSample::Fresh(_)) => {
                return Err(
                    "each model of this task draws its own training sample from its \
                            seed (the paper's fresh points): measure the test split"
                        .into(),
                );
            }
            (DataSplit::Test, _) if self.energy == Energy::TestLoss => {
                let (x, y) = self.eval.clone();
                (Tensor::from_inner(x), Tensor::from_inner(y))
            }
            (DataSplit::Test, _) => {
                return Err(format!(
                    "the task holds no test set: its energy is {:?} (use the training split)",
                    self.energy
                ));
            }
        };
        let held = x.dims()[0];
        if examples == 0 || examples > held {
            return Err(format!(
                "asked for {examples} examples of the {split:?} split, which holds {held}"
            ));
        }
        let (x, y) = (x.narrow(0, 0, examples), y.narrow(0, 0, examples));
        Ok(Box::new(
            move |model: &Described<B>, pattern: &mut Pattern<B>| {
                let pred =
                    model.forward_patterned(Activations::Flat(x.clone()), NormMode::Batch, pattern);
                self.objective(pred, y.clone())
            },
        ))
    }

    fn energy(&self, model: &EvalModel<B, Self>) -> f64 {
        let (x, y) = self.eval.clone();
        self.objective(model.forward_flat(x, None), y)
            .into_scalar()
            .elem::<f64>()
    }

    fn energies(
        &self,
        template: &Described<B::InnerBackend>,
        points: Tensor<B::InnerBackend, 2>,
    ) -> Vec<f64> {
        let nets = unflatten_stacked(template.clone(), points);
        let (x, y) = self.eval.clone();
        let errors = self.errors(nets.forward_flat(x), y.unsqueeze::<3>()); // [k, n, d_out]
        host_values(errors.flatten::<2>(1, 2).mean_dim(1))
    }

    /// Stacked pays on the GPU backends and loses on the CPU ones (measured on an H200 and on
    /// flex, `experiments/bench/README.md`).
    fn stacked_pass(&self, device: &Device<B::InnerBackend>) -> StackedPass {
        if cpu_backend::<B::InnerBackend>(device) {
            StackedPass::Slower
        } else {
            StackedPass::Faster
        }
    }

    fn batch_examples(batch: &RowBatch<B>) -> usize {
        batch.x.dims()[0]
    }

    fn eval_examples(&self) -> usize {
        self.eval.0.dims()[0]
    }
}
