//! The paper's MLPs, convnets and PTB net as they were written before they were built from
//! their descriptions: each field, draw and forward pass spelled out from the authors' scripts,
//! the TensorFlow tutorials and Zaremba et al.'s code. The tests hold the described presets to
//! them bit for bit (initialization, outputs, gradients, and the MLPs' stacked pass).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{EmbeddingConfig, Linear, LinearConfig, LstmConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand_chacha::ChaCha8Rng;

use super::cifar_cnn::{CIFAR_CROP, CifarConvConfig};
use super::described_lm::LstmLm;
use super::dropout::dropout;
use super::layers::{conv2d_relu, conv2d_relu_max_pool2d, linear, max_pool2d, sigmoid};
use super::lrn::Lrn;
use super::lstm_lm::LstmLmConfig;
use super::mlp::{Activation, MlpConfig};
use super::mnist_cnn::MnistConvConfig;
use crate::flat::Stacked;
use crate::init::{Init, reinit};

/// A fully connected net: `layers` linear layers, the hidden activation after each but the
/// last, the output activation after the last.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub layers: Vec<Linear<B>>,
    #[module(skip)]
    pub hidden: Activation,
    #[module(skip)]
    pub output: Activation,
}

fn activate<B: Backend, const D: usize>(activation: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match activation {
        Activation::Identity => x,
        Activation::Relu => relu(x),
        Activation::Sigmoid => sigmoid(x),
    }
}

/// Weights and biases as the config says, the weights divided by sqrt(fan-in) when
/// `fan_in_scaled`.
pub fn mlp<B: Backend>(config: &MlpConfig, seed: u64, device: &B::Device) -> Mlp<B> {
    let layers = config
        .widths
        .windows(2)
        .map(|w| {
            LinearConfig::new(w[0], w[1])
                .with_bias(config.bias)
                .init(device)
        })
        .collect();
    let net = Mlp {
        layers,
        hidden: config.hidden,
        output: config.output,
    };
    reinit(net, seed, |_, dims| match dims {
        [_] => config.bias_init,
        // Burn's Linear weight is [d_in, d_out].
        [fan_in, _] if config.fan_in_scaled => {
            config.weight_init.scaled(1.0 / (*fan_in as f32).sqrt())
        }
        _ => config.weight_init,
    })
}

impl<B: Backend> Mlp<B> {
    /// [batch, d_in] -> [batch, d_out]
    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let activation = if i == last { self.output } else { self.hidden };
            x = activate(activation, linear(layer, x));
        }
        x
    }
}

impl<B: Backend> Stacked<Mlp<B>> {
    /// All `k` models on the same inputs: [batch, d_in] -> [k, batch, d_out]
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        let net = &self.module;
        let last = net.layers.len() - 1;
        let mut x = x.unsqueeze::<3>();
        for (i, layer) in net.layers.iter().enumerate() {
            let activation = if i == last { net.output } else { net.hidden };
            x = activate(activation, super::stacked::linear(layer, x, self.k));
        }
        x
    }
}

fn same_conv<B: Backend>(c_in: usize, c_out: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([c_in, c_out], [5, 5])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

/// Zaremba et al.'s LSTM language model: an embedding, `layers` LSTM layers, a linear layer
/// to the vocabulary, every parameter uniform in ±init_scale.
pub fn ptb<B: Backend>(config: &LstmLmConfig, seed: u64, device: &B::Device) -> LstmLm<B> {
    let lstm = (0..config.layers)
        .map(|i| {
            let d_in = if i == 0 { config.embed } else { config.hidden };
            LstmConfig::new(d_in, config.hidden, true).init(device)
        })
        .collect();
    let net = LstmLm {
        embedding: EmbeddingConfig::new(config.vocab, config.embed).init(device),
        lstm,
        output: LinearConfig::new(config.hidden, config.vocab).init(device),
    };
    let s = config.init_scale;
    reinit(net, seed, |_, _| Init::Uniform { low: -s, high: s })
}

#[derive(Module, Debug)]
pub struct MnistConv<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub pool: MaxPool2d,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    #[module(skip)]
    pub dropout: f64,
}

/// Weights truncated normal with std 0.1 and biases 0.1, as the authors' code.
pub fn mnist<B: Backend>(config: &MnistConvConfig, seed: u64, device: &B::Device) -> MnistConv<B> {
    let net = MnistConv {
        conv1: same_conv(1, config.conv1, device),
        conv2: same_conv(config.conv1, config.conv2, device),
        pool: MaxPool2dConfig::new([2, 2]).init(),
        fc1: LinearConfig::new(7 * 7 * config.conv2, config.hidden).init(device),
        fc2: LinearConfig::new(config.hidden, 10).init(device),
        dropout: config.dropout,
    };
    reinit(net, seed, |_, dims| {
        if dims.len() == 1 {
            Init::Constant { value: 0.1 }
        } else {
            Init::TruncatedNormal { std: 0.1 }
        }
    })
}

impl<B: Backend> MnistConv<B> {
    /// Logits for images [batch, 1, 28, 28]; dropout only when an RNG is given (training).
    pub fn forward(&self, x: Tensor<B, 4>, rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        let x = conv2d_relu_max_pool2d(&self.conv1, &self.pool, x); // [b, c1, 14, 14]
        let x = conv2d_relu_max_pool2d(&self.conv2, &self.pool, x); // [b, c2, 7, 7]
        let x = relu(linear(&self.fc1, x.flatten(1, 3))); // [b, hidden]
        let x = match rng {
            Some(rng) => dropout(x, self.dropout, rng),
            None => x,
        };
        linear(&self.fc2, x) // [b, 10]
    }
}

#[derive(Module, Debug)]
pub struct CifarConv<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub pool: MaxPool2d,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub fc3: Linear<B>,
    #[module(skip)]
    pub lrn: Lrn,
    #[module(skip)]
    pub weight_decay: f64,
}

/// The tutorial's initialization, parameter by parameter (weights, then bias, per layer).
pub fn cifar<B: Backend>(config: &CifarConvConfig, seed: u64, device: &B::Device) -> CifarConv<B> {
    // TF's SAME pooling of 24 (then 12) with window 3, stride 2 pads one row/column at the
    // bottom/right only.
    let pool = MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
        .init();
    let side = CIFAR_CROP / 4;
    let net = CifarConv {
        conv1: same_conv(3, config.conv1, device),
        conv2: same_conv(config.conv1, config.conv2, device),
        pool,
        fc1: LinearConfig::new(side * side * config.conv2, config.fc1).init(device),
        fc2: LinearConfig::new(config.fc1, config.fc2).init(device),
        fc3: LinearConfig::new(config.fc2, 10).init(device),
        lrn: config.lrn,
        weight_decay: config.weight_decay,
    };
    let tn = |std| Init::TruncatedNormal { std };
    let c = |value| Init::Constant { value };
    let table = [
        tn(5e-2),
        c(0.0),
        tn(5e-2),
        c(0.1),
        tn(0.04),
        c(0.1),
        tn(0.04),
        c(0.1),
        tn(1.0 / 192.0),
        c(0.0),
    ];
    reinit(net, seed, |i, _| table[i])
}

impl<B: Backend> CifarConv<B> {
    /// Logits for crops [batch, 3, 24, 24].
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self
            .lrn
            .forward(max_pool2d(&self.pool, conv2d_relu(&self.conv1, x))); // [b, 64, 12, 12]
        let x = max_pool2d(&self.pool, self.lrn.forward(conv2d_relu(&self.conv2, x))); // [b, 64, 6, 6]
        let x = relu(linear(&self.fc1, x.flatten(1, 3))); // [b, 384]
        let x = relu(linear(&self.fc2, x)); // [b, 192]
        linear(&self.fc3, x) // [b, 10]
    }

    /// `weight_decay * l2_loss` of the hidden fc weights, added to the training loss.
    pub fn weight_penalty(&self) -> Tensor<B, 1> {
        let l2 = |w: Tensor<B, 2>| w.powi_scalar(2).sum().div_scalar(2.0);
        (l2(self.fc1.weight.val()) + l2(self.fc2.weight.val())).mul_scalar(self.weight_decay)
    }
}

mod tests {
    use burn::module::AutodiffModule;
    use burn::tensor::backend::AutodiffBackend;
    use rand::SeedableRng;

    use super::*;
    use crate::backend::{Compute, Train, device};
    use crate::flat::{flatten, unflatten_stacked};
    use crate::nets::Described;

    fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    fn uniform<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Compute, D> {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_data(TensorData::new(values, shape), &device())
    }

    fn tracked<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Train, D> {
        Tensor::from_inner(uniform(shape, seed))
    }

    /// Every parameter's gradient, in the module's order, of `loss`.
    fn gradients<M: AutodiffModule<Train>>(model: &M, loss: Tensor<Train, 1>) -> Vec<Vec<f32>> {
        struct Collect<'a> {
            grads: &'a <Train as AutodiffBackend>::Gradients,
            out: Vec<Vec<f32>>,
        }
        impl burn::module::ModuleVisitor<Train> for Collect<'_> {
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<Tensor<Train, D>>,
            ) {
                self.out.push(host(
                    param
                        .grad(self.grads)
                        .expect("every parameter has a gradient"),
                ));
            }
        }
        let grads = loss.backward();
        let mut collect = Collect {
            grads: &grads,
            out: Vec::new(),
        };
        model.visit(&mut collect);
        collect.out
    }

    fn small_mnist() -> MnistConvConfig {
        MnistConvConfig {
            conv1: 4,
            conv2: 8,
            hidden: 16,
            dropout: 0.5,
        }
    }

    fn small_cifar() -> CifarConvConfig {
        CifarConvConfig {
            conv1: 4,
            conv2: 4,
            fc1: 16,
            fc2: 8,
            ..CifarConvConfig::default()
        }
    }

    #[test]
    fn the_mnist_preset_is_the_tutorials_net_bit_for_bit() {
        let dev = device();
        let written = mnist::<Train>(&small_mnist(), 7, &dev);
        let described: Described<Train> = small_mnist().init(7, &dev);
        assert_eq!(
            host(flatten(&written)),
            host(flatten(&described)),
            "same draws"
        );
        let x = uniform([3, 1, 28, 28], 11);
        assert_eq!(
            host(written.valid().forward(x.clone(), None)),
            host(described.valid().forward(x, None))
        );
        // Training: the same dropout masks, the same gradients.
        let x = tracked([3, 1, 28, 28], 12);
        let weights = tracked([3, 10], 13);
        let mut rng_a = ChaCha8Rng::seed_from_u64(5);
        let mut rng_b = ChaCha8Rng::seed_from_u64(5);
        let loss_a = (written.forward(x.clone(), Some(&mut rng_a)) * weights.clone()).sum();
        let loss_b = (described.forward(x, Some(&mut rng_b)) * weights).sum();
        assert_eq!(gradients(&written, loss_a), gradients(&described, loss_b));
    }

    /// The paper's MLPs (polynomial, deep linear, ReLU width, Appendix E's): the same draws,
    /// outputs, gradients and stacked outputs as the net written out.
    #[test]
    fn the_mlp_presets_are_the_nets_written_out_bit_for_bit() {
        let linear = MlpConfig {
            widths: vec![3, 5, 4, 2],
            hidden: Activation::Identity,
            output: Activation::Identity,
            bias: false,
            weight_init: Init::Normal { std: 0.6 },
            bias_init: Init::Constant { value: 0.0 },
            fan_in_scaled: false,
        };
        let relu_width = MlpConfig {
            widths: vec![3, 7, 2],
            hidden: Activation::Relu,
            bias: true,
            fan_in_scaled: true,
            ..linear.clone()
        };
        let dev = device();
        for config in [
            MlpConfig::quadratic(),
            MlpConfig::quadratic_biased(),
            MlpConfig::cubic(),
            linear,
            relu_width,
        ] {
            let written = mlp::<Train>(&config, 7, &dev);
            let described: Described<Train> = config.init(7, &dev);
            let d_in = config.widths[0];
            let d_out = *config.widths.last().unwrap();
            let what = format!("{config:?}");
            assert_eq!(
                host(flatten(&written)),
                host(flatten(&described)),
                "same draws: {what}"
            );
            let x = uniform([6, d_in], 11);
            assert_eq!(
                host(written.valid().forward(x.clone())),
                host(described.valid().forward_flat(x.clone(), None)),
                "{what}"
            );
            let points = Tensor::cat(
                (0..3)
                    .map(|seed| flatten(&config.init::<Compute>(seed, &dev)).unsqueeze())
                    .collect(),
                0,
            );
            let stacked_written = unflatten_stacked(written.valid(), points.clone());
            let stacked_described = unflatten_stacked(described.valid(), points);
            assert_eq!(
                host(stacked_written.forward(x.clone())),
                host(stacked_described.forward_flat(x)),
                "stacked: {what}"
            );
            let x = tracked([6, d_in], 12);
            let weights = tracked([6, d_out], 13);
            let loss_a = (written.forward(x.clone()) * weights.clone()).sum();
            let loss_b = (described.forward_flat(x, None) * weights).sum();
            assert_eq!(
                gradients(&written, loss_a),
                gradients(&described, loss_b),
                "{what}"
            );
        }
    }

    #[test]
    fn the_ptb_preset_is_zarembas_net_bit_for_bit() {
        // Embedding and hidden sizes differ, so that every layer's input width is checked.
        let config = LstmLmConfig {
            vocab: 23,
            embed: 6,
            hidden: 5,
            layers: 3,
            init_scale: 0.1,
        };
        let dev = device();
        let written = ptb::<Train>(&config, 7, &dev);
        let described: LstmLm<Train> = config.init(7, &dev);
        assert_eq!(
            host(flatten(&written)),
            host(flatten(&described)),
            "same draws"
        );
        let ids: Vec<i64> = (0..12).map(|i| (i * 5 % 23) as i64).collect();
        let tokens = Tensor::<Train, 2, Int>::from_data(TensorData::new(ids, [3, 4]), &dev);
        let (a, _) = written.forward(tokens.clone(), None);
        let (b, _) = described.forward(tokens, None);
        assert_eq!(host(a), host(b));
    }

    #[test]
    fn the_cifar10_preset_is_the_tutorials_net_bit_for_bit() {
        let dev = device();
        let written = cifar::<Train>(&small_cifar(), 7, &dev);
        let described: Described<Train> = small_cifar().init(7, &dev);
        assert_eq!(
            host(flatten(&written)),
            host(flatten(&described)),
            "same draws"
        );
        let x = uniform([3, 3, 24, 24], 11);
        assert_eq!(
            host(written.valid().forward(x.clone())),
            host(described.valid().forward(x, None))
        );
        // Training with the weight penalty: the same gradients.
        let x = tracked([3, 3, 24, 24], 12);
        let weights = tracked([3, 10], 13);
        let penalty = described.weight_penalty().expect("two decayed layers");
        assert_eq!(host(written.weight_penalty()), host(penalty.clone()));
        let loss_a =
            (written.forward(x.clone()) * weights.clone()).sum() + written.weight_penalty();
        let loss_b = (described.forward(x, None) * weights).sum() + penalty;
        assert_eq!(gradients(&written, loss_a), gradients(&described, loss_b));
    }
}
