//! Language models described layer by layer (`[task.net]` of a `ptb` task): an `embedding`,
//! one or more `lstm` layers, and a `linear` layer giving the vocabulary's logits, as a
//! PyTorch model of `nn.Embedding`, `nn.LSTM` and `nn.Linear` is built. The paper's PTB net is
//! the preset of such a description (`LstmLmConfig::described`), so one code path builds every
//! language model, and the LSTM kernels apply to all of them.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig, LstmState};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::described::{LayerSpec, NetDescription, check_draws, check_size, pytorch_uniform};
use super::layers::{linear, lstm};
use crate::init::{Init, reinit};

/// PyTorch's default draw of an embedding table.
const PYTORCH_EMBEDDING: Init = Init::Normal { std: 1.0 };

/// What is wrong with `net` as a language model, if anything; `vocab`, when known, is the
/// number of logits its last layer must give. Errors name the layer (`layers[2] (relu): ...`).
pub fn check_language_model(net: &NetDescription, vocab: Option<usize>) -> Result<(), String> {
    let layers = &net.layers;
    check_draws(net.weights, net.biases)?;
    let structure = "a language model is an embedding, one or more lstm layers and a linear \
                     layer giving the vocabulary's logits";
    match (layers.first(), layers.last()) {
        (Some(LayerSpec::Embedding { .. }), Some(LayerSpec::Linear { .. })) => {}
        _ => return Err(format!("layers: {structure}")),
    }
    let last = layers.len() - 1;
    if last < 2 {
        return Err(format!("layers: {structure}; this net has no lstm layer"));
    }
    for (i, layer) in layers.iter().enumerate() {
        let at = |e: String| format!("layers[{i}] ({}): {e}", layer.name());
        match *layer {
            LayerSpec::Embedding { features, weights } => {
                if i != 0 {
                    return Err(at(format!("{structure}; an embedding comes first only")));
                }
                check_size("features", features).map_err(at)?;
                check_draws(weights, None).map_err(at)?;
            }
            LayerSpec::Lstm {
                hidden,
                weights,
                biases,
                ..
            } => {
                check_size("hidden", hidden).map_err(at)?;
                check_draws(weights, biases).map_err(at)?;
            }
            LayerSpec::Linear {
                features,
                weights,
                biases,
                weight_decay,
                ..
            } => {
                if i != last {
                    return Err(at(format!("{structure}; a linear layer comes last only")));
                }
                if weight_decay != 0.0 {
                    return Err(at("weight_decay is not taken by language models: the ptb \
                                   task's training loss has no penalty"
                        .into()));
                }
                check_size("features", features).map_err(at)?;
                check_draws(weights, biases).map_err(at)?;
                if let Some(vocab) = vocab.filter(|&v| v != features) {
                    return Err(at(format!(
                        "gives {features} features, but the training text's vocabulary has \
                         {vocab} words: the last layer must give {vocab}"
                    )));
                }
            }
            _ => {
                let reason = layer.unsupported().map_or_else(
                    || format!("{structure}; a {} layer is not taken by one", layer.name()),
                    String::from,
                );
                return Err(at(reason));
            }
        }
    }
    Ok(())
}

/// A described language model and its vocabulary: what a checkpoint of it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribedLmConfig {
    /// Words in the vocabulary (set from the training text when the task is built).
    pub vocab: usize,
    pub net: NetDescription,
}

impl DescribedLmConfig {
    /// `net` over a vocabulary of `vocab` words, once it checks out as a language model.
    pub fn new(net: NetDescription, vocab: usize) -> Result<Self, String> {
        check_size("the vocabulary", vocab)?;
        check_language_model(&net, Some(vocab))?;
        Ok(Self { vocab, net })
    }

    /// The model, its parameters drawn from `seed` in the module's order (the embedding, each
    /// LSTM layer's input, forget, output and cell gates, each gate's input then hidden
    /// transform, weight then bias; the output layer).
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> LstmLm<B> {
        let (net_weights, net_biases) = (self.net.weights, self.net.biases);
        let mut draws = Vec::new();
        let mut embedding = None;
        let mut lstm = Vec::new();
        let mut output = None;
        // The features each layer takes.
        let mut width = 0;
        for layer in &self.net.layers {
            match *layer {
                LayerSpec::Embedding { features, weights } => {
                    draws.push(weights.or(net_weights).unwrap_or(PYTORCH_EMBEDDING));
                    embedding = Some(EmbeddingConfig::new(self.vocab, features).init(device));
                    width = features;
                }
                LayerSpec::Lstm {
                    hidden,
                    bias,
                    weights,
                    biases,
                } => {
                    let weight = weights.or(net_weights).unwrap_or(pytorch_uniform(hidden));
                    let bias_draw = biases.or(net_biases).unwrap_or(pytorch_uniform(hidden));
                    // Four gates, each an input and a hidden transform.
                    for _ in 0..8 {
                        draws.push(weight);
                        if bias {
                            draws.push(bias_draw);
                        }
                    }
                    lstm.push(LstmConfig::new(width, hidden, bias).init(device));
                    width = hidden;
                }
                LayerSpec::Linear {
                    features,
                    bias,
                    weights,
                    biases,
                    ..
                } => {
                    draws.push(weights.or(net_weights).unwrap_or(pytorch_uniform(width)));
                    if bias {
                        draws.push(biases.or(net_biases).unwrap_or(pytorch_uniform(width)));
                    }
                    output = Some(
                        LinearConfig::new(width, features)
                            .with_bias(bias)
                            .init(device),
                    );
                }
                _ => unreachable!("validated: a language model's layers"),
            }
        }
        let net = LstmLm {
            embedding: embedding.expect("validated: an embedding first"),
            lstm,
            output: output.expect("validated: a linear layer last"),
        };
        reinit(net, seed, |index, _| draws[index])
    }
}

/// Hidden and cell state of every layer, carried between truncated-BPTT windows.
pub type LmState<B> = Vec<LstmState<B, 2>>;

/// A language model: token ids, their embeddings, LSTM layers, logits over the vocabulary.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Compute, device};
    use crate::flat::num_params;

    fn lm(layers: &str) -> NetDescription {
        toml::from_str(&format!("layers = [{layers}]")).unwrap()
    }

    const GOOD: &str = r#"{ kind = "embedding", features = 6 }, { kind = "lstm", hidden = 5 },
        { kind = "lstm", hidden = 3, bias = false }, { kind = "linear", features = 11 }"#;

    #[test]
    fn a_described_language_model_has_pytorchs_layers_and_draws() {
        let config = DescribedLmConfig::new(lm(GOOD), 11).unwrap();
        let net: LstmLm<Compute> = config.init(3, &device());
        let hidden: Vec<usize> = net.lstm.iter().map(|layer| layer.d_hidden).collect();
        assert_eq!(hidden, vec![5, 3]);
        // The embedding table; an LSTM with biases on both transforms, one without; the output.
        let lstm_5 = 4 * (6 * 5 + 5 + 5 * 5 + 5);
        let lstm_3 = 4 * (5 * 3 + 3 * 3);
        assert_eq!(num_params(&net), 11 * 6 + lstm_5 + lstm_3 + 3 * 11 + 11);
        // PyTorch's default draws: the LSTMs' uniform in ±1/sqrt(hidden), the table N(0, 1).
        let values = |t: Tensor<Compute, 2>| t.into_data().to_vec::<f32>().unwrap();
        let gate = values(net.lstm[1].forget_gate.hidden_transform.weight.val());
        let bound = 1.0 / 3f32.sqrt();
        assert!(gate.iter().all(|v| v.abs() <= bound), "{gate:?}");
        let table = values(net.embedding.weight.val());
        assert!(
            table.iter().any(|v| v.abs() > 1.0),
            "N(0, 1) exceeds 1 in 66 draws"
        );
        // The same seed, the same net.
        let again: LstmLm<Compute> = config.init(3, &device());
        assert_eq!(table, values(again.embedding.weight.val()));
    }

    #[test]
    fn language_models_are_checked_layer_by_layer() {
        let cases = [
            (
                r#"{ kind = "lstm", hidden = 5 }, { kind = "linear", features = 11 }"#,
                "layers: a language model is an embedding, one or more lstm layers",
            ),
            (
                r#"{ kind = "embedding", features = 6 }, { kind = "linear", features = 11 }"#,
                "this net has no lstm layer",
            ),
            (
                r#"{ kind = "embedding", features = 6 }, { kind = "lstm", hidden = 5 },
                   { kind = "dropout", p = 0.5 }, { kind = "linear", features = 11 }"#,
                "layers[2] (dropout): a language model is an embedding",
            ),
            (
                r#"{ kind = "embedding", features = 6 }, { kind = "lstm", hidden = 0 },
                   { kind = "linear", features = 11 }"#,
                "layers[1] (lstm): hidden must be in 1..=",
            ),
            (
                r#"{ kind = "embedding", features = 6 }, { kind = "lstm", hidden = 5 },
                   { kind = "linear", features = 10 }"#,
                "layers[2] (linear): gives 10 features, but the training text's vocabulary \
                 has 11 words",
            ),
            (
                r#"{ kind = "embedding", features = 6 }, { kind = "lstm", hidden = 5 },
                   { kind = "linear", features = 11, weight_decay = 0.1 }"#,
                "layers[2] (linear): weight_decay is not taken by language models",
            ),
            (
                r#"{ kind = "embedding", features = 6, weights = { normal = { std = -1 } } },
                   { kind = "lstm", hidden = 5 }, { kind = "linear", features = 11 }"#,
                "layers[0] (embedding): weights: std must be",
            ),
            (
                r#"{ kind = "embedding", features = 6 }, { kind = "batch_norm" },
                   { kind = "lstm", hidden = 5 }, { kind = "linear", features = 11 }"#,
                "layers[1] (batch_norm): a language model is an embedding",
            ),
        ];
        for (layers, expected) in cases {
            let err = DescribedLmConfig::new(lm(layers), 11).unwrap_err();
            assert!(err.contains(expected), "{layers}: {err}");
        }
        // Before the vocabulary is known, everything else is checked.
        let unknown = lm(
            r#"{ kind = "embedding", features = 6 }, { kind = "lstm", hidden = 5 },
                            { kind = "linear", features = 10 }"#,
        );
        assert_eq!(check_language_model(&unknown, None), Ok(()));
        // An image net refuses the language model's layers, with the reason.
        let image = lm(GOOD);
        let err = image.shapes([1, 4, 4], 11).unwrap_err();
        assert!(err.contains("make language models"), "{err}");
    }
}
