//! The concrete landscapes: regression with MLPs, image classification with the convnets,
//! language modelling with the LSTM.

mod images;
mod language;
mod regression;

pub use images::{EVAL_BATCH, ImageNet, ImageTask, Pipeline};
pub use language::LanguageTask;
pub use regression::{RegressionLoss, RegressionTask, TrainSample, regression_net};

use burn::prelude::*;

use crate::landscape::Energy;

/// The error a task gives for an energy it cannot compute.
pub fn unsupported(task: &str, energy: Energy, supported: &[Energy]) -> String {
    let names: Vec<_> = supported.iter().map(|e| e.name()).collect();
    format!(
        "energy {energy} is not defined for the {task} task (choose one of: {})",
        names.join(", ")
    )
}

/// Sums per-batch scalars on the device and reads the total back once.
fn device_sum<B: Backend>(parts: impl Iterator<Item = Tensor<B, 1>>) -> f64 {
    parts
        .reduce(|a, b| a + b)
        .map(|t| t.into_scalar().elem::<f64>())
        .unwrap_or(0.0)
}

/// A small tensor's values, read back to the host.
fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Mean cross-entropy of logits [n, classes] against class ids [n].
fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let (logits, labels) = match crate::kernels::try_cross_entropy(logits, labels) {
        Ok(loss) => return loss,
        Err(inputs) => inputs,
    };
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    log_p.gather(1, labels.unsqueeze_dim(1)).mean().neg()
}
