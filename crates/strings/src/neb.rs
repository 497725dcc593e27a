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
use levelset_models::landscape::cpu_backend;
use levelset_models::optim::OptimizerConfig;
use serde::{Deserialize, Serialize};

use crate::batches::{finite_losses, for_each_batch, reads_loss};
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
        bends: Vec::new(),
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
        // The forces are computed on the device from the step's energies; the host reads the
        // energies only to check them and to log (every step on the CPU, every few on a GPU).
        let on_cpu = cpu_backend::<B::InnerBackend>(&chain[0].device());
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
            let energies = Tensor::cat(along_chain, 0).inner();
            let read = if reads_loss(on_cpu, step, cycle.steps) {
                Some(finite_losses(energies.clone(), step)?)
            } else {
                None
            };
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
            let forces = nudged(
                positions,
                energies.clone(),
                gradient,
                self.config.spring,
                cycle.climbing,
            );
            let mut grads = GradientsParams::new();
            grads.register(knots.points.id, forces);
            knots = optimizer.step(lr, knots.clone(), grads);
            if self.config.spring.is_infinite() {
                // The climbing pivot is pinned where it is, the others spread evenly.
                let pinned = cycle
                    .climbing
                    .then(|| Tensor::from_inner(highest_pivot(energies.clone())));
                knots = knots.clone().redistributed(&ends[0], &ends[1], pinned);
            }
            taken = step + 1;
            progress.set_position(taken as u64);
            let Some(energies) = read else {
                return Ok(());
            };
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
/// without its component along the tangent, minus the spring force along it; with `climbing`,
/// the highest pivot (of equally high ones, the one the backend's `argmax` picks) instead gets
/// the gradient with its tangential component reversed. Computed on the device, with no
/// read-back.
///
/// `positions` are the chain's points `[pivots + 2, n]`, `energies` their losses on this
/// step's batch `[pivots + 2]`, `gradient` the pivots' loss gradients `[pivots, n]`.
fn nudged<B: Backend>(
    positions: Tensor<B, 2>,
    energies: Tensor<B, 1>,
    gradient: Tensor<B, 2>,
    spring: f64,
    climbing: bool,
) -> Tensor<B, 2> {
    let [count, _] = gradient.dims();
    let steps = positions.clone().narrow(0, 1, count + 1) - positions.narrow(0, 0, count + 1);
    let [ahead, behind] = tangent_weights(energies.clone());
    let column = |v: Tensor<B, 1>| v.unsqueeze_dim::<2>(1);
    let tangent = steps.clone().narrow(0, 1, count) * column(ahead)
        + steps.clone().narrow(0, 0, count) * column(behind);
    let norm = tangent
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-30);
    let tangent = tangent / norm;
    let parallel = (gradient.clone() * tangent.clone()).sum_dim(1); // [count, 1]
    let climber = if climbing {
        let pivots = energies.narrow(0, 1, count);
        let highest = pivots.clone().argmax(0).expand([count]);
        let index = Tensor::<B, 1, Int>::arange(0..count as i64, &pivots.device());
        column(index.equal(highest).float())
    } else {
        parallel.zeros_like()
    };
    // The climber's tangential component is reversed (counted twice) and feels no spring.
    let along = parallel * (climber.clone() + 1.0);
    let push = if spring.is_infinite() {
        along.zeros_like()
    } else {
        let lengths = steps.powi_scalar(2).sum_dim(1).sqrt(); // [count + 1, 1]
        let stretch = lengths.clone().narrow(0, 1, count) - lengths.narrow(0, 0, count);
        stretch * (climber.neg() + 1.0) * spring
    };
    gradient - tangent * (along + push)
}

/// The index among the pivots (endpoints excluded) of the highest of the chain's `energies`,
/// as [`nudged`] picks its climber.
fn highest_pivot<B: Backend>(energies: Tensor<B, 1>) -> Tensor<B, 1, Int> {
    let [len] = energies.dims();
    energies.narrow(0, 1, len - 2).argmax(0)
}

/// Weights `[ahead, behind]` of the step ahead and the step behind in each pivot's tangent
/// (Henkelman & Jónsson 2000), from the chain's `energies` `[pivots + 2]`: the uphill
/// neighbour's step alone on a slope, an energy-weighted mix at an extremum so the tangent
/// turns smoothly (the larger energy difference on the higher neighbour's step; both steps
/// alike when the three energies are equal).
fn tangent_weights<B: Backend>(energies: Tensor<B, 1>) -> [Tensor<B, 1>; 2] {
    let [len] = energies.dims();
    let count = len - 2;
    let behind = energies.clone().narrow(0, 0, count);
    let here = energies.clone().narrow(0, 1, count);
    let ahead = energies.narrow(0, 2, count);
    let up = (ahead.clone() - here.clone()).abs();
    let down = (behind.clone() - here.clone()).abs();
    let (large, small) = (up.clone().max_pair(down.clone()), up.min_pair(down));
    let ahead_higher = ahead.clone().greater(behind.clone());
    let level = large.clone().equal_elem(0.0);
    let rising = ahead
        .clone()
        .greater(here.clone())
        .bool_and(here.clone().greater(behind.clone()));
    let falling = ahead
        .lower(here.clone())
        .bool_and(here.clone().lower(behind));
    let (ones, zeros) = (here.ones_like(), here.zeros_like());
    let at_extremum = |if_ahead_higher: Tensor<B, 1>, otherwise: Tensor<B, 1>| {
        otherwise
            .mask_where(ahead_higher.clone(), if_ahead_higher)
            .mask_where(level.clone(), ones.clone())
    };
    [
        at_extremum(large.clone(), small.clone())
            .mask_where(rising.clone(), ones.clone())
            .mask_where(falling.clone(), zeros.clone()),
        at_extremum(small, large)
            .mask_where(rising, zeros)
            .mask_where(falling, ones.clone()),
    ]
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
/// constant is therefore written as [`crate::json_float`] writes it (the string "inf" when
/// infinite), and `null` (from files written before) reads as infinite too.
mod spring_constant {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        crate::json_float::serialize(value, serializer)
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
            Spring::Text(t) if crate::json_float::from_text(&t) == Some(f64::INFINITY) => {
                Ok(f64::INFINITY)
            }
            Spring::Null(()) => Ok(f64::INFINITY),
            Spring::Text(t) => Err(D::Error::custom(format!(
                "neb.spring must be a number or inf, got \"{t}\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use levelset_models::backend::{Compute, device};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// [`nudged`] as written on the host, pivot by pivot (Henkelman & Jónsson 2000), the
    /// reference for the device version.
    fn reference(
        positions: &[Vec<f32>],
        energies: &[f32],
        gradient: &[Vec<f32>],
        spring: f64,
        climbing: bool,
    ) -> Vec<Vec<f32>> {
        let count = gradient.len();
        let step = |i: usize| -> Vec<f32> {
            positions[i + 1]
                .iter()
                .zip(&positions[i])
                .map(|(a, b)| a - b)
                .collect()
        };
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let e = |i: usize| energies[i] as f64;
        // The first of equally high pivots, as argmax on the CPU backends.
        let climber = (1..=count).fold(1, |best, i| if e(i) > e(best) { i } else { best });
        (1..=count)
            .map(|i| {
                let (behind, here, ahead) = (e(i - 1), e(i), e(i + 1));
                let (w_ahead, w_behind) = if ahead > here && here > behind {
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
                };
                let (s_ahead, s_behind) = (step(i), step(i - 1));
                let tangent: Vec<f32> = s_ahead
                    .iter()
                    .zip(&s_behind)
                    .map(|(a, b)| a * w_ahead as f32 + b * w_behind as f32)
                    .collect();
                let n = norm(&tangent).max(1e-30);
                let tangent: Vec<f32> = tangent.iter().map(|t| t / n).collect();
                let climbs = climbing && climber == i;
                let parallel: f32 = gradient[i - 1]
                    .iter()
                    .zip(&tangent)
                    .map(|(g, t)| g * t)
                    .sum();
                let along = if climbs { 2.0 } else { 1.0 };
                let push = if climbs || spring.is_infinite() {
                    0.0
                } else {
                    spring as f32 * (norm(&s_ahead) - norm(&s_behind))
                };
                gradient[i - 1]
                    .iter()
                    .zip(&tangent)
                    .map(|(g, t)| g - t * (parallel * along + push))
                    .collect()
            })
            .collect()
    }

    fn matrix(rows: &[Vec<f32>]) -> Tensor<Compute, 2> {
        let n = rows[0].len();
        let flat: Vec<f32> = rows.concat();
        Tensor::from_data(TensorData::new(flat, [rows.len(), n]), &device())
    }

    /// The device forces equal the host reference on slopes, peaks, valleys, level stretches
    /// and ties, with and without a climber, with a finite and an infinite spring.
    #[test]
    fn the_device_forces_are_the_host_forces() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for case in 0..60 {
            let (count, n) = (1 + case % 5, 3 + case % 4);
            let mut random =
                |k| -> Vec<f32> { (0..k).map(|_| rng.random_range(-1.0..1.0)).collect() };
            let positions: Vec<Vec<f32>> = (0..count + 2).map(|_| random(n)).collect();
            let gradient: Vec<Vec<f32>> = (0..count).map(|_| random(n)).collect();
            // Energies from a few levels, so that ties and level stretches occur.
            let energies: Vec<f32> = random(count + 2)
                .iter()
                .map(|e| if case % 3 == 0 { (e * 2.0).round() } else { *e })
                .collect();
            for (spring, climbing) in [(0.5, false), (0.5, true), (f64::INFINITY, true)] {
                let expected = reference(&positions, &energies, &gradient, spring, climbing);
                let forces = nudged(
                    matrix(&positions),
                    Tensor::from_floats(energies.as_slice(), &device()),
                    matrix(&gradient),
                    spring,
                    climbing,
                );
                let got: Vec<f32> = forces.into_data().to_vec().unwrap();
                for (g, e) in got.iter().zip(expected.concat()) {
                    assert!(
                        (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "case {case}, spring {spring}, climbing {climbing}: {got:?} vs {expected:?}"
                    );
                }
                if climbing {
                    let chosen = highest_pivot(Tensor::<Compute, 1>::from_floats(
                        energies.as_slice(),
                        &device(),
                    ))
                    .into_scalar()
                    .elem::<i64>() as usize;
                    let top = energies[1..=count].iter().copied().fold(f32::MIN, f32::max);
                    assert_eq!(energies[chosen + 1], top, "case {case}");
                }
            }
        }
    }
}
