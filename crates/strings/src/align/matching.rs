//! Weight matching (Ainsworth et al. 2022, Algorithm 1): permute the hidden units of one
//! network to maximise the inner product of its weights with another's, one layer at a time
//! by linear assignment, until no layer improves.

use burn::prelude::*;
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::layout::Group;

/// Every group's whole order from the groups' own: the places of a tie follow the group they
/// are carried from (whatever `orders` holds there).
pub(crate) fn effective(groups: &[Group], orders: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut done: Vec<Option<Vec<usize>>> = vec![None; groups.len()];
    (0..groups.len())
        .map(|g| resolve(g, groups, orders, &mut done))
        .collect()
}

fn resolve(
    g: usize,
    groups: &[Group],
    orders: &[Vec<usize>],
    done: &mut [Option<Vec<usize>>],
) -> Vec<usize> {
    if let Some(order) = &done[g] {
        return order.clone();
    }
    let mut order = orders[g].clone();
    if let Some(tie) = groups[g].tie {
        // `layout::groups` refuses ties that loop.
        let carried = match tie.to {
            Some(to) => resolve(to, groups, orders, done),
            None => (0..tie.len).collect(),
        };
        for (k, unit) in carried.into_iter().enumerate() {
            order[tie.offset + k] = tie.offset + unit;
        }
    }
    done[g] = Some(order.clone());
    order
}

/// Every group that holds group `g`'s units, with the place of `g`'s first unit in it: `g`
/// itself at 0, and the streams that carry `g`'s channels through zero-padded shortcuts.
fn holders(groups: &[Group], g: usize) -> Vec<(usize, usize)> {
    (0..groups.len())
        .filter_map(|h| {
            let (mut at, mut offset) = (h, 0);
            for _ in 0..=groups.len() {
                if at == g {
                    return Some((h, offset));
                }
                let tie = groups[at].tie?;
                offset += tie.offset;
                at = tie.to?;
            }
            None
        })
        .collect()
}

/// A flat vector cut into its parameters, each kept flat beside its shape.
pub(crate) struct Params<B: Backend> {
    values: Vec<Tensor<B, 1>>,
    shapes: Vec<Vec<usize>>,
}

impl<B: Backend> Params<B> {
    pub fn split(flat: &Tensor<B, 1>, shapes: &[Vec<usize>]) -> Self {
        let mut offset = 0;
        let values = shapes
            .iter()
            .map(|dims| {
                let n: usize = dims.iter().product();
                offset += n;
                flat.clone().narrow(0, offset - n, n)
            })
            .collect();
        Self {
            values,
            shapes: shapes.to_vec(),
        }
    }

    /// Parameter `param` seen as `[before, units, rest]` around `axis`: unit `u` owns the
    /// entries `[.., u, ..]`, its block of the axis included in `rest`.
    fn around(&self, value: Tensor<B, 1>, param: usize, axis: usize, units: usize) -> Tensor<B, 3> {
        let dims = &self.shapes[param];
        let before: usize = dims[..axis].iter().product();
        let rest = dims[axis..].iter().product::<usize>() / units;
        value.reshape([before, units, rest])
    }

    /// Parameter `param` with every group but those in `except` reordered by `orders` (unit
    /// `i` of a group becomes what unit `orders[g][i]` was; whole orders, see [`effective`]).
    pub fn reordered(
        &self,
        param: usize,
        groups: &[Group],
        orders: &[Vec<usize>],
        except: &[usize],
    ) -> Tensor<B, 1> {
        let mut value = self.values[param].clone();
        let [n] = value.dims();
        for (g, group) in groups.iter().enumerate() {
            if except.contains(&g) {
                continue;
            }
            for u in group.uses.iter().filter(|u| u.param == param) {
                let order: Vec<i64> = orders[g].iter().map(|&i| i as i64).collect();
                let order = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(order, [group.size]),
                    &value.device(),
                );
                value = self
                    .around(value, param, u.axis, group.size)
                    .select(1, order)
                    .reshape([n]);
            }
        }
        value
    }

    /// The flat vector with every group reordered by `orders` (their tied places follow
    /// the groups they are carried from).
    pub fn aligned(&self, groups: &[Group], orders: &[Vec<usize>]) -> Tensor<B, 1> {
        let orders = effective(groups, orders);
        let values = (0..self.values.len())
            .map(|p| self.reordered(p, groups, &orders, &[]))
            .collect();
        Tensor::cat(values, 0)
    }
}

/// The outcome of weight matching: per group, the order of `b`'s units that aligns them with
/// `a`'s (`orders[g][i]` is the unit of `b` that takes place `i`; whole orders, ties included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matched {
    pub orders: Vec<Vec<usize>>,
    pub sweeps: usize,
}

/// Coordinate descent over the groups in a seeded random order, at most `max_sweeps` sweeps.
pub(crate) fn weight_matching<B: Backend>(
    a: &Params<B>,
    b: &Params<B>,
    groups: &[Group],
    max_sweeps: usize,
    seed: u64,
) -> Result<Matched, String> {
    let mut orders: Vec<Vec<usize>> = groups.iter().map(|g| (0..g.size).collect()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut visit: Vec<usize> = (0..groups.len()).collect();
    let mut sweeps = 0;
    while sweeps < max_sweeps {
        sweeps += 1;
        visit.shuffle(&mut rng);
        let mut improved = false;
        for &g in &visit {
            // A tie's places follow another group: only the group's own units are assigned.
            let size = groups[g].size;
            let free: Vec<usize> = (0..size).filter(|&u| groups[g].free(u)).collect();
            if free.len() < 2 {
                continue;
            }
            let similarity = similarity(a, b, groups, &orders, g)?;
            let among: Vec<f64> = free
                .iter()
                .flat_map(|&i| free.iter().map(move |&j| (i, j)))
                .map(|(i, j)| similarity[i * size + j])
                .collect();
            let mut best = orders[g].clone();
            for (i, j) in assign(&among, free.len())?.into_iter().enumerate() {
                best[free[i]] = free[j];
            }
            let score = |order: &[usize]| -> f64 {
                free.iter().map(|&i| similarity[i * size + order[i]]).sum()
            };
            let (old, new) = (score(&orders[g]), score(&best));
            // The similarities are f32 sums: only a clear gain counts, so ties cannot cycle.
            if new > old + 1e-9 * (old.abs() + 1.0) {
                orders[g] = best;
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    Ok(Matched {
        orders: effective(groups, &orders),
        sweeps,
    })
}

/// `S[i][j]`, row-major: the inner product of `a`'s unit `i` with `b`'s unit `j` over every
/// parameter the group's units appear in (its own, and those of the streams that carry them),
/// with `b`'s other groups in their current order.
fn similarity<B: Backend>(
    a: &Params<B>,
    b: &Params<B>,
    groups: &[Group],
    orders: &[Vec<usize>],
    g: usize,
) -> Result<Vec<f64>, String> {
    let units = groups[g].size;
    let orders = effective(groups, orders);
    let by_unit = |p: Tensor<B, 3>| {
        let [before, _, rest] = p.dims();
        p.swap_dims(0, 1).reshape([units, before * rest])
    };
    let total = holders(groups, g)
        .into_iter()
        .flat_map(|(h, offset)| groups[h].uses.iter().map(move |u| (h, offset, u)))
        .map(|(h, offset, u)| {
            // The holder's units stay in `b`'s own order, so that its places of `g`'s units
            // are `b`'s units of `g`, unmoved.
            let size = groups[h].size;
            let ours = a
                .around(a.values[u.param].clone(), u.param, u.axis, size)
                .narrow(1, offset, units);
            let theirs = b.reordered(u.param, groups, &orders, &[g, h]);
            let theirs = b
                .around(theirs, u.param, u.axis, size)
                .narrow(1, offset, units);
            by_unit(ours).matmul(by_unit(theirs).transpose())
        })
        .reduce(|x, y| x + y)
        .ok_or("a permutable layer appears in no parameter")?;
    let values: Vec<f64> = total.into_data().iter::<f64>().collect();
    if values.iter().all(|v| v.is_finite()) {
        Ok(values)
    } else {
        Err("the endpoints' weights are not finite".into())
    }
}

/// The permutation maximising `Σ_i S[i][order[i]]`. Kuhn-Munkres needs exact arithmetic, so
/// the scores are scaled to integers, the largest to 2^40: far finer than their f32 precision.
fn assign(similarity: &[f64], units: usize) -> Result<Vec<usize>, String> {
    let largest = similarity.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if largest == 0.0 {
        return Ok((0..units).collect());
    }
    let scale = 2f64.powi(40) / largest;
    let weights: Vec<i64> = similarity
        .iter()
        .map(|v| (v * scale).round() as i64)
        .collect();
    let matrix = Matrix::from_vec(units, units, weights).map_err(|e| e.to_string())?;
    Ok(kuhn_munkres(&matrix).1)
}
