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
    /// neighbours are equally far apart; a `pinned` point (a row index, \[1\]) stays where it is
    /// and the points on either side of it are spaced evenly on their side. The parameter id
    /// is kept, so an optimizer's state carries over. Computed on the device, without reading
    /// anything back: NEB respaces its pivots after every step.
    pub fn redistributed(
        self,
        first: &Tensor<B, 1>,
        last: &Tensor<B, 1>,
        pinned: Option<Tensor<B, 1, Int>>,
    ) -> Self {
        let points = self.points.val().detach();
        let rows = evenly(
            Tensor::cat(
                vec![
                    first.clone().detach().unsqueeze::<2>(),
                    points,
                    last.clone().detach().unsqueeze::<2>(),
                ],
                0,
            ),
            pinned,
        )
        .detach()
        .require_grad();
        Self {
            points: self.points.map(|_| rows),
        }
    }

    /// The rows as separate vectors.
    pub fn rows(&self) -> Vec<Tensor<B, 1>> {
        let points = self.points.val();
        let [count, _] = points.dims();
        (0..count).map(|k| row(&points, k)).collect()
    }
}

/// The interior points of the polygon `chain` [count + 2, n] moved to arc lengths spaced
/// evenly along it (on either side of a `pinned` interior point, which stays); [count, n]. A
/// polygon of no length, or of a length that is not finite, keeps its points.
fn evenly<B: Backend>(chain: Tensor<B, 2>, pinned: Option<Tensor<B, 1, Int>>) -> Tensor<B, 2> {
    let [ends, _] = chain.dims();
    let count = ends - 2;
    let device = chain.device();
    let segments = count + 1;
    let steps = chain.clone().narrow(0, 1, segments) - chain.clone().narrow(0, 0, segments);
    let lengths = steps.powi_scalar(2).sum_dim(1).sqrt().reshape([segments]);
    // Arc length at each segment's start (running sums, so that they never decrease), and
    // the whole length.
    let sums = lengths.clone().cumsum(0);
    let starts = Tensor::cat(
        vec![sums.zeros_like().narrow(0, 0, 1), sums.narrow(0, 0, count)],
        0,
    );
    let total = lengths.clone().sum(); // [1]
    let j = Tensor::<B, 1, Int>::arange(0..count as i64, &device).float();
    let targets = match pinned {
        None => total.clone() * (j + 1.0) / (count + 1) as f64,
        Some(k) => {
            // Pivot k is the chain's point k + 1, at the start of segment k + 1.
            let at = starts.clone().select(0, k.clone() + 1); // [1]
            let k = k.float();
            let below = at.clone() * (j.clone() + 1.0) / (k.clone() + 1.0);
            let above = at.clone()
                + (total.clone() - at.clone()) * (j.clone() - k.clone())
                    / (k.clone().neg() + count as f64);
            below
                .mask_where(j.clone().equal(k.clone()), at.expand([count]))
                .mask_where(j.greater(k), above)
        }
    };
    // The segment each target falls in: the last whose start is not beyond it.
    let reached = starts
        .clone()
        .unsqueeze_dim::<2>(0)
        .lower_equal(targets.clone().unsqueeze_dim(1)); // [count, segments]
    let piece = (reached.int().sum_dim(1).reshape([count]) - 1).clamp(0, segments as i64 - 1);
    let length = lengths.select(0, piece.clone());
    let u = ((targets - starts.select(0, piece.clone())) / length.clone())
        .clamp(0.0, 1.0)
        .mask_fill(length.lower_equal_elem(0.0), 0.0);
    let a = chain.clone().select(0, piece.clone());
    let b = chain.clone().select(0, piece + 1);
    let moved = a.clone() + (b - a) * u.unsqueeze_dim(1);
    let degenerate = total
        .clone()
        .lower_equal_elem(0.0)
        .bool_or(total.clone().is_nan())
        .bool_or(total.is_inf())
        .unsqueeze::<2>()
        .expand([count, chain.dims()[1]]);
    moved.mask_where(degenerate, chain.narrow(0, 1, count))
}

/// Row `k` of a matrix, as a vector.
pub(crate) fn row<B: Backend>(matrix: &Tensor<B, 2>, k: usize) -> Tensor<B, 1> {
    let [_, n] = matrix.dims();
    matrix.clone().narrow(0, k, 1).reshape([n])
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use levelset_models::backend::{Compute, device};

    /// The respacing walked on the host in f64: `count` points evenly by length along
    /// `chain`, its ends excluded; with `pinned`, each side of the pinned point on its own.
    fn reference(chain: &[Vec<f64>], pinned: Option<usize>) -> Vec<Vec<f64>> {
        fn walk(chain: &[Vec<f64>], count: usize) -> Vec<Vec<f64>> {
            let dist = |a: &[f64], b: &[f64]| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            let lengths: Vec<f64> = chain.windows(2).map(|w| dist(&w[0], &w[1])).collect();
            let total: f64 = lengths.iter().sum();
            if total <= 0.0 {
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
                    let (a, b) = (&chain[piece], &chain[piece + 1]);
                    a.iter().zip(b).map(|(x, y)| x + u * (y - x)).collect()
                })
                .collect()
        }
        let count = chain.len() - 2;
        match pinned {
            Some(k) => {
                let mut rows = walk(&chain[..=k + 1], k);
                rows.push(chain[k + 1].clone());
                rows.extend(walk(&chain[k + 1..], count - k - 1));
                rows
            }
            None => walk(chain, count),
        }
    }

    #[test]
    fn respacing_on_the_device_is_the_host_walk() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let dev = device();
        for case in 0..40 {
            let count = 1 + case % 6;
            let n = 3;
            let mut chain: Vec<Vec<f64>> = (0..count + 2)
                .map(|_| (0..n).map(|_| rng.random_range(-2.0..2.0)).collect())
                .collect();
            if case % 5 == 1 && count > 1 {
                // A segment of no length.
                chain[2] = chain[1].clone();
            }
            if case % 10 == 7 {
                // No length at all: the points stay.
                let point = chain[0].clone();
                chain.iter_mut().for_each(|p| *p = point.clone());
            }
            let tensor = |p: &Vec<f64>| {
                let p: Vec<f32> = p.iter().map(|&v| v as f32).collect();
                Tensor::<Compute, 1>::from_floats(p.as_slice(), &dev)
            };
            // The f32 chain, as the device holds it, in f64 for the reference.
            let chain: Vec<Vec<f64>> = chain
                .iter()
                .map(|p| p.iter().map(|&v| v as f32 as f64).collect())
                .collect();
            let knots = Knots::new(chain[1..=count].iter().map(tensor).collect());
            let pins = std::iter::once(None).chain((0..count).map(Some));
            for pinned in pins {
                let index = pinned.map(|k| Tensor::<Compute, 1, Int>::from_ints([k as i32], &dev));
                let got = knots.clone().redistributed(
                    &tensor(&chain[0]),
                    &tensor(&chain[count + 1]),
                    index,
                );
                let got: Vec<f32> = got.points.val().into_data().to_vec().unwrap();
                let want = reference(&chain, pinned).concat();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "case {case}, pinned {pinned:?}: {got:?} vs {want:?}"
                    );
                }
                if let Some(k) = pinned {
                    let row = &got[k * n..(k + 1) * n];
                    let at: Vec<f32> = chain[k + 1].iter().map(|&v| v as f32).collect();
                    assert_eq!(row, at.as_slice(), "case {case}: the pinned point stays");
                }
            }
        }
    }
}
