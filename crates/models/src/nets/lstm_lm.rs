//! The PTB language model: Zaremba et al.'s "small" config (2 x 200 LSTM, no dropout), the
//! preset of a described language model (`described_lm`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::described::{LayerSpec, NetDescription};
use super::described_lm::{DescribedLmConfig, LstmLm};
use crate::init::Init;

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

    /// The net written out layer by layer: an embedding of `embed` features, `layers` LSTM
    /// layers of `hidden` units, a linear layer to the vocabulary, every parameter drawn from
    /// U(-init_scale, init_scale).
    pub fn description(&self) -> NetDescription {
        let draw = Init::Uniform {
            low: -self.init_scale,
            high: self.init_scale,
        };
        let lstm = LayerSpec::Lstm {
            hidden: self.hidden,
            bias: true,
            weights: None,
            biases: None,
        };
        let embedding = LayerSpec::Embedding {
            features: self.embed,
            weights: None,
        };
        let layers = std::iter::once(embedding)
            .chain(std::iter::repeat_n(lstm, self.layers))
            .chain(std::iter::once(LayerSpec::linear(self.vocab)))
            .collect();
        NetDescription {
            layers,
            weights: Some(draw),
            biases: Some(draw),
        }
    }

    /// The net as the described language model it is built as, once its fields check out.
    pub fn described(&self) -> Result<DescribedLmConfig, String> {
        self.validate()?;
        DescribedLmConfig::new(self.description(), self.vocab)
    }

    /// The net; the config must have passed [`LstmLmConfig::validate`].
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> LstmLm<B> {
        self.described()
            .expect("a validated config")
            .init(seed, device)
    }
}
