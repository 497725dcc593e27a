//! The PTB language model: Zaremba et al.'s "small" config (2 x 200 LSTM, no dropout).

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig, LstmState};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::layers::{linear, lstm};
use crate::init::{Init, reinit};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmLmConfig {
    /// Set from the training text's vocabulary when the task is built.
    pub vocab: usize,
    pub embed: usize,
    pub hidden: usize,
    pub layers: usize,
    /// Every parameter is drawn from U(-init_scale, init_scale).
    pub init_scale: f32,
}

impl LstmLmConfig {
    pub fn small(vocab: usize) -> Self {
        Self {
            vocab,
            embed: 200,
            hidden: 200,
            layers: 2,
            init_scale: 0.1,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if [self.vocab, self.embed, self.hidden, self.layers].contains(&0) {
            return Err("vocab, embed, hidden and layers must be positive".into());
        }
        // U(-s, s) with s <= 0 is an empty range: the initializer would panic.
        if !(self.init_scale > 0.0 && self.init_scale.is_finite()) {
            return Err(format!(
                "init_scale must be a positive number, got {}",
                self.init_scale
            ));
        }
        Ok(())
    }

    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> LstmLm<B> {
        let lstm = (0..self.layers)
            .map(|i| {
                let d_in = if i == 0 { self.embed } else { self.hidden };
                LstmConfig::new(d_in, self.hidden, true).init(device)
            })
            .collect();
        let net = LstmLm {
            embedding: EmbeddingConfig::new(self.vocab, self.embed).init(device),
            lstm,
            output: LinearConfig::new(self.hidden, self.vocab).init(device),
        };
        let s = self.init_scale;
        reinit(net, seed, |_, _| Init::Uniform { low: -s, high: s })
    }
}

/// Hidden and cell state of every layer, carried between truncated-BPTT windows.
pub type LmState<B> = Vec<LstmState<B, 2>>;

#[derive(Module, Debug)]
pub struct LstmLm<B: Backend> {
    pub embedding: Embedding<B>,
    pub lstm: Vec<Lstm<B>>,
    pub output: Linear<B>,
}

impl<B: Backend> LstmLm<B> {
    /// Logits [batch, steps, vocab] for token ids [batch, steps], and the final state.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: Option<LmState<B>>,
    ) -> (Tensor<B, 3>, LmState<B>) {
        let mut x = self.embed(tokens);
        let mut incoming = state.map(|s| s.into_iter());
        let mut outgoing = Vec::with_capacity(self.lstm.len());
        for i in 0..self.lstm.len() {
            let (y, st) = self.recur(i, x, incoming.as_mut().and_then(|s| s.next()));
            x = y;
            outgoing.push(st);
        }
        (self.decode(x), outgoing)
    }

    /// Embeddings [batch, steps, embed] of token ids [batch, steps].
    pub fn embed(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embedding.forward(tokens)
    }

    /// LSTM layer `i` on its input [batch, steps, d]: its outputs [batch, steps, hidden] and
    /// final state.
    pub fn recur(
        &self,
        i: usize,
        x: Tensor<B, 3>,
        state: Option<LstmState<B, 2>>,
    ) -> (Tensor<B, 3>, LstmState<B, 2>) {
        lstm(&self.lstm[i], x, state)
    }

    /// Logits [batch, steps, vocab] of the last layer's outputs.
    pub fn decode(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        linear(&self.output, x)
    }
}
