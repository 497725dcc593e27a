//! The trainable interior points of a path (curve control points, NEB pivots) as one Burn
//! parameter, so a Burn optimizer updates them and nothing else: the endpoints stay plain
//! tensors outside the module and can never receive a gradient.

use burn::module::{Module, Param, ParamId};
use burn::prelude::*;
use levelset_models::flat::{distance, lerp};
use levelset_models::init::Init;
use rand_chacha::ChaCha8Rng;

#[derive(Module, Debug)]
pub struct Knots<B: Backend> {
    /// One point per row, `[count, parameters]`, in path order.
    pub points: Param<Tensor<B, 2>>,
}

impl<B: Backend> Knots<B> {
    /// Trainable rows holding `rows` (fresh parameter id, detached from any graph).
    pub fn new(rows: Vec<Tensor<B, 1>>) -> Self {
        let stacked = Tensor::stack::<2>(rows, 0).detach().require_grad();
        Self {
            points: Param::initialized(ParamId::new(), stacked),
        }
    }

    /// `count` points evenly spaced on the segment `a -> b` (at `t = k / (count + 1)`), each
    /// moved by isotropic Gaussian noise whose expected norm is `noise` times ‖b − a‖.
    pub fn on_segment(
        a: &Tensor<B, 1>,
        b: &Tensor<B, 1>,
        count: usize,
        noise: f64,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let [n] = a.dims();
        let std = noise * distance(a, b) / (n as f64).sqrt();
        let rows = (1..=count)
            .map(|k| {
                let point = lerp(a, b, k as f64 / (count + 1) as f64);
                if std > 0.0 {
                    let draw = Init::Normal { std: std as f32 }.sample(n, rng);
                    point + Tensor::from_data(TensorData::new(draw, [n]), &a.device())
                } else {
                    point
                }
            })
            .collect();
        Self::new(rows)
    }

    /// The same number of points moved along the chain `first -> points -> last` so that
    /// neighbours are equally far apart; a `pinned` point (a row index) stays where it is and
    /// the points on either side of it are spaced evenly on their side. The parameter id is
    /// kept, so an optimizer's state carries over.
    pub fn redistributed(
        self,
        first: &Tensor<B, 1>,
        last: &Tensor<B, 1>,
        pinned: Option<usize>,
    ) -> Self {
        let chain: Vec<_> = std::iter::once(first.clone())
            .chain(self.rows())
            .chain(std::iter::once(last.clone()))
            .collect();
        let count = chain.len() - 2;
        let rows = match pinned {
            Some(k) if k < count => {
                let mut rows = evenly(&chain[..=k + 1], k);
                rows.push(chain[k + 1].clone());
                rows.extend(evenly(&chain[k + 1..], count - k - 1));
                rows
            }
            _ => evenly(&chain, count),
        };
        let stacked = Tensor::stack::<2>(rows, 0).detach().require_grad();
        Self {
            points: self.points.map(|_| stacked),
        }
    }

    /// The rows as separate vectors.
    pub fn rows(&self) -> Vec<Tensor<B, 1>> {
        let points = self.points.val();
        let [count, _] = points.dims();
        (0..count).map(|k| row(&points, k)).collect()
    }
}

/// `count` points spaced evenly by length along the polygon `chain`, its ends excluded.
fn evenly<B: Backend>(chain: &[Tensor<B, 1>], count: usize) -> Vec<Tensor<B, 1>> {
    let lengths: Vec<f64> = chain.windows(2).map(|w| distance(&w[0], &w[1])).collect();
    let total: f64 = lengths.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return chain[1..chain.len() - 1].to_vec();
    }
    let (mut piece, mut walked) = (0, 0.0);
    (1..=count)
        .map(|k| {
            let target = total * k as f64 / (count + 1) as f64;
            while piece + 1 < lengths.len() && walked + lengths[piece] < target {
                walked += lengths[piece];
                piece += 1;
            }
            let u = if lengths[piece] > 0.0 {
                ((target - walked) / lengths[piece]).clamp(0.0, 1.0)
            } else {
                0.0
            };
            lerp(&chain[piece], &chain[piece + 1], u)
        })
        .collect()
}

/// Row `k` of a matrix, as a vector.
pub(crate) fn row<B: Backend>(matrix: &Tensor<B, 2>, k: usize) -> Tensor<B, 1> {
    let [_, n] = matrix.dims();
    matrix.clone().narrow(0, k, 1).reshape([n])
}
