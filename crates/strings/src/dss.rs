//! Dynamic String Sampling (Freeman & Bruna, Algorithm 1, and the breadth-first variant of
//! the authors' code).

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use levelset_models::Landscape;
use levelset_models::flat::{flatten, lerp, load_flat};
use levelset_models::train::{TrainSettings, train_to_level};
use serde::{Deserialize, Serialize};

use crate::endpoints::{ConnectError, prepare};
use crate::evaluator::Evaluator;
use crate::path::{LengthOver, ModelPath, PathReport, SegmentCheck, Status};
use crate::seeds::mix;
use crate::sizes::{MAX_COUNT, at_most};

/// Where a new bead starts on a failing segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertAt {
    Midpoint,
    /// Where the segment's energy peaked on the check grid.
    Argmax,
}

/// The order failing segments are repaired in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Algorithm 1: recurse into each failing half before moving on.
    DepthFirst,
    /// The authors' code: rounds that train a bead in every failing segment, then re-check
    /// only the segments next to new beads.
    BreadthFirst,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DssConfig {
    /// Beads are trained until the energy is at most `alpha * level`.
    pub alpha: f64,
    /// A segment passes when its maximum on the check grid is at most `slack * level`.
    pub slack: f64,
    /// Check points per segment.
    pub grid: usize,
    pub insert_at: InsertAt,
    pub order: Order,
    /// Subdivision depth (or breadth-first rounds) after which a failing segment stops the
    /// pair as not connected.
    pub max_depth: usize,
    /// Most models a string may hold, endpoints included.
    pub max_beads: usize,
    /// Train a bead at the midpoint even when the straight line already passes (the authors'
    /// code does, so its minimum bead count is 3).
    pub first_bead_always: bool,
    #[serde(default)]
    pub length_over: LengthOver,
    /// Bead training: optimizer and step cap. Missing: the endpoints' training settings.
    #[serde(default)]
    pub bead: Option<TrainSettings>,
}

impl DssConfig {
    /// The polynomial tasks' settings (PAPER.md section 2 table).
    pub fn polynomial() -> Self {
        Self {
            alpha: 0.95,
            slack: 1.1,
            grid: 100,
            insert_at: InsertAt::Midpoint,
            order: Order::BreadthFirst,
            max_depth: 10,
            max_beads: 1024,
            first_bead_always: true,
            length_over: LengthOver::Weights,
            bead: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(format!("dss.alpha must be in (0, 1], got {}", self.alpha));
        }
        if !(self.slack >= 1.0 && self.slack.is_finite()) {
            return Err(format!("dss.slack must be >= 1, got {}", self.slack));
        }
        if self.grid < 2 {
            return Err(format!("dss.grid must be at least 2, got {}", self.grid));
        }
        at_most("dss.grid", self.grid, MAX_COUNT)?;
        at_most("dss.max_beads", self.max_beads, MAX_COUNT)?;
        at_most("dss.max_depth", self.max_depth, MAX_COUNT)?;
        if self.max_beads < 3 {
            return Err(format!(
                "dss.max_beads must be at least 3, got {}",
                self.max_beads
            ));
        }
        if let Some(bead) = &self.bead {
            bead.validate().map_err(|e| format!("dss.bead: {e}"))?;
        }
        Ok(())
    }
}

/// Connects `a` and `b` inside the level set `{energy <= level}`.
///
/// An invalid config and endpoint problems (architecture, identical endpoints, energy above
/// the level) are errors, as for every method; everything that can
/// go wrong while connecting (a bead that misses its target, a NaN) ends the path with
/// [`Status::Failed`] and its reason, so a sweep can record it and go on.
#[allow(clippy::too_many_arguments)]
pub fn connect_dss<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    a: Tensor<B::InnerBackend, 1>,
    b: Tensor<B::InnerBackend, 1>,
    level: f64,
    config: &DssConfig,
    endpoint_training: &TrainSettings,
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
    let mut string = Dss {
        evaluator: &setup.evaluator,
        config,
        bead_training: config.bead.as_ref().unwrap_or(endpoint_training),
        level,
        seed,
        progress,
        beads: vec![a, b],
        bead_energies: setup.ends.to_vec(),
        // The root segment is the straight line, already checked.
        segments: vec![setup.linear],
        bead_steps: 0,
        trained: 0,
    };
    let status = match config.order {
        Order::DepthFirst => string.depth_first(),
        Order::BreadthFirst => string.breadth_first(),
    };
    let path = ModelPath {
        beads: string.beads,
        bead_energies: string.bead_energies,
        segments: string.segments,
        status,
        bends: Vec::new(),
    };
    let report = setup.report(
        &path,
        "dss",
        config.length_over,
        config.grid,
        string.bead_steps,
    );
    Ok((path, report))
}

/// A string under construction.
struct Dss<'a, B: AutodiffBackend, L: Landscape<B>> {
    evaluator: &'a Evaluator<'a, B, L>,
    config: &'a DssConfig,
    bead_training: &'a TrainSettings,
    level: f64,
    seed: u64,
    progress: &'a ProgressBar,
    beads: Vec<Tensor<B::InnerBackend, 1>>,
    bead_energies: Vec<f64>,
    segments: Vec<SegmentCheck>,
    bead_steps: usize,
    trained: u64,
}

impl<B: AutodiffBackend, L: Landscape<B>> Dss<'_, B, L> {
    /// Checks the segment between beads `i` and `i + 1`.
    fn check(&self, i: usize, depth: usize) -> SegmentCheck {
        self.evaluator.check(
            &self.beads[i],
            &self.beads[i + 1],
            self.config.grid,
            self.config.slack * self.level,
            depth,
        )
    }

    /// Trains a bead in segment `i` and replaces it by the two checked halves.
    fn split(&mut self, i: usize) -> Result<(), String> {
        if self.beads.len() >= self.config.max_beads {
            return Err(format!(
                "bead cap reached ({} models)",
                self.config.max_beads
            ));
        }
        let segment = self.segments[i];
        let t = match self.config.insert_at {
            InsertAt::Midpoint => 0.5,
            InsertAt::Argmax => segment.argmax_t,
        };
        let start = lerp(&self.beads[i], &self.beads[i + 1], t);
        let landscape = self.evaluator.landscape;
        let model = load_flat(landscape.init(0), Tensor::from_inner(start));
        let target = self.config.alpha * self.level;
        self.trained += 1;
        let bead_seed = mix(self.seed, self.trained);
        let trained = train_to_level(
            landscape,
            model,
            target,
            self.bead_training,
            bead_seed,
            self.progress,
        )
        .map_err(|e| format!("bead {} (segment {i}, t = {t}): {e}", self.trained))?;
        self.bead_steps += trained.steps;
        tracing::debug!(
            bead = self.trained,
            segment = i,
            t,
            depth = segment.depth + 1,
            steps = trained.steps,
            energy = trained.energy,
            "bead trained"
        );
        self.beads.insert(i + 1, flatten(&trained.model.valid()));
        self.bead_energies.insert(i + 1, trained.energy);
        let depth = segment.depth + 1;
        self.segments[i] = self.check(i, depth);
        let right = self.check(i + 1, depth);
        self.segments.insert(i + 1, right);
        Ok(())
    }

    fn failing(&self) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&i| !self.segments[i].passed)
            .collect()
    }

    fn not_connected(&self, reason: String) -> Status {
        let failing = self.failing();
        let depth = failing
            .iter()
            .map(|&i| self.segments[i].depth)
            .max()
            .unwrap_or(0);
        Status::NotConnected {
            reason,
            failing_segments: failing,
            depth,
        }
    }

    fn finish(&self) -> Status {
        if self.failing().is_empty() {
            Status::Connected
        } else {
            self.not_connected(format!(
                "segments still above {} x level at depth {}",
                self.config.slack, self.config.max_depth
            ))
        }
    }

    fn must_split_root(&self) -> bool {
        self.config.first_bead_always || !self.segments[0].passed
    }

    fn depth_first(&mut self) -> Status {
        if !self.must_split_root() {
            return Status::Connected;
        }
        match self.recurse(0) {
            Ok(_) => self.finish(),
            Err(Stop::Cap(reason)) => self.not_connected(reason),
            Err(Stop::Failed(reason)) => Status::Failed { reason },
        }
    }

    /// Splits segment `i` and recurses into failing halves; returns how many segments the
    /// original one became.
    fn recurse(&mut self, i: usize) -> Result<usize, Stop> {
        if self.segments[i].depth >= self.config.max_depth {
            return Ok(1);
        }
        self.split(i).map_err(|e| self.stop(e))?;
        let left = if self.segments[i].passed {
            1
        } else {
            self.recurse(i)?
        };
        let right = if self.segments[i + left].passed {
            1
        } else {
            self.recurse(i + left)?
        };
        Ok(left + right)
    }

    fn breadth_first(&mut self) -> Status {
        let mut to_split = if self.must_split_root() {
            vec![0]
        } else {
            Vec::new()
        };
        for _round in 0..self.config.max_depth {
            if to_split.is_empty() {
                break;
            }
            // Right to left, so inserting beads does not move segments still to be split.
            for &i in to_split.iter().rev() {
                if let Err(e) = self.split(i) {
                    return match self.stop(e) {
                        Stop::Cap(reason) => self.not_connected(reason),
                        Stop::Failed(reason) => Status::Failed { reason },
                    };
                }
            }
            to_split = self.failing();
        }
        self.finish()
    }

    fn stop(&self, reason: String) -> Stop {
        if self.beads.len() >= self.config.max_beads {
            Stop::Cap(reason)
        } else {
            Stop::Failed(reason)
        }
    }
}

/// Why a string stopped growing early.
enum Stop {
    /// The bead cap: a legitimate "not connected".
    Cap(String),
    /// A bead could not be trained.
    Failed(String),
}
