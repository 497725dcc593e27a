//! The PTB language-modelling landscape: an LSTM trained with truncated backpropagation
//! through time on parallel token streams.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::nn::LstmState;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_data::{Streams, batchify};

use super::{cross_entropy, device_sum, unsupported};
use crate::landscape::{Architecture, Energy, EvalModel, Landscape};
use crate::nets::{DescribedLmConfig, LmState, LstmLm};

/// Input tokens [batch, steps] and the next tokens as targets.
type Window<B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>);

pub struct LanguageTask<B: AutodiffBackend> {
    /// The paper's net (`Architecture::LstmLm`) or a described one.
    architecture: Architecture,
    /// What builds the net: its description.
    net: DescribedLmConfig,
    train: Arc<Streams>,
    /// Unrolled steps per window.
    steps: usize,
    energy: Energy,
    /// The energy's text as consecutive windows (inputs, targets) on the device.
    eval: Vec<Window<B::InnerBackend>>,
    device: B::Device,
}

impl<B: AutodiffBackend> LanguageTask<B> {
    /// `net` is a language model (the paper's or a described one); `train` and `heldout` are
    /// token ids of its vocabulary.
    pub fn new(
        net: Architecture,
        train: &[u32],
        heldout: &[u32],
        batch_size: usize,
        steps: usize,
        energy: Energy,
        device: &B::Device,
    ) -> Result<Self, String> {
        let described = net.try_language_model()?;
        let text = match energy {
            Energy::TestLoss | Energy::TestPerplexity => heldout,
            Energy::TrainLoss | Energy::TrainPerplexity => train,
            other => {
                return Err(unsupported(
                    "language model",
                    other,
                    &[
                        Energy::TrainLoss,
                        Energy::TestLoss,
                        Energy::TrainPerplexity,
                        Energy::TestPerplexity,
                    ],
                ));
            }
        };
        if steps == 0 {
            return Err("steps (the unroll length) must be at least 1".into());
        }
        let streams = |ids: &[u32], what: &str| -> Result<Streams, String> {
            let s = batchify(ids, batch_size).map_err(|e| format!("{what} text: {e}"))?;
            if s.num_windows(steps) == 0 {
                return Err(format!(
                    "{what} text of {} tokens is too short for {batch_size} streams of {steps} steps",
                    ids.len()
                ));
            }
            Ok(s)
        };
        let eval_streams = streams(text, "evaluation")?;
        let eval = (0..eval_streams.num_windows(steps))
            .map(|k| window_tensors(&eval_streams, k, steps, device))
            .collect();
        Ok(Self {
            train: Arc::new(streams(train, "training")?),
            architecture: net,
            net: described,
            steps,
            energy,
            eval,
            device: device.clone(),
        })
    }
}

fn window_tensors<B: Backend>(
    streams: &Streams,
    k: usize,
    steps: usize,
    device: &B::Device,
) -> Window<B> {
    let (input, target) = streams.window(k, steps);
    let shape = [streams.batch, steps];
    let ints = |v: Vec<u32>| {
        let v: Vec<i64> = v.into_iter().map(i64::from).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    };
    (ints(input), ints(target))
}

#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    pub input: Tensor<B, 2, Int>,
    pub target: Tensor<B, 2, Int>,
}

/// Window indices in text order: the carried LSTM state needs consecutive windows.
struct Windows(usize);

impl Dataset<usize> for Windows {
    fn get(&self, i: usize) -> Option<usize> {
        (i < self.0).then_some(i)
    }
    fn len(&self) -> usize {
        self.0
    }
}

struct WindowBatcher {
    streams: Arc<Streams>,
    steps: usize,
}

impl<B: Backend> Batcher<B, usize, TokenBatch<B>> for WindowBatcher {
    fn batch(&self, items: Vec<usize>, device: &B::Device) -> TokenBatch<B> {
        let (input, target) = window_tensors(&self.streams, items[0], self.steps, device);
        TokenBatch { input, target }
    }
}

/// Mean cross-entropy of a window and the state to carry into the next one.
fn window_loss<B: Backend>(
    model: &LstmLm<B>,
    input: Tensor<B, 2, Int>,
    target: Tensor<B, 2, Int>,
    state: Option<LmState<B>>,
) -> (Tensor<B, 1>, LmState<B>) {
    let (logits, state) = model.forward(input, state); // [b, s, vocab]
    let [b, s, v] = logits.dims();
    let loss = cross_entropy(logits.reshape([b * s, v]), target.reshape([b * s]));
    (loss, state)
}

impl<B: AutodiffBackend> Landscape<B> for LanguageTask<B> {
    type Model = LstmLm<B>;
    type Batch = TokenBatch<B>;
    type Carry = Option<LmState<B>>;

    fn architecture(&self) -> Architecture {
        self.architecture.clone()
    }

    fn energy_kind(&self) -> Energy {
        self.energy
    }

    fn device(&self) -> &B::Device {
        &self.device
    }

    fn init(&self, seed: u64) -> LstmLm<B> {
        self.net.init(seed, &self.device)
    }

    fn loader(&self, _seed: u64) -> Arc<dyn DataLoader<B, TokenBatch<B>>> {
        let batcher = WindowBatcher {
            streams: self.train.clone(),
            steps: self.steps,
        };
        DataLoaderBuilder::new(batcher)
            .batch_size(1)
            .set_device(self.device.clone())
            .build(Windows(self.train.num_windows(self.steps)))
    }

    /// Every epoch starts from a zero state, as Zaremba et al.
    fn carry(&self, _seed: u64, _epoch: usize) -> Option<LmState<B>> {
        None
    }

    fn loss(
        &self,
        model: &LstmLm<B>,
        batch: TokenBatch<B>,
        state: &mut Option<LmState<B>>,
    ) -> Tensor<B, 1> {
        let (loss, next) = window_loss(model, batch.input, batch.target, state.take());
        // Truncated BPTT: the state flows on, its gradient stops at the window edge.
        *state = Some(
            next.into_iter()
                .map(|s| LstmState::new(s.cell.detach(), s.hidden.detach()))
                .collect(),
        );
        loss
    }

    fn energy(&self, model: &EvalModel<B, Self>) -> f64 {
        let mut state = None;
        let per_window = self.eval.iter().map(|(input, target)| {
            let (loss, next) = window_loss(model, input.clone(), target.clone(), state.take());
            state = Some(next);
            loss
        });
        let mean_nll = device_sum(per_window) / self.eval.len() as f64;
        match self.energy {
            Energy::TestPerplexity | Energy::TrainPerplexity => mean_nll.exp(),
            _ => mean_nll,
        }
    }

    fn batch_examples(batch: &TokenBatch<B>) -> usize {
        batch.target.dims().iter().product()
    }

    fn eval_examples(&self) -> usize {
        self.eval
            .iter()
            .map(|(_, target)| target.dims().iter().product::<usize>())
            .sum()
    }
}
