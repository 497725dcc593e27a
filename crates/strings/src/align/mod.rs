//! Aligning the hidden units of one endpoint with the other's before connecting them
//! (Ainsworth et al. 2022, "weight matching"): the second endpoint is replaced by the same
//! function with its units permuted, which separates the curvature that permutation symmetry
//! causes from the landscape's own. Reports the barrier on the straight line before and after.

mod layout;
mod matching;

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::Landscape;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::evaluator::Evaluator;
use matching::{Params, weight_matching};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignConfig {
    /// Most sweeps over the layers; matching stops after a sweep in which no layer improves.
    #[serde(default = "default_sweeps")]
    pub max_sweeps: usize,
    /// The barriers are measured on the straight line at `t = k / grid`, `k = 0..=grid`.
    #[serde(default = "default_grid")]
    pub grid: usize,
}

fn default_sweeps() -> usize {
    100
}

fn default_grid() -> usize {
    20
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            max_sweeps: default_sweeps(),
            grid: default_grid(),
        }
    }
}

impl AlignConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_sweeps == 0 {
            return Err("align.max_sweeps must be at least 1".into());
        }
        if self.grid < 2 {
            return Err(format!("align.grid must be at least 2, got {}", self.grid));
        }
        Ok(())
    }
}

/// What alignment did, as written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignReport {
    /// Sweeps over the layers until none improved (or the cap).
    pub sweeps: usize,
    /// Units (or channels) per permutable layer, in network order.
    pub units: Vec<usize>,
    /// How many of them changed place.
    pub moved: Vec<usize>,
    /// `max_t F((1-t) a + t b) - ((1-t) F(a) + t F(b))` on the grid, before and after.
    pub barrier_before: f64,
    pub barrier_after: f64,
    /// `max_t F((1-t) a + t b)` on the grid, endpoints included, before and after.
    pub linear_max_before: f64,
    pub linear_max_after: f64,
    pub grid: usize,
    pub energy_evaluations: usize,
    pub wall_seconds: f64,
    /// How a batch-normalized net's running statistics were set at every point (`[bn]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn: Option<levelset_models::statistics::BnConfig>,
}

/// The second endpoint aligned with the first.
#[derive(Debug, Clone)]
pub struct Aligned<B: Backend> {
    pub b: Tensor<B, 1>,
    /// Per permutable layer: `orders[l][i]` is the unit of the original `b` now at place `i`.
    pub orders: Vec<Vec<usize>>,
    pub report: AlignReport,
}

/// Permutes the hidden units of `b` to match `a` (feed-forward nets: MLPs, convnets, residual
/// nets, whose streams are permuted whole). A BatchNorm net's running statistics are not
/// coordinates: the barriers are measured with the statistics its `[bn]` section says, the
/// endpoints' recomputed from their (aligned) coordinates.
pub fn align<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    a: &Tensor<B::InnerBackend, 1>,
    b: &Tensor<B::InnerBackend, 1>,
    config: &AlignConfig,
    seed: u64,
) -> Result<Aligned<B::InnerBackend>, String> {
    let start = Instant::now();
    config.validate()?;
    let evaluator = Evaluator::new(landscape);
    let shapes = layout::shapes(evaluator.template());
    let expected: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let (na, nb) = (a.dims()[0], b.dims()[0]);
    if na != expected || nb != expected {
        return Err(format!(
            "the endpoints have {na} and {nb} parameters, the network {expected}"
        ));
    }
    let groups = layout::groups(&landscape.architecture(), &shapes)?;
    let theirs = Params::split(b, &shapes);
    let matched = weight_matching(
        &Params::split(a, &shapes),
        &theirs,
        &groups,
        config.max_sweeps,
        seed,
    )?;
    let aligned = theirs.aligned(&groups, &matched.orders);
    landscape.set_endpoints(a, b);
    let (linear_max_before, barrier_before) = line(&evaluator, a, b, config.grid);
    landscape.set_endpoints(a, &aligned);
    let (linear_max_after, barrier_after) = line(&evaluator, a, &aligned, config.grid);
    let report = AlignReport {
        sweeps: matched.sweeps,
        units: groups.iter().map(|g| g.size).collect(),
        moved: matched
            .orders
            .iter()
            .map(|o| o.iter().enumerate().filter(|(i, j)| i != *j).count())
            .collect(),
        barrier_before,
        barrier_after,
        linear_max_before,
        linear_max_after,
        grid: config.grid,
        energy_evaluations: evaluator.evaluations(),
        wall_seconds: start.elapsed().as_secs_f64(),
        bn: landscape.statistics(),
    };
    Ok(Aligned {
        b: aligned,
        orders: matched.orders,
        report,
    })
}

/// `flat` with its hidden units reordered: unit `i` of permutable layer `l` becomes what unit
/// `orders[l][i]` was. The network computes the same function at another point of parameter
/// space (Appendix E's permuted pairs).
pub fn permute<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    flat: &Tensor<B::InnerBackend, 1>,
    orders: &[Vec<usize>],
) -> Result<Tensor<B::InnerBackend, 1>, String> {
    let (shapes, groups) = layout_of(landscape)?;
    if orders.len() != groups.len() {
        return Err(format!(
            "{} orders for a network with {} permutable layers",
            orders.len(),
            groups.len()
        ));
    }
    for (l, (order, group)) in orders.iter().zip(&groups).enumerate() {
        let mut seen = vec![false; group.size];
        for &u in order {
            if u >= group.size || std::mem::replace(&mut seen[u], true) {
                return Err(format!(
                    "order of layer {l} is not a permutation of its {} units: {order:?}",
                    group.size
                ));
            }
        }
        if order.len() != group.size {
            return Err(format!(
                "order of layer {l} lists {} of its {} units",
                order.len(),
                group.size
            ));
        }
    }
    // A stream's units carried from a narrower one by a zero-padded shortcut follow that
    // one's order: they may be given as they are, or as that order makes them.
    let whole = matching::effective(&groups, orders);
    for (l, ((order, whole), group)) in orders.iter().zip(&whole).zip(&groups).enumerate() {
        for (place, (&u, &w)) in order.iter().zip(whole).enumerate() {
            let ok = if group.free(place) {
                group.free(u)
            } else {
                u == place || u == w
            };
            if !ok {
                let tie = group.tie.expect("a group with carried units");
                return Err(format!(
                    "order of layer {l}: its units {}..{} are {} carried by a zero-padded \
                     shortcut and follow that order; the others permute among themselves \
                     (place {place} takes unit {u})",
                    tie.offset,
                    tie.offset + tie.len,
                    match tie.to {
                        Some(to) => format!("layer {to}'s units"),
                        None => "units that keep their order".into(),
                    }
                ));
            }
        }
    }
    Ok(Params::split(flat, &shapes).aligned(&groups, orders))
}

/// A reordering of the network's units drawn uniformly among those that keep its function
/// (Appendix E's permuted copies): every group's own units shuffled, a stream's units carried
/// from a narrower one by a zero-padded shortcut following that one's. Orders for [`permute`].
pub fn random_orders<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    seed: u64,
) -> Result<Vec<Vec<usize>>, String> {
    let (_, groups) = layout_of(landscape)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let own: Vec<Vec<usize>> = groups
        .iter()
        .map(|group| {
            let free: Vec<usize> = (0..group.size).filter(|&u| group.free(u)).collect();
            let mut drawn = free.clone();
            drawn.shuffle(&mut rng);
            let mut order: Vec<usize> = (0..group.size).collect();
            for (&place, unit) in free.iter().zip(drawn) {
                order[place] = unit;
            }
            order
        })
        .collect();
    Ok(matching::effective(&groups, &own))
}

/// Units per permutable layer of the landscape's network.
pub fn permutable_units<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
) -> Result<Vec<usize>, String> {
    Ok(layout_of(landscape)?.1.iter().map(|g| g.size).collect())
}

/// The parameter shapes of the landscape's network and its permutable groups.
fn layout_of<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
) -> Result<(Vec<Vec<usize>>, Vec<layout::Group>), String> {
    let shapes = layout::shapes(Evaluator::new(landscape).template());
    let groups = layout::groups(&landscape.architecture(), &shapes)?;
    Ok((shapes, groups))
}

/// The highest energy on the straight line `a -> b` and its barrier: the most it rises
/// above the linear interpolation of the endpoints' energies.
fn line<B: AutodiffBackend, L: Landscape<B>>(
    evaluator: &Evaluator<'_, B, L>,
    a: &Tensor<B::InnerBackend, 1>,
    b: &Tensor<B::InnerBackend, 1>,
    grid: usize,
) -> (f64, f64) {
    let (ea, eb) = (evaluator.energy(a), evaluator.energy(b));
    evaluator
        .segment(a, b, grid)
        .into_iter()
        .fold((ea.max(eb), 0.0), |(highest, barrier), (t, e)| {
            (highest.max(e), barrier.max(e - (ea + t * (eb - ea))))
        })
}
