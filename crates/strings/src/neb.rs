//! Nudged elastic band with AutoNEB's pivot insertion (Draxler et al. 2018).
//!
//! A chain of pivots between the fixed endpoints is relaxed by a Burn optimizer. Each pivot
//! moves along its loss gradient with the component along the chain's tangent removed (the
//! improved tangent of Henkelman & Jónsson 2000), plus a spring force along the tangent that
//! keeps the pivots apart; with an infinite spring constant the springs are replaced by
//! redistributing the pivots evenly along the chain after every step (the string method).
//! Before a cycle, new pivots can be inserted in the segments whose energy rises most above
//! their two pivots. A climbing pivot (Henkelman et al. 2000) feels no spring and climbs along
//! the tangent, so it converges to the saddle point.
//!
//! The resulting [`ModelPath`]'s beads are the endpoints and the pivots, and every segment between
//! them is checked on a grid as in DSS.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use levelset_models::Landscape;
use levelset_models::flat::{lerp, unflatten};
use levelset_models::heartbeat::Heartbeat;
use levelset_models::optim::OptimizerConfig;
use serde::{Deserialize, Serialize};

use crate::batches::{finite_losses, for_each_batch};
use crate::endpoints::{ConnectError, Prepared, prepare, validate_slack};
use crate::knots::{Knots, row};
use crate::path::{LengthOver, ModelPath, PathReport, SegmentCheck, Status};
use crate::report::verdict;
use crate::schedule::validate_optimizer;
use crate::seeds::mix;
use crate::sizes::{MAX_COUNT, at_most};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NebConfig {
    /// Pivots between the endpoints at the start, evenly spaced on the straight line.
    pub pivots: usize,
    /// Spring constant along the tangent. `inf` drops the springs and keeps the pivots evenly
    /// spaced along the chain instead.
    #[serde(with = "spring_constant")]
    pub spring: f64,
    pub optimizer: OptimizerConfig,
    /// Relaxation cycles, run in order.
    pub cycles: Vec<NebCycle>,
    /// Check points per segment between neighbouring pivots: `t = k / grid`, `k = 1..grid`.
    pub grid: usize,
    /// A segment gets a new pivot only when its energy rises more than this above both of
    /// its pivots.
    #[serde(default)]
    pub min_rise: f64,
    /// The chain is connected when every pivot and check point is at most `slack * level`.
    pub slack: f64,
    #[serde(default)]
    pub length_over: LengthOver,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NebCycle {
    /// Optimizer steps, one training batch each.
    pub steps: usize,
    /// The cycle's learning rate (default: the optimizer's).
    #[serde(default)]
    pub lr: Option<f64>,
    /// Pivots inserted before the cycle's steps, at most one per segment.
    #[serde(default)]
    pub insert: usize,
    /// Let the highest pivot climb to the saddle.
    #[serde(default)]
    pub climbing: bool,
}

impl NebConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.pivots == 0 && self.cycles.iter().all(|c| c.insert == 0) {
            return Err("neb.pivots must be at least 1 when no cycle inserts pivots".into());
        }
        if self.spring.is_nan() || self.spring < 0.0 {
            return Err(format!(
                "neb.spring must be >= 0 (or inf), got {}",
                self.spring
            ));
        }
        validate_optimizer(&self.optimizer, "neb")?;
        if self.cycles.is_empty() {
            return Err("neb.cycles must list at least one cycle".into());
        }
        for (i, cycle) in self.cycles.iter().enumerate() {
            if let Some(lr) = cycle.lr
                && !(lr > 0.0 && lr.is_finite())
            {
                return Err(format!(
                    "neb.cycles[{i}].lr must be a positive number, got {lr}"
                ));
            }
        }
        if self.grid < 2 {
            return Err(format!("neb.grid must be at least 2, got {}", self.grid));
        }
        at_most("neb.grid", self.grid, MAX_COUNT)?;
        at_most("neb.pivots", self.pivots, MAX_COUNT)?;
        for (i, cycle) in self.cycles.iter().enumerate() {
            at_most(&format!("neb.cycles[{i}].insert"), cycle.insert, MAX_COUNT)?;
        }
        if !(self.min_rise >= 0.0 && self.min_rise.is_finite()) {
            return Err(format!("neb.min_rise must be >= 0, got {}", self.min_rise));
        }
        validate_slack("neb", self.slack)
    }
}

/// Relaxes an elastic band from `a` to `b` and checks it against `{energy <= level}`.
///
/// An invalid config and endpoint problems are errors; a training loss that stops being
/// finite ends the path with [`Status::Failed`].
pub fn connect_neb<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    a: Tensor<B::InnerBackend, 1>,
    b: Tensor<B::InnerBackend, 1>,
    level: f64,
    config: &NebConfig,
    seed: u64,
    progress: &ProgressBar,
) -> Result<(ModelPath<B::InnerBackend>, PathReport), ConnectError> {
    let setup = prepare(
        landscape,
        config.validate(),
        &a,
        &b,
        level,
        config.slack,
        config.grid,
    )?;

    let band = Band {
        setup: &setup,
        config,
    };
    let mut chain: Vec<_> = (0..=config.pivots + 1)
        .map(|k| lerp(&a, &b, k as f64 / (config.pivots + 1) as f64))
        .collect();
    let mut steps = 0;
    let mut failure = None;
    for (c, cycle) in config.cycles.iter().enumerate() {
        if cycle.insert > 0 {
            let (energies, segments) = band.evaluate(&chain);
            insert_pivots(
                &mut chain,
                &energies,
                &segments,
                cycle.insert,
                config.min_rise,
            );
        }
        let relaxed = band.relax(chain, cycle, mix(seed, c as u64), progress);
        chain = relaxed.chain;
        steps += relaxed.steps;
        if let Err(reason) = relaxed.outcome {
            failure = Some(format!("cycle {c}: {reason}"));
            break;
        }
    }
    let (bead_energies, segments) = band.evaluate(&chain);
    let status = match failure {
        Some(reason) => Status::Failed { reason },
        None => verdict(&bead_energies, &segments, setup.limit),
    };
    let path = ModelPath {
        beads: chain,
        bead_energies,
        segments,
        status,
    };
    let report = setup.report(&path, "neb", config.length_over, config.grid, steps);
    Ok((path, report))
}

struct Band<'a, B: AutodiffBackend, L: Landscape<B>> {
    setup: &'a Prepared<'a, B, L>,
    config: &'a NebConfig,
}

/// A chain of flat vectors, endpoints included.
type Chain<B> = Vec<Tensor<<B as AutodiffBackend>::InnerBackend, 1>>;

/// A cycle's result: the chain as it stands, the steps taken and, when it stopped early, why.
struct Relaxed<B: AutodiffBackend> {
    chain: Chain<B>,
    steps: usize,
    outcome: Result<(), String>,
}

impl<B: AutodiffBackend, L: Landscape<B>> Band<'_, B, L> {
    /// Energies of every bead and the checks of every segment.
    fn evaluate(&self, chain: &Chain<B>) -> (Vec<f64>, Vec<SegmentCheck>) {
        let last = chain.len() - 1;
        let mut energies = vec![self.setup.ends[0]];
        if last > 1 {
            let pivots = Tensor::stack(chain[1..last].to_vec(), 0);
            energies.extend(self.setup.evaluator.energies(pivots));
        }
        energies.push(self.setup.ends[1]);
        let segments = chain
            .windows(2)
            .map(|w| {
                self.setup
                    .evaluator
                    .check(&w[0], &w[1], self.config.grid, self.setup.limit, 0)
            })
            .collect();
        (energies, segments)
    }

    /// Runs one cycle's steps on the pivots.
    fn relax(
        &self,
        chain: Chain<B>,
        cycle: &NebCycle,
        seed: u64,
        progress: &ProgressBar,
    ) -> Relaxed<B> {
        let last = chain.len() - 1;
        if last < 2 || cycle.steps == 0 {
            return Relaxed {
                chain,
                steps: 0,
                outcome: Ok(()),
            };
        }
        let landscape = self.setup.evaluator.landscape;
        let lift = |t: &Tensor<B::InnerBackend, 1>| Tensor::<B, 1>::from_inner(t.clone());
        let ends = [lift(&chain[0]), lift(&chain[last])];
        let mut knots = Knots::<B>::new(chain[1..last].iter().map(lift).collect());
        let mut optimizer = self.config.optimizer.init::<B, Knots<B>>();
        let lr = cycle.lr.unwrap_or(self.config.optimizer.learning_rate(0));
        let template = landscape.init(0);
        progress.set_length(cycle.steps as u64);
        progress.set_position(0);
        let mut heartbeat = Heartbeat::default();
        let mut taken = 0;
        let outcome = for_each_batch(landscape, seed, cycle.steps, |step, batch, carry| {
            let mut loss_at = |flat: Tensor<B, 1>| {
                landscape.loss(&unflatten(template.clone(), flat), batch.clone(), carry)
            };
            let pivots = knots.points.val();
            let losses: Vec<_> = (0..last - 1).map(|k| loss_at(row(&pivots, k))).collect();
            let total = Tensor::cat(losses.clone(), 0).sum();
            let along_chain = [loss_at(ends[0].clone())]
                .into_iter()
                .chain(losses.into_iter().map(|l| l.detach()))
                .chain([loss_at(ends[1].clone())])
                .collect();
            let energies = finite_losses(Tensor::cat(along_chain, 0), step)?;
            let gradient = knots
                .points
                .grad(&total.backward())
                .ok_or("the pivots received no gradient")?;
            let positions = Tensor::cat(
                vec![
                    ends[0].clone().inner().unsqueeze::<2>(),
                    pivots.inner(),
                    ends[1].clone().inner().unsqueeze::<2>(),
                ],
                0,
            );
            let climber = cycle.climbing.then(|| highest_pivot(&energies));
            let forces = nudged(positions, &energies, gradient, self.config.spring, climber);
            let mut grads = GradientsParams::new();
            grads.register(knots.points.id, forces);
            knots = optimizer.step(lr, knots.clone(), grads);
            if self.config.spring.is_infinite() {
                let pinned = climber.map(|i| i - 1);
                knots = knots.clone().redistributed(&ends[0], &ends[1], pinned);
            }
            taken = step + 1;
            progress.set_position(taken as u64);
            if heartbeat.due() {
                let highest = energies.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                tracing::info!(
                    step = taken,
                    pivots = last - 1,
                    highest,
                    "relaxing the band"
                );
            }
            Ok(())
        });
        Relaxed {
            chain: [chain[0].clone()]
                .into_iter()
                .chain(knots.valid().rows())
                .chain([chain[last].clone()])
                .collect(),
            steps: taken,
            outcome,
        }
    }
}

/// What the optimizer minimises along for each pivot (minus the NEB force): the loss gradient
/// without its component along the tangent, minus the spring force along it; the climbing
/// pivot (an index into the chain) instead gets the gradient with its tangential component
/// reversed.
///
/// `positions` are the chain's points `[pivots + 2, n]`, `energies` their losses on this
/// step's batch, `gradient` the pivots' loss gradients `[pivots, n]`.
fn nudged<B: Backend>(
    positions: Tensor<B, 2>,
    energies: &[f64],
    gradient: Tensor<B, 2>,
    spring: f64,
    climber: Option<usize>,
) -> Tensor<B, 2> {
    let [count, _] = gradient.dims();
    let device = gradient.device();
    let steps = positions.clone().narrow(0, 1, count + 1) - positions.narrow(0, 0, count + 1);
    let lengths: Vec<f64> = steps
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .into_data()
        .iter::<f64>()
        .collect();
    let (mut ahead, mut behind, mut along, mut push) = (vec![], vec![], vec![], vec![]);
    for i in 1..=count {
        let (w_ahead, w_behind) = tangent_weights(energies[i - 1], energies[i], energies[i + 1]);
        ahead.push(w_ahead as f32);
        behind.push(w_behind as f32);
        let climbs = climber == Some(i);
        along.push(if climbs { 2.0 } else { 1.0 });
        let spring_force = if climbs || spring.is_infinite() {
            0.0
        } else {
            spring * (lengths[i] - lengths[i - 1])
        };
        push.push(spring_force as f32);
    }
    let column = |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [count, 1]), &device);
    let tangent = steps.clone().narrow(0, 1, count) * column(ahead)
        + steps.narrow(0, 0, count) * column(behind);
    let norm = tangent
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-30);
    let tangent = tangent / norm;
    let parallel = (gradient.clone() * tangent.clone()).sum_dim(1);
    gradient - tangent * (parallel * column(along) + column(push))
}

/// The chain index of the pivot with the highest energy (endpoints excluded).
fn highest_pivot(energies: &[f64]) -> usize {
    (1..energies.len() - 1)
        .max_by(|&i, &j| energies[i].total_cmp(&energies[j]))
        .unwrap_or(1)
}

/// Weights of the step ahead and the step behind in a pivot's tangent (Henkelman & Jónsson
/// 2000): the uphill neighbour's step alone on a slope, an energy-weighted mix at an extremum
/// so the tangent turns smoothly.
fn tangent_weights(behind: f64, here: f64, ahead: f64) -> (f64, f64) {
    if ahead > here && here > behind {
        (1.0, 0.0)
    } else if ahead < here && here < behind {
        (0.0, 1.0)
    } else {
        let (up, down) = ((ahead - here).abs(), (behind - here).abs());
        let (large, small) = (up.max(down), up.min(down));
        if large == 0.0 {
            (1.0, 1.0)
        } else if ahead > behind {
            (large, small)
        } else {
            (small, large)
        }
    }
}

/// Inserts up to `count` pivots, one per segment, at the energy maximum of the segments that
/// rise most (by more than `min_rise`) above both of their pivots.
fn insert_pivots<B: Backend>(
    chain: &mut Vec<Tensor<B, 1>>,
    energies: &[f64],
    segments: &[SegmentCheck],
    count: usize,
    min_rise: f64,
) {
    let mut rising: Vec<(usize, f64)> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.max_energy - energies[i].max(energies[i + 1])))
        .filter(|&(_, rise)| rise > min_rise)
        .collect();
    rising.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    rising.truncate(count);
    // Right to left, so earlier insertions do not move the segments still to be split.
    rising.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
    for (i, _) in rising {
        let point = lerp(&chain[i], &chain[i + 1], segments[i].argmax_t);
        chain.insert(i + 1, point);
    }
}

/// JSON has no infinity: serde_json writes `inf` as `null`, which then fails to read back (a
/// resumed sweep compares its config with the one stored in `results.json`). The spring
/// constant is therefore written as the string "inf" when infinite, and `null` (from files
/// written before) reads as infinite too.
mod spring_constant {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_infinite() && *value > 0.0 {
            serializer.serialize_str("inf")
        } else {
            serializer.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spring {
            Number(f64),
            Text(String),
            Null(()),
        }
        match Spring::deserialize(deserializer)? {
            Spring::Number(k) => Ok(k),
            Spring::Text(t) if t == "inf" => Ok(f64::INFINITY),
            Spring::Null(()) => Ok(f64::INFINITY),
            Spring::Text(t) => Err(D::Error::custom(format!(
                "neb.spring must be a number or inf, got \"{t}\""
            ))),
        }
    }
}
