//! Turns a task config into a concrete landscape on the chosen backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow};
use levelset_data::catalog::Dataset;
use levelset_data::locate::{fetch_hint, resolve_data_dir};
use levelset_data::{
    ChannelStats, DataError, Polynomial, Regression, Split, gaussian_mixture, linear_regression,
    load_cifar10, load_mnist, load_ptb, polynomial, three_point_cycle,
};
use levelset_models::backend::Train;
use levelset_models::init::Init;
use levelset_models::nets::{
    Activation, DescribedConfig, DescribedLmConfig, LstmLmConfig, MNIST_INPUT, MlpConfig,
};
use levelset_models::statistics::BnConfig;
use levelset_models::tasks::{
    ImageNet, ImageTask, LanguageTask, Pipeline, RegressionLoss, RegressionTask, TrainSample,
};
use levelset_models::{Architecture, Energy, Landscape};

use crate::config::{ExperimentConfig, IMAGE_CLASSES, PolynomialKind, TaskConfig, polynomial_net};

/// Reads `dataset` from its folder in the data directory (`data_dir` as resolved by
/// [`TaskConfig::resolve_data_dir`]; unresolved, by the same order without a flag). A missing
/// file is reported with the command that fetches the data set.
fn load_data<T>(
    dataset: Dataset,
    data_dir: &Option<PathBuf>,
    load: impl FnOnce(&Path) -> Result<T, DataError>,
) -> Result<T> {
    let dir = match data_dir {
        Some(dir) => dir.clone(),
        None => resolve_data_dir(None, None).map_err(anyhow::Error::msg)?.0,
    };
    load(&dir.join(dataset.name())).map_err(|e| match e {
        DataError::NotFound { .. } => anyhow!("{e}\n{}", fetch_hint(dataset, &dir)),
        other => other.into(),
    })
}

/// Something to do with a landscape, whatever its concrete type.
pub trait WithLandscape {
    type Output;
    fn run<L: Landscape<Train>>(self, landscape: L) -> Self::Output;
}

/// A regression landscape before it is put on the device.
struct RegressionSpec {
    /// One of the paper's MLPs, or a described net with flat inputs.
    net: Architecture,
    loss: RegressionLoss,
    sample: TrainSample,
    test: Regression,
    /// Picks the sample a `train_loss` energy is measured on when samples are fresh.
    reference_seed: u64,
    batch_size: Option<usize>,
}

/// A net with identity output and zero biases (the theory checks' networks).
fn plain_mlp(widths: Vec<usize>, hidden: Activation, bias: bool, weight_init: Init) -> MlpConfig {
    MlpConfig {
        widths,
        hidden,
        output: Activation::Identity,
        bias,
        weight_init,
        bias_init: Init::Constant { value: 0.0 },
        fan_in_scaled: false,
    }
}

/// The regression tasks' data and networks; `None` for the tasks with files.
fn regression_spec(task: &TaskConfig) -> Result<Option<RegressionSpec>> {
    let fixed = |net, train: Regression, test| RegressionSpec {
        net: Architecture::Mlp(net),
        loss: RegressionLoss::Mse,
        sample: TrainSample::Fixed(Arc::new(train)),
        test,
        reference_seed: 0,
        batch_size: None,
    };
    Ok(Some(match task {
        TaskConfig::Polynomial {
            polynomial: kind,
            biases,
            net: described,
            train_samples,
            test_samples,
            test_seed,
            batch_size,
        } => {
            let (poly, mut net) = match kind {
                PolynomialKind::Quadratic => (Polynomial::Quadratic, MlpConfig::quadratic()),
                PolynomialKind::Cubic => (Polynomial::Cubic, MlpConfig::cubic()),
            };
            net.bias = biases.unwrap_or(net.bias);
            let net = match described {
                Some(described) => Architecture::Described(
                    polynomial_net(described).map_err(|e| anyhow!("config: {e}"))?,
                ),
                None => Architecture::Mlp(net),
            };
            let n = *train_samples;
            RegressionSpec {
                net,
                loss: RegressionLoss::Mae,
                sample: TrainSample::Fresh(Arc::new(move |seed| polynomial(poly, n, seed))),
                test: polynomial(poly, *test_samples, *test_seed),
                reference_seed: *test_seed ^ 1,
                batch_size: *batch_size,
            }
        }
        TaskConfig::LinearRegression {
            widths,
            train_samples,
            test_samples,
            noise,
            task_seed,
        } => {
            let (d_in, d_out) = (widths[0], *widths.last().unwrap());
            // One teacher for train and test: the same task seed, disjoint rows.
            let all = linear_regression(
                d_in,
                d_out,
                train_samples + test_samples,
                *noise,
                *task_seed,
            );
            let (train, test) = split_rows(&all, *train_samples);
            let std = 1.0 / (d_in as f32).sqrt();
            let net = plain_mlp(
                widths.clone(),
                Activation::Identity,
                false,
                Init::Normal { std },
            );
            fixed(net, train, test)
        }
        TaskConfig::ReluWidth {
            input_dim,
            width,
            components,
            train_samples,
            test_samples,
            task_seed,
        } => {
            let mixture = |n, sample_seed| {
                gaussian_mixture(*input_dim, *components, n, *task_seed, sample_seed)
                    .map_err(|e| anyhow!("config [task]: {e}"))
            };
            let train = mixture(*train_samples, task_seed.wrapping_add(1))?;
            let test = mixture(*test_samples, task_seed.wrapping_add(2))?;
            // He scaling per layer: the output layer's weights shrink as 1/sqrt(m), so every
            // width starts with outputs of the same size and only the width itself varies.
            let net = MlpConfig {
                fan_in_scaled: true,
                ..plain_mlp(
                    vec![*input_dim, *width, 1],
                    Activation::Relu,
                    true,
                    Init::Normal { std: 2f32.sqrt() },
                )
            };
            fixed(net, train, test)
        }
        TaskConfig::ThreePointCycle { hidden } => {
            let data = three_point_cycle();
            let init = Init::Uniform {
                low: -1.0,
                high: 1.0,
            };
            let net = plain_mlp(vec![2, *hidden, 2], Activation::Relu, false, init);
            fixed(net, data.clone(), data)
        }
        _ => return Ok(None),
    }))
}

/// An image task's data, waiting for its network.
struct Images {
    pipeline: Pipeline,
    split: Split,
    batch_size: usize,
    energy: Energy,
    bn: BnConfig,
}

impl Images {
    /// Builds the task with `net` and hands it to `job`.
    fn run<N: ImageNet, J: WithLandscape>(self, net: N, job: J) -> Result<J::Output>
    where
        ImageTask<Train, N>: Landscape<Train>,
    {
        let task = ImageTask::<Train, _>::new(
            net,
            self.pipeline,
            self.split.train,
            &self.split.test,
            self.batch_size,
            self.energy,
            &levelset_models::backend::device(),
        )
        .map_err(|e| anyhow!("config [task]: {e}"))?
        .with_statistics(self.bn)
        .map_err(|e| anyhow!("config [bn]: {e}"))?;
        Ok(job.run(task))
    }
}

/// Builds the landscape `config` describes and hands it to `job`.
pub fn with_landscape<J: WithLandscape>(config: &ExperimentConfig, job: J) -> Result<J::Output> {
    let device = levelset_models::backend::device();
    let energy = config.energy;
    let invalid = |e: String| anyhow!("config [task]: {e}");
    if let Some(spec) = regression_spec(&config.task)? {
        let task = RegressionTask::<Train>::new(
            spec.net,
            spec.loss,
            energy,
            spec.sample,
            &spec.test,
            spec.reference_seed,
            spec.batch_size,
            &device,
        )
        .map_err(invalid)?;
        return Ok(job.run(task));
    }
    Ok(match &config.task {
        TaskConfig::Mnist {
            data_dir,
            train_limit,
            test_limit,
            batch_size,
            model,
            net,
            mean,
            std,
        } => {
            let mut split = load_data(Dataset::Mnist, data_dir, load_mnist)?;
            limit(&mut split.train, *train_limit);
            limit(&mut split.test, *test_limit);
            let pipeline = match given_stats(mean, std) {
                Some(stats) => Pipeline::Normalize { stats },
                None => Pipeline::Scale,
            };
            let images = Images {
                pipeline,
                split,
                batch_size: *batch_size,
                energy,
                bn: config.bn.unwrap_or_default(),
            };
            match net {
                Some(net) => {
                    let net = net
                        .description()
                        .and_then(|net| DescribedConfig::new(net, MNIST_INPUT, IMAGE_CLASSES))
                        .map_err(invalid)?;
                    images.run(net, job)?
                }
                None => images.run(model.clone(), job)?,
            }
        }
        TaskConfig::Cifar10 {
            data_dir,
            train_limit,
            test_limit,
            batch_size,
            crop,
            pad,
            model,
            net,
            mean,
            std,
        } => {
            let mut split = load_data(Dataset::Cifar10, data_dir, load_cifar10)?;
            limit(&mut split.train, *train_limit);
            limit(&mut split.test, *test_limit);
            let stats =
                given_stats(mean, std).unwrap_or_else(|| ChannelStats::from_images(&split.train));
            let images = Images {
                pipeline: Pipeline::Crop {
                    size: *crop,
                    pad: *pad,
                    stats,
                },
                split,
                batch_size: *batch_size,
                energy,
                bn: config.bn.unwrap_or_default(),
            };
            match net {
                Some(net) => {
                    let input = [3, *crop, *crop];
                    let net = net
                        .description()
                        .and_then(|net| DescribedConfig::new(net, input, IMAGE_CLASSES))
                        .map_err(invalid)?;
                    images.run(net, job)?
                }
                None => images.run(model.clone(), job)?,
            }
        }
        TaskConfig::Ptb {
            data_dir,
            train_file,
            heldout_file,
            batch_size,
            steps,
            train_limit,
            heldout_limit,
            embed,
            hidden,
            layers,
            init_scale,
            net,
        } => {
            let corpus = load_data(Dataset::Ptb, data_dir, |dir| {
                load_ptb(&dir.join(train_file), &dir.join(heldout_file))
            })?;
            let take = |ids: &[u32], n: Option<usize>| {
                ids[..n.unwrap_or(ids.len()).min(ids.len())].to_vec()
            };
            let vocab = corpus.vocab.len();
            let net = match (net, embed, hidden, layers, init_scale) {
                (Some(net), ..) => Architecture::DescribedLm(
                    DescribedLmConfig::new(net.clone(), vocab)
                        .map_err(|e| invalid(format!("net.{e}")))?,
                ),
                (None, Some(embed), Some(hidden), Some(layers), Some(init_scale)) => {
                    Architecture::LstmLm(LstmLmConfig {
                        vocab,
                        embed: *embed,
                        hidden: *hidden,
                        layers: *layers,
                        init_scale: *init_scale,
                    })
                }
                _ => unreachable!("validated: the paper's net or a described one"),
            };
            let task = LanguageTask::<Train>::new(
                net,
                &take(&corpus.train, *train_limit),
                &take(&corpus.heldout, *heldout_limit),
                *batch_size,
                *steps,
                energy,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
        }
        TaskConfig::Polynomial { .. }
        | TaskConfig::LinearRegression { .. }
        | TaskConfig::ReluWidth { .. }
        | TaskConfig::ThreePointCycle { .. } => unreachable!("built by regression_spec"),
    })
}

/// The per-channel statistics a config gives (`task.mean` and `task.std`, validated with it).
fn given_stats(mean: &Option<Vec<f64>>, std: &Option<Vec<f64>>) -> Option<ChannelStats> {
    let single = |values: &[f64]| values.iter().map(|&v| v as f32).collect();
    Some(ChannelStats {
        mean: single(mean.as_ref()?),
        std: single(std.as_ref()?),
    })
}

fn limit(set: &mut levelset_data::LabeledImages, n: Option<usize>) {
    if let Some(n) = n {
        set.truncate(n);
    }
}

fn split_rows(data: &Regression, first: usize) -> (Regression, Regression) {
    let part = |rows: std::ops::Range<usize>| Regression {
        x: data.x[rows.start * data.d_in..rows.end * data.d_in].to_vec(),
        y: data.y[rows.start * data.d_out..rows.end * data.d_out].to_vec(),
        n: rows.len(),
        d_in: data.d_in,
        d_out: data.d_out,
    };
    (part(0..first), part(first..data.n))
}
