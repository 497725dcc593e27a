//! Turns a task config into a concrete landscape on the chosen backend.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use levelset_data::{
    ChannelStats, Polynomial, gaussian_mixture, linear_regression, load_cifar10, load_mnist,
    load_ptb, polynomial, three_point_cycle,
};
use levelset_models::Landscape;
use levelset_models::backend::Train;
use levelset_models::init::Init;
use levelset_models::nets::{Activation, LstmLmConfig, MlpConfig};
use levelset_models::tasks::{
    ImageTask, LanguageTask, Pipeline, RegressionLoss, RegressionTask, TrainSample,
};

use crate::config::{ExperimentConfig, PolynomialKind, TaskConfig};

/// Something to do with a landscape, whatever its concrete type.
pub trait WithLandscape {
    type Output;
    fn run<L: Landscape<Train>>(self, landscape: L) -> Self::Output;
}

/// Builds the landscape `config` describes and hands it to `job`.
pub fn with_landscape<J: WithLandscape>(config: &ExperimentConfig, job: J) -> Result<J::Output> {
    let device = levelset_models::backend::device();
    let energy = config.energy;
    let invalid = |e: String| anyhow!("config [task]: {e}");
    Ok(match &config.task {
        TaskConfig::Polynomial {
            polynomial: kind,
            train_samples,
            test_samples,
            test_seed,
            batch_size,
        } => {
            let (poly, net) = match kind {
                PolynomialKind::Quadratic => (Polynomial::Quadratic, MlpConfig::quadratic()),
                PolynomialKind::Cubic => (Polynomial::Cubic, MlpConfig::cubic()),
            };
            let n = *train_samples;
            let sample = TrainSample::Fresh(Arc::new(move |seed| polynomial(poly, n, seed)));
            let test = polynomial(poly, *test_samples, *test_seed);
            let task = RegressionTask::<Train>::new(
                net,
                RegressionLoss::Mae,
                energy,
                sample,
                &test,
                *test_seed ^ 1,
                *batch_size,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
        }
        TaskConfig::LinearRegression {
            widths,
            train_samples,
            test_samples,
            noise,
            task_seed,
        } => {
            let (d_in, d_out) = (widths[0], *widths.last().unwrap());
            // One teacher for train and test: the same task seed, disjoint sample sizes.
            let all = linear_regression(
                d_in,
                d_out,
                train_samples + test_samples,
                *noise,
                *task_seed,
            );
            let (train, test) = split_rows(&all, *train_samples);
            let net = MlpConfig {
                widths: widths.clone(),
                hidden: Activation::Identity,
                output: Activation::Identity,
                bias: false,
                weight_init: Init::Normal {
                    std: 1.0 / (d_in as f32).sqrt(),
                },
                bias_init: Init::Constant { value: 0.0 },
            };
            let task = RegressionTask::<Train>::new(
                net,
                RegressionLoss::Mse,
                energy,
                TrainSample::Fixed(Arc::new(train)),
                &test,
                0,
                None,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
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
            let net = MlpConfig {
                widths: vec![*input_dim, *width, 1],
                hidden: Activation::Relu,
                output: Activation::Identity,
                bias: true,
                weight_init: Init::Normal {
                    std: (2.0 / *input_dim as f32).sqrt(),
                },
                bias_init: Init::Constant { value: 0.0 },
            };
            let task = RegressionTask::<Train>::new(
                net,
                RegressionLoss::Mse,
                energy,
                TrainSample::Fixed(Arc::new(train)),
                &test,
                0,
                None,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
        }
        TaskConfig::ThreePointCycle { hidden } => {
            let data = three_point_cycle();
            let net = MlpConfig {
                widths: vec![2, *hidden, 2],
                hidden: Activation::Relu,
                output: Activation::Identity,
                bias: false,
                weight_init: Init::Uniform {
                    low: -1.0,
                    high: 1.0,
                },
                bias_init: Init::Constant { value: 0.0 },
            };
            let task = RegressionTask::<Train>::new(
                net,
                RegressionLoss::Mse,
                energy,
                TrainSample::Fixed(Arc::new(data.clone())),
                &data,
                0,
                None,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
        }
        TaskConfig::Mnist {
            data_dir,
            train_limit,
            test_limit,
            batch_size,
            model,
        } => {
            let mut split = load_mnist(&data_dir.join("mnist"))?;
            limit(&mut split.train, *train_limit);
            limit(&mut split.test, *test_limit);
            let task = ImageTask::<Train, _>::new(
                model.clone(),
                Pipeline::Scale,
                split.train,
                &split.test,
                *batch_size,
                energy,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
        }
        TaskConfig::Cifar10 {
            data_dir,
            train_limit,
            test_limit,
            batch_size,
            crop,
            model,
        } => {
            let mut split = load_cifar10(&data_dir.join("cifar10"))?;
            limit(&mut split.train, *train_limit);
            limit(&mut split.test, *test_limit);
            let stats = ChannelStats::from_images(&split.train);
            let task = ImageTask::<Train, _>::new(
                model.clone(),
                Pipeline::Crop { size: *crop, stats },
                split.train,
                &split.test,
                *batch_size,
                energy,
                &device,
            )
            .map_err(invalid)?;
            job.run(task)
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
        } => {
            let dir = data_dir.join("ptb");
            let corpus = load_ptb(&dir.join(train_file), &dir.join(heldout_file))?;
            let take = |ids: &[u32], n: Option<usize>| {
                ids[..n.unwrap_or(ids.len()).min(ids.len())].to_vec()
            };
            let net = LstmLmConfig {
                vocab: corpus.vocab.len(),
                embed: *embed,
                hidden: *hidden,
                layers: *layers,
                init_scale: *init_scale,
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
    })
}

fn limit(set: &mut levelset_data::LabeledImages, n: Option<usize>) {
    if let Some(n) = n {
        set.truncate(n);
    }
}

fn split_rows(
    data: &levelset_data::Regression,
    first: usize,
) -> (levelset_data::Regression, levelset_data::Regression) {
    let part = |rows: std::ops::Range<usize>| levelset_data::Regression {
        x: data.x[rows.start * data.d_in..rows.end * data.d_in].to_vec(),
        y: data.y[rows.start * data.d_out..rows.end * data.d_out].to_vec(),
        n: rows.len(),
        d_in: data.d_in,
        d_out: data.d_out,
    };
    (part(0..first), part(first..data.n))
}
