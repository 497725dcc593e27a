//! Image classification landscapes: the MNIST and CIFAR-10 convnets on their data.

use std::sync::{Arc, Mutex};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_data::{
    ChannelStats, LabeledImages, center_crop, normalize_image, random_padded_crop_flip,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use burn::tensor::activation::{log_softmax, softmax};

use super::{cross_entropy, device_sum, host_values, unsupported};
use crate::flat::{Stacked, flatten, unflatten, unflatten_stacked};
use crate::landscape::{
    Architecture, CurvatureLoss, DataSplit, Energy, EvalModel, Landscape, Probabilities,
    StackedPass, pointwise_energies,
};
use crate::nets::described::{Activations, NormMode, Shape};
use crate::nets::{CifarConvConfig, Described, DescribedConfig, MnistConvConfig};
use crate::pattern::Pattern;
use crate::statistics::{BnConfig, StatsMode};

/// Images per evaluation batch: large enough to amortize dispatch, small enough for memory.
pub const EVAL_BATCH: usize = 500;

/// A convnet config that can build its network.
pub trait ImageNet: Send + Sync + 'static {
    type Net<B: Backend>: Module<B>;
    fn architecture(&self) -> Architecture;
    fn build<B: Backend>(&self, seed: u64, device: &B::Device) -> Self::Net<B>;
    /// The [channels, height, width] images the net takes (its dense layers are sized for
    /// them), or the features of a net with flat inputs, which no image task feeds.
    fn input_dims(&self) -> Shape;
    /// Logits [batch, 10]; `rng` is given in training only (dropout).
    fn logits<B: Backend>(
        net: &Self::Net<B>,
        x: Tensor<B, 4>,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Tensor<B, 2>;
    /// Logits without dropout, batch normalization in `norm` mode, the net's ReLU and max
    /// pooling recording `pattern` or holding it ([`Pattern`]).
    fn logits_patterned<B: Backend>(
        net: &Self::Net<B>,
        x: Tensor<B, 4>,
        norm: NormMode,
        pattern: &mut Pattern<B>,
    ) -> Tensor<B, 2>;
    /// Whether the net has a stacked forward ([`ImageNet::stacked_logits`]) and what it is
    /// worth on the backend of `device`.
    fn stacked_pass<B: Backend>(_device: &B::Device) -> StackedPass {
        StackedPass::Absent
    }
    /// Evaluation logits [k, batch, 10] of `k` stacked nets in one pass; called only where
    /// [`ImageNet::stacked_pass`] is not `Absent`.
    fn stacked_logits<B: Backend>(_nets: &Stacked<Self::Net<B>>, _x: Tensor<B, 4>) -> Tensor<B, 3> {
        unreachable!("a net without a stacked forward has no stacked logits")
    }
    /// A regularization term added to the training loss.
    fn penalty<B: Backend>(_net: &Self::Net<B>) -> Option<Tensor<B, 1>> {
        None
    }
    /// Whether the net keeps running statistics (batch normalization), which
    /// [`ImageTask`]'s `[bn]` setting then decides at every point.
    fn has_running_statistics(&self) -> bool {
        false
    }
    /// Whether this net has [`ImageNet::stacked_logits`] (its type may, the instance not: a
    /// described net with residual blocks or normalization layers).
    fn stacks(&self) -> bool {
        true
    }
    /// Evaluation logits with batch normalization in `norm` mode (nets without it ignore
    /// the mode).
    fn logits_with<B: Backend>(
        net: &Self::Net<B>,
        x: Tensor<B, 4>,
        _norm: NormMode,
    ) -> Tensor<B, 2> {
        Self::logits(net, x, None)
    }
    /// The net with running statistics of its own, recomputed over `batches` (a cumulative
    /// average in training mode, as PyTorch's `update_bn`); nets without them unchanged.
    fn recompute_statistics<B: Backend>(
        net: &Self::Net<B>,
        _batches: &[Tensor<B, 4>],
    ) -> Self::Net<B> {
        net.clone()
    }
    /// The endpoints' flat vectors and statistics; only nets with running statistics are
    /// asked.
    fn endpoints<B: Backend>(_a: &Self::Net<B>, _b: &Self::Net<B>) -> Endpoints<B> {
        unreachable!("only a net with running statistics has endpoints' statistics")
    }
    /// `net` with `endpoints`' statistics interpolated at its position between them.
    fn interpolate_statistics<B: Backend>(
        net: &Self::Net<B>,
        _endpoints: &Endpoints<B>,
    ) -> Self::Net<B> {
        net.clone()
    }
}

/// Two endpoints of a path, for interpolating their running statistics: their flat vectors
/// and every batch normalization's (mean, variance), in the net's order.
pub struct Endpoints<B: Backend> {
    a: Tensor<B, 1>,
    b: Tensor<B, 1>,
    statistics: [Vec<(Tensor<B, 1>, Tensor<B, 1>)>; 2],
}

impl<B: Backend> Endpoints<B> {
    /// Where `point` lies along the segment from `a` to `b`: its projection's position,
    /// clamped to [0, 1] (exactly t on the straight line).
    fn position(&self, point: Tensor<B, 1>) -> f64 {
        let ab = self.b.clone() - self.a.clone();
        let along = (point - self.a.clone()) * ab.clone();
        let length2 = ab.powi_scalar(2).sum().into_scalar().elem::<f64>();
        if length2 == 0.0 {
            return 0.0;
        }
        (along.sum().into_scalar().elem::<f64>() / length2).clamp(0.0, 1.0)
    }
}

fn described_endpoints<B: Backend>(a: &Described<B>, b: &Described<B>) -> Endpoints<B> {
    let statistics = |net: &Described<B>| {
        net.batch_norms()
            .into_iter()
            .map(|bn| bn.statistics())
            .collect::<Vec<_>>()
    };
    Endpoints {
        a: flatten(a),
        b: flatten(b),
        statistics: [statistics(a), statistics(b)],
    }
}

/// `net` with its endpoints' statistics interpolated at its position between them.
fn interpolate_described<B: Backend>(net: &Described<B>, endpoints: &Endpoints<B>) -> Described<B> {
    let t = endpoints.position(flatten(net));
    let [a, b] = &endpoints.statistics;
    let mut layer = 0;
    net.clone().map_batch_norms(&mut |bn| {
        let ((mean_a, var_a), (mean_b, var_b)) = (&a[layer], &b[layer]);
        layer += 1;
        let lerp = |x: &Tensor<B, 1>, y: &Tensor<B, 1>| {
            x.clone().mul_scalar(1.0 - t) + y.clone().mul_scalar(t)
        };
        bn.with_statistics(lerp(mean_a, mean_b), lerp(var_a, var_b))
    })
}

/// A described net's statistics pass: reset, then one accumulating forward per batch.
fn recompute_described<B: Backend>(net: &Described<B>, batches: &[Tensor<B, 4>]) -> Described<B> {
    let net = net.clone().with_fresh_statistics();
    for (batch, x) in batches.iter().enumerate() {
        net.forward_with(x.clone(), None, NormMode::Accumulate { batch });
    }
    net
}

/// The paper's convnets are built from their descriptions: each runs as the described net it
/// is, with the preset's name in checkpoints.
macro_rules! preset_net {
    ($config:ty, $variant:ident) => {
        impl ImageNet for $config {
            type Net<B: Backend> = Described<B>;
            fn architecture(&self) -> Architecture {
                Architecture::$variant(self.clone())
            }
            fn build<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
                self.init(seed, device)
            }
            fn input_dims(&self) -> Shape {
                self.described().input
            }
            fn logits<B: Backend>(
                net: &Described<B>,
                x: Tensor<B, 4>,
                rng: Option<&mut ChaCha8Rng>,
            ) -> Tensor<B, 2> {
                DescribedConfig::logits(net, x, rng)
            }
            fn logits_patterned<B: Backend>(
                net: &Described<B>,
                x: Tensor<B, 4>,
                norm: NormMode,
                pattern: &mut Pattern<B>,
            ) -> Tensor<B, 2> {
                DescribedConfig::logits_patterned(net, x, norm, pattern)
            }
            fn stacked_pass<B: Backend>(device: &B::Device) -> StackedPass {
                DescribedConfig::stacked_pass::<B>(device)
            }
            fn stacked_logits<B: Backend>(
                nets: &Stacked<Described<B>>,
                x: Tensor<B, 4>,
            ) -> Tensor<B, 3> {
                DescribedConfig::stacked_logits(nets, x)
            }
            fn penalty<B: Backend>(net: &Described<B>) -> Option<Tensor<B, 1>> {
                DescribedConfig::penalty(net)
            }
        }
    };
}

preset_net!(MnistConvConfig, MnistConv);
preset_net!(CifarConvConfig, CifarConv);

impl ImageNet for DescribedConfig {
    type Net<B: Backend> = Described<B>;
    fn architecture(&self) -> Architecture {
        Architecture::Described(self.clone())
    }
    fn build<B: Backend>(&self, seed: u64, device: &B::Device) -> Described<B> {
        self.init(seed, device)
    }
    fn input_dims(&self) -> Shape {
        self.input
    }
    fn logits<B: Backend>(
        net: &Described<B>,
        x: Tensor<B, 4>,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Tensor<B, 2> {
        net.forward(x, rng)
    }
    fn logits_patterned<B: Backend>(
        net: &Described<B>,
        x: Tensor<B, 4>,
        norm: NormMode,
        pattern: &mut Pattern<B>,
    ) -> Tensor<B, 2> {
        net.forward_patterned(Activations::Image(x), norm, pattern)
    }
    /// Present for every described net and not yet measured faster than one point at a time
    /// (the paper's MNIST net: slower on flex and on an H200, where CubeCL's grouped
    /// convolution is far slower than its plain one; figures in `experiments/bench/README.md`),
    /// so DSS evaluates points one by one; `levelset bench` times both.
    fn stacked_pass<B: Backend>(_device: &B::Device) -> StackedPass {
        StackedPass::Slower
    }
    fn stacked_logits<B: Backend>(nets: &Stacked<Described<B>>, x: Tensor<B, 4>) -> Tensor<B, 3> {
        nets.forward(x)
    }
    fn penalty<B: Backend>(net: &Described<B>) -> Option<Tensor<B, 1>> {
        net.weight_penalty()
    }
    fn has_running_statistics(&self) -> bool {
        self.net.has_running_statistics()
    }
    fn stacks(&self) -> bool {
        self.net.stacks()
    }
    fn logits_with<B: Backend>(
        net: &Described<B>,
        x: Tensor<B, 4>,
        norm: NormMode,
    ) -> Tensor<B, 2> {
        net.forward_with(x, None, norm)
    }
    fn recompute_statistics<B: Backend>(
        net: &Described<B>,
        batches: &[Tensor<B, 4>],
    ) -> Described<B> {
        recompute_described(net, batches)
    }
    fn endpoints<B: Backend>(a: &Described<B>, b: &Described<B>) -> Endpoints<B> {
        described_endpoints(a, b)
    }
    fn interpolate_statistics<B: Backend>(
        net: &Described<B>,
        endpoints: &Endpoints<B>,
    ) -> Described<B> {
        interpolate_described(net, endpoints)
    }
}

/// How raw u8 images become network inputs.
#[derive(Debug, Clone)]
pub enum Pipeline {
    /// Pixels scaled to [0, 1] (MNIST).
    Scale,
    /// Whole images scaled to [0, 1], then normalized per channel as `(x - mean) / std`, with
    /// no augmentation (MNIST with given statistics).
    Normalize { stats: ChannelStats },
    /// `size` x `size` crops normalized per channel. Training takes a random crop of the
    /// image zero-padded by `pad` pixels on each side (pixel value 0 before normalization)
    /// and a random horizontal flip; evaluation takes the central crop of the unpadded image,
    /// the whole image when `size` is its side. `pad` 0 is the TF CIFAR-10 tutorial's input,
    /// `size` 32 with `pad` 4 the CIFAR ResNets'.
    Crop {
        size: usize,
        pad: usize,
        stats: ChannelStats,
    },
}

impl Pipeline {
    fn validate(&self, set: &LabeledImages) -> Result<(), String> {
        let channels = |stats: &ChannelStats| {
            if stats.mean.len() != set.channels || stats.std.len() != set.channels {
                return Err(format!(
                    "channel statistics for {}/{} channels (mean/std), images have {}",
                    stats.mean.len(),
                    stats.std.len(),
                    set.channels
                ));
            }
            Ok(())
        };
        match self {
            Pipeline::Scale => Ok(()),
            Pipeline::Normalize { stats } => channels(stats),
            Pipeline::Crop { size, pad, stats } => {
                // Evaluation crops the unpadded image, so the window must fit it.
                if *size == 0 || *size > set.height || *size > set.width {
                    return Err(format!(
                        "crop size {size} does not fit {}x{} images",
                        set.height, set.width
                    ));
                }
                if *pad > set.height || *pad > set.width {
                    return Err(format!(
                        "padding {pad} is wider than the {}x{} images",
                        set.height, set.width
                    ));
                }
                channels(stats)
            }
        }
    }

    fn dims(&self, set: &LabeledImages) -> [usize; 3] {
        match self {
            Pipeline::Scale | Pipeline::Normalize { .. } => [set.channels, set.height, set.width],
            Pipeline::Crop { size, .. } => [set.channels, *size, *size],
        }
    }

    /// One preprocessed image; `rng` selects training augmentation.
    fn image(&self, set: &LabeledImages, i: usize, rng: Option<&mut ChaCha8Rng>) -> Vec<f32> {
        match (self, rng) {
            (Pipeline::Scale, _) => Ok(set.image(i).iter().map(|&p| p as f32 / 255.0).collect()),
            (Pipeline::Normalize { stats }, _) => normalize_image(set, i, stats),
            (Pipeline::Crop { size, pad, stats }, Some(rng)) => {
                random_padded_crop_flip(set, i, *size, *pad, stats, rng)
            }
            (Pipeline::Crop { size, stats, .. }, None) => center_crop(set, i, *size, stats),
        }
        .expect("crop size, padding and statistics are validated when the task is built")
    }

    fn batch<B: Backend>(
        &self,
        set: &LabeledImages,
        indices: &[usize],
        mut rng: Option<&mut ChaCha8Rng>,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
        let [c, h, w] = self.dims(set);
        let pixels: Vec<f32> = indices
            .iter()
            .flat_map(|&i| self.image(set, i, rng.as_deref_mut()))
            .collect();
        let labels: Vec<i64> = indices.iter().map(|&i| set.labels[i] as i64).collect();
        (
            Tensor::from_data(TensorData::new(pixels, [indices.len(), c, h, w]), device),
            Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        )
    }
}

/// Images [n, c, h, w] and their labels [n].
type LabeledBatch<B> = (Tensor<B, 4>, Tensor<B, 1, Int>);

pub struct ImageTask<B: AutodiffBackend, C: ImageNet> {
    net: C,
    /// `[bn]`, applied when the net keeps running statistics.
    bn: BnConfig,
    /// The statistics pass's training batches (`recompute`), fixed so that the energy is a
    /// function of the point alone.
    stats_batches: Vec<Tensor<B::InnerBackend, 4>>,
    /// The endpoints' flat vectors and statistics (`interpolate`).
    endpoints: Mutex<Option<Endpoints<B::InnerBackend>>>,
    pipeline: Arc<Pipeline>,
    train: Arc<LabeledImages>,
    batch_size: usize,
    energy: Energy,
    /// The energy's data set, preprocessed once and kept on the device.
    eval: Vec<LabeledBatch<B::InnerBackend>>,
    eval_count: usize,
    device: B::Device,
}

impl<B: AutodiffBackend, C: ImageNet> ImageTask<B, C> {
    pub fn new(
        net: C,
        pipeline: Pipeline,
        train: LabeledImages,
        test: &LabeledImages,
        batch_size: usize,
        energy: Energy,
        device: &B::Device,
    ) -> Result<Self, String> {
        let eval_set = match energy {
            Energy::TestLoss | Energy::TestError => test,
            Energy::TrainLoss | Energy::TrainError => &train,
            other => {
                return Err(unsupported(
                    "image classification",
                    other,
                    &[
                        Energy::TrainLoss,
                        Energy::TestLoss,
                        Energy::TrainError,
                        Energy::TestError,
                    ],
                ));
            }
        };
        if batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if train.is_empty() || eval_set.is_empty() {
            return Err("the training and evaluation sets must not be empty".into());
        }
        pipeline.validate(&train)?;
        pipeline.validate(eval_set)?;
        // Same byte count, other geometry (14x56 for 28x28) would reach the dense layers as
        // a shape mismatch deep inside a kernel.
        let expected = net.input_dims();
        for (name, set) in [("training", &train), ("held-out", eval_set)] {
            let found = pipeline.dims(set);
            if Shape::Image(found) != expected {
                let takes = match expected {
                    Shape::Image(dims) => dims_text(dims),
                    flat => format!("{flat}, not images"),
                };
                return Err(format!(
                    "the {name} images are {} after preprocessing, but the network takes {takes}",
                    dims_text(found),
                ));
            }
        }
        let indices: Vec<usize> = (0..eval_set.len()).collect();
        let eval = indices
            .chunks(EVAL_BATCH)
            .map(|chunk| pipeline.batch(eval_set, chunk, None, device))
            .collect();
        Ok(Self {
            net,
            bn: BnConfig::default(),
            stats_batches: Vec::new(),
            endpoints: Mutex::new(None),
            pipeline: Arc::new(pipeline),
            eval_count: eval_set.len(),
            train: Arc::new(train),
            batch_size,
            energy,
            eval,
            device: device.clone(),
        })
    }
}

impl<B: AutodiffBackend, C: ImageNet> ImageTask<B, C> {
    /// The first `n` examples of `split`, preprocessed as for evaluation (no augmentation):
    /// the training set is always held, the test set when the energy is measured on it.
    fn first_examples(&self, split: DataSplit, n: usize) -> Result<LabeledBatch<B>, String> {
        let held = match split {
            DataSplit::Train => self.train.len(),
            DataSplit::Test if matches!(self.energy, Energy::TestLoss | Energy::TestError) => {
                self.eval_count
            }
            DataSplit::Test => {
                return Err(format!(
                    "the task holds no test set: its energy is {:?}, measured on the training \
                     set (use the training split)",
                    self.energy
                ));
            }
        };
        if n == 0 || n > held {
            return Err(format!(
                "asked for {n} examples of the {split:?} split, which holds {held}"
            ));
        }
        Ok(match split {
            DataSplit::Train => {
                let indices: Vec<usize> = (0..n).collect();
                self.pipeline
                    .batch(&self.train, &indices, None, &self.device)
            }
            DataSplit::Test => {
                // Only the evaluation batches that hold the first n examples.
                let (images, labels): (Vec<_>, Vec<_>) = self
                    .eval
                    .iter()
                    .take(n.div_ceil(EVAL_BATCH))
                    .cloned()
                    .unzip();
                (
                    Tensor::from_inner(Tensor::cat(images, 0).narrow(0, 0, n)),
                    Tensor::from_inner(Tensor::cat(labels, 0).narrow(0, 0, n)),
                )
            }
        })
    }

    /// The task with `[bn]` set: for a net with running statistics and `recompute` or
    /// `interpolate` (which recomputes the endpoints'), the statistics pass's batches are
    /// drawn here, once: the first `bn.batches` training
    /// batches in a shuffled order with training augmentation, from a fixed seed.
    pub fn with_statistics(mut self, bn: BnConfig) -> Result<Self, String> {
        bn.validate()?;
        self.bn = bn;
        self.stats_batches = Vec::new();
        if self.net.has_running_statistics() && bn.stats != StatsMode::Batch {
            let mut rng = ChaCha8Rng::seed_from_u64(STATS_SEED);
            let mut order: Vec<usize> = (0..self.train.len()).collect();
            order.shuffle(&mut rng);
            let device = self.eval[0].0.device();
            self.stats_batches = order
                .chunks(self.batch_size)
                .take(bn.batches)
                .map(|chunk| {
                    self.pipeline
                        .batch(&self.train, chunk, Some(&mut rng), &device)
                        .0
                })
                .collect();
        }
        Ok(self)
    }

    /// The configured energy of `model` with batch normalization in `norm` mode.
    fn energy_in(&self, model: &C::Net<B::InnerBackend>, norm: NormMode) -> f64 {
        let per_batch = self.eval.iter().map(|(x, y)| {
            let logits = C::logits_with(model, x.clone(), norm);
            match self.energy {
                Energy::TestError | Energy::TrainError => {
                    let predicted = logits.argmax(1).flatten::<1>(0, 1);
                    predicted.not_equal(y.clone()).float().sum()
                }
                _ => cross_entropy(logits, y.clone()).mul_scalar(y.dims()[0] as f64),
            }
        });
        device_sum(per_batch) / self.eval_count as f64
    }

    /// `model` with the statistics the statistics pass gives it (unchanged for a net without
    /// running statistics, or when `[bn]` is `batch`: there is no pass).
    pub fn recomputed(&self, model: &C::Net<B::InnerBackend>) -> C::Net<B::InnerBackend> {
        if self.stats_batches.is_empty() {
            return model.clone();
        }
        C::recompute_statistics(model, &self.stats_batches)
    }

    /// `model` with the running statistics `[bn]` gives it at its point, and the mode its
    /// evaluation normalizes in.
    fn with_point_statistics(
        &self,
        model: &C::Net<B::InnerBackend>,
    ) -> (C::Net<B::InnerBackend>, NormMode) {
        if !self.net.has_running_statistics() {
            return (model.clone(), NormMode::Running);
        }
        match self.bn.stats {
            StatsMode::Recompute => (self.recomputed(model), NormMode::Running),
            StatsMode::Batch => (model.clone(), NormMode::Batch),
            StatsMode::Interpolate => {
                let endpoints = self.endpoints.lock().expect("endpoints lock poisoned");
                match endpoints.as_ref() {
                    Some(endpoints) => (
                        C::interpolate_statistics(model, endpoints),
                        NormMode::Running,
                    ),
                    // A model measured outside a path (training, `eval`, `import`) is its own
                    // endpoint: the statistics an endpoint gets are its recomputed ones.
                    None => (self.recomputed(model), NormMode::Running),
                }
            }
        }
    }
}

/// Seed of the statistics pass's batch order and augmentation.
const STATS_SEED: u64 = 0x5747_4154;

fn dims_text([c, h, w]: [usize; 3]) -> String {
    format!("{c} channel(s) of {h}x{w}")
}

#[derive(Debug, Clone)]
pub struct ImageBatch<B: Backend> {
    pub images: Tensor<B, 4>,
    pub labels: Tensor<B, 1, Int>,
}

struct Indices(usize);

impl Dataset<usize> for Indices {
    fn get(&self, i: usize) -> Option<usize> {
        (i < self.0).then_some(i)
    }
    fn len(&self) -> usize {
        self.0
    }
}

struct ImageBatcher {
    set: Arc<LabeledImages>,
    pipeline: Arc<Pipeline>,
    /// Augmentation randomness; batches are built in order on one thread, so it is
    /// deterministic per seed.
    rng: Mutex<ChaCha8Rng>,
}

impl<B: Backend> Batcher<B, usize, ImageBatch<B>> for ImageBatcher {
    fn batch(&self, items: Vec<usize>, device: &B::Device) -> ImageBatch<B> {
        let mut rng = self.rng.lock().expect("batcher RNG poisoned");
        let (images, labels) = self
            .pipeline
            .batch(&self.set, &items, Some(&mut rng), device);
        ImageBatch { images, labels }
    }
}

impl<B, C> Landscape<B> for ImageTask<B, C>
where
    B: AutodiffBackend,
    C: ImageNet,
    C::Net<B>: AutodiffModule<B, InnerModule = C::Net<B::InnerBackend>> + 'static,
{
    type Model = C::Net<B>;
    type Batch = ImageBatch<B>;
    type Carry = ChaCha8Rng;

    fn architecture(&self) -> Architecture {
        self.net.architecture()
    }

    fn energy_kind(&self) -> Energy {
        self.energy
    }

    fn device(&self) -> &B::Device {
        &self.device
    }

    fn init(&self, seed: u64) -> C::Net<B> {
        self.net.build(seed, &self.device)
    }

    fn loader(&self, seed: u64) -> Arc<dyn DataLoader<B, ImageBatch<B>>> {
        let batcher = ImageBatcher {
            set: self.train.clone(),
            pipeline: self.pipeline.clone(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xA5A5_A5A5)),
        };
        DataLoaderBuilder::new(batcher)
            .batch_size(self.batch_size)
            .shuffle(seed)
            .set_device(self.device.clone())
            .build(Indices(self.train.len()))
    }

    fn carry(&self, seed: u64, epoch: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch as u64 + 1);
        rng
    }

    fn loss(&self, model: &C::Net<B>, batch: ImageBatch<B>, rng: &mut ChaCha8Rng) -> Tensor<B, 1> {
        let logits = C::logits(model, batch.images, Some(rng));
        let loss = cross_entropy(logits, batch.labels);
        match C::penalty(model) {
            Some(p) => loss + p,
            None => loss,
        }
    }

    fn curvature_loss(
        &self,
        split: DataSplit,
        examples: usize,
    ) -> Result<CurvatureLoss<'_, B, C::Net<B>>, String> {
        let (images, labels) = self.first_examples(split, examples)?;
        Ok(Box::new(
            move |model: &C::Net<B>, pattern: &mut Pattern<B>| {
                let logits = C::logits_patterned(model, images.clone(), NormMode::Batch, pattern);
                cross_entropy(logits, labels.clone())
            },
        ))
    }

    fn energy(&self, model: &EvalModel<B, Self>) -> f64 {
        let (model, norm) = self.with_point_statistics(model);
        self.energy_in(&model, norm)
    }

    fn energy_with_carried_statistics(&self, model: &EvalModel<B, Self>) -> Option<f64> {
        self.net
            .has_running_statistics()
            .then(|| self.energy_in(model, NormMode::Running))
    }

    fn energies(
        &self,
        template: &EvalModel<B, Self>,
        points: Tensor<B::InnerBackend, 2>,
    ) -> Vec<f64> {
        if self.stacked_pass(&points.device()) == StackedPass::Absent {
            return pointwise_energies(self, template, points);
        }
        let nets = unflatten_stacked(template.clone(), points);
        let totals = self
            .eval
            .iter()
            .map(|(x, y)| {
                let logits = C::stacked_logits(&nets, x.clone());
                let [k, b, _] = logits.dims();
                let labels = y.clone().reshape([1, b, 1]).expand([k, b, 1]);
                // Per-model sums over the batch: [k]
                match self.energy {
                    Energy::TestError | Energy::TrainError => logits
                        .argmax(2)
                        .not_equal(labels)
                        .float()
                        .sum_dim(1)
                        .reshape([k]),
                    _ => log_softmax(logits, 2)
                        .gather(2, labels)
                        .sum_dim(1)
                        .reshape([k])
                        .neg(),
                }
            })
            .reduce(|a, b| a + b)
            .expect("an image task keeps at least one evaluation batch");
        host_values(totals)
            .into_iter()
            .map(|total| total / self.eval_count as f64)
            .collect()
    }

    fn stacked_pass(&self, device: &Device<B::InnerBackend>) -> StackedPass {
        if !self.net.stacks() {
            return StackedPass::Absent;
        }
        C::stacked_pass::<B::InnerBackend>(device)
    }

    fn statistics(&self) -> Option<BnConfig> {
        self.net.has_running_statistics().then_some(self.bn)
    }

    fn probabilities(&self, model: &EvalModel<B, Self>) -> Option<Probabilities<B::InnerBackend>> {
        let (model, norm) = self.with_point_statistics(model);
        let (probabilities, labels): (Vec<_>, Vec<_>) = self
            .eval
            .iter()
            .map(|(x, y)| {
                let logits = C::logits_with(&model, x.clone(), norm);
                (softmax(logits, 1), y.clone())
            })
            .unzip();
        Some((Tensor::cat(probabilities, 0), Tensor::cat(labels, 0)))
    }

    fn carrying_point_statistics(&self, model: &EvalModel<B, Self>) -> Option<EvalModel<B, Self>> {
        let (model, norm) = self.with_point_statistics(model);
        (self.net.has_running_statistics() && norm == NormMode::Running).then_some(model)
    }

    fn set_endpoints(&self, a: &Tensor<B::InnerBackend, 1>, b: &Tensor<B::InnerBackend, 1>) {
        if self.net.has_running_statistics() && self.bn.stats == StatsMode::Interpolate {
            // The endpoints' statistics are the ones the statistics pass gives them, so that
            // they are a function of the endpoints' coordinates (an aligned endpoint's are
            // its permuted original's).
            let template = self.init(0).valid();
            let [a, b] =
                [a, b].map(|flat| self.recomputed(&unflatten(template.clone(), flat.clone())));
            *self.endpoints.lock().expect("endpoints lock poisoned") = Some(C::endpoints(&a, &b));
        }
    }

    fn batch_examples(batch: &ImageBatch<B>) -> usize {
        batch.labels.dims()[0]
    }

    fn eval_examples(&self) -> usize {
        self.eval_count
    }
}
