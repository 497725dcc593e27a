//! Seeded parameter initialization.
//!
//! Burn's initializers draw from a process-global backend RNG, so two trainings running in
//! parallel (tests, sweeps) would interleave their draws. Every levelset model is therefore
//! initialized from its own ChaCha stream: the same seed gives the same parameters on every
//! backend and in every thread.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::prelude::*;
use levelset_data::standard_normal;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::flat::{Coordinates, track_coordinates};

/// How one parameter tensor is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    Uniform {
        low: f32,
        high: f32,
    },
    Normal {
        std: f32,
    },
    /// Normal redrawn outside two standard deviations, as TensorFlow's `truncated_normal`.
    TruncatedNormal {
        std: f32,
    },
    Constant {
        value: f32,
    },
}

impl Init {
    /// The distribution of `factor` times a draw.
    pub fn scaled(self, factor: f32) -> Init {
        match self {
            Init::Uniform { low, high } if factor >= 0.0 => Init::Uniform {
                low: low * factor,
                high: high * factor,
            },
            Init::Uniform { low, high } => Init::Uniform {
                low: high * factor,
                high: low * factor,
            },
            Init::Normal { std } => Init::Normal {
                std: std * factor.abs(),
            },
            Init::TruncatedNormal { std } => Init::TruncatedNormal {
                std: std * factor.abs(),
            },
            Init::Constant { value } => Init::Constant {
                value: value * factor,
            },
        }
    }

    /// What makes the distribution undrawable, if anything: a uniform range that is empty or
    /// not finite, a standard deviation that is negative or not finite, a value that is not
    /// finite.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Init::Uniform { low, high } if !(low.is_finite() && high.is_finite() && low < high) => {
                Err(format!(
                    "uniform needs finite low < high, got low {low}, high {high}"
                ))
            }
            Init::Normal { std } | Init::TruncatedNormal { std }
                if !(std.is_finite() && std >= 0.0) =>
            {
                Err(format!("std must be a finite number >= 0, got {std}"))
            }
            Init::Constant { value } if !value.is_finite() => {
                Err(format!("value must be finite, got {value}"))
            }
            _ => Ok(()),
        }
    }

    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        match *self {
            Init::Uniform { low, high } => (0..n).map(|_| rng.random_range(low..high)).collect(),
            Init::Normal { std } => (0..n).map(|_| std * standard_normal(rng)).collect(),
            Init::TruncatedNormal { std } => (0..n)
                .map(|_| {
                    loop {
                        let z = standard_normal(rng);
                        if z.abs() <= 2.0 {
                            break std * z;
                        }
                    }
                })
                .collect(),
            Init::Constant { value } => vec![value; n],
        }
    }
}

/// The ChaCha stream initializers read. The data generators of `levelset_data` read stream 0
/// of `ChaCha8Rng::seed_from_u64(seed)` and tasks draw per-epoch randomness from streams
/// `epoch + 1`, and experiments pass one seed to both `init` and the data: on stream 0 every
/// weight of a polynomial net would equal `2x - 1` of a training input.
const INIT_STREAM: u64 = u64::MAX;

/// Redraws every float parameter of `module` in traversal order (not running statistics:
/// [`Coordinates`]). `rule` gets the parameter's
/// index and shape and says how to draw it.
pub fn reinit<B: Backend, M: Module<B>>(
    module: M,
    seed: u64,
    rule: impl FnMut(usize, &[usize]) -> Init,
) -> M {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(INIT_STREAM);
    let mut mapper = Reinit {
        coordinates: Coordinates::default(),
        rng,
        rule,
        index: 0,
    };
    module.map(&mut mapper)
}

struct Reinit<F> {
    coordinates: Coordinates,
    rng: ChaCha8Rng,
    rule: F,
    index: usize,
}

impl<B: Backend, F: FnMut(usize, &[usize]) -> Init> ModuleMapper<B> for Reinit<F> {
    track_coordinates!();
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        // Running statistics keep their initial values (mean 0, variance 1).
        if !self.coordinates.here() {
            return param;
        }
        let (_, tensor, _) = param.consume();
        let dims = tensor.dims();
        let init = (self.rule)(self.index, &dims);
        self.index += 1;
        let values = init.sample(dims.iter().product(), &mut self.rng);
        let fresh = Tensor::from_data(TensorData::new(values, dims), &tensor.device());
        Param::initialized(ParamId::new(), fresh.require_grad())
    }
}
