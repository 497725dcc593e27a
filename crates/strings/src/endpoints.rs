//! What every path method checks before it starts: a valid config and two endpoints of one
//! architecture, both finite and inside the region a connected path may cross.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::{Energy, Landscape};

use crate::evaluator::Evaluator;
use crate::path::{LengthOver, ModelPath, PathReport, SegmentCheck};
use crate::report::{Run, report};

/// Why a path method could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    #[error("the endpoints have {a} and {b} parameters: they are not the same architecture")]
    ParameterCount { a: usize, b: usize },
    #[error(
        "endpoint {which} has {energy} = {value}, above the level {level} times the slack \
         {slack} ({limit})",
        limit = level * slack
    )]
    AboveLevel {
        which: char,
        energy: Energy,
        value: f64,
        level: f64,
        slack: f64,
    },
    #[error("endpoint {which} has {energy} = {value}, not a finite number")]
    NotFinite {
        which: char,
        energy: Energy,
        value: f64,
    },
    #[error("the two endpoints are the same model (distance 0): there is no path to measure")]
    SameModel,
    #[error("invalid config: {0}")]
    Config(String),
}

/// The energies of `a` and `b`, or why they cannot be connected at `level`. An endpoint may
/// lie above the level up to `slack * level`, the most a connected path may reach: endpoints
/// stopped by their training loss (the authors' polynomial rule) sit a little above or below
/// the level in the energy, and every point of the path is held to the same `slack * level`.
fn check_endpoints<B: AutodiffBackend, L: Landscape<B>>(
    evaluator: &Evaluator<'_, B, L>,
    a: &Tensor<B::InnerBackend, 1>,
    b: &Tensor<B::InnerBackend, 1>,
    level: f64,
    slack: f64,
) -> Result<[f64; 2], ConnectError> {
    let (na, nb) = (a.dims()[0], b.dims()[0]);
    if na != nb {
        return Err(ConnectError::ParameterCount { a: na, b: nb });
    }
    // Lengths are normalized by the endpoints' distance: at zero it has no value.
    let gap: f64 = (a.clone() - b.clone()).abs().max().into_scalar().elem();
    if gap == 0.0 {
        return Err(ConnectError::SameModel);
    }
    let energy = evaluator.landscape.energy_kind();
    let mut energies = [0.0; 2];
    for ((which, flat), slot) in [('A', a), ('B', b)].into_iter().zip(&mut energies) {
        let value = evaluator.energy(flat);
        if !value.is_finite() {
            return Err(ConnectError::NotFinite {
                which,
                energy,
                value,
            });
        }
        if value > slack * level {
            return Err(ConnectError::AboveLevel {
                which,
                energy,
                value,
                level,
                slack,
            });
        }
        *slot = value;
    }
    Ok(energies)
}

/// What a trained-path method knows before it trains.
pub(crate) struct Prepared<'a, B: AutodiffBackend, L: Landscape<B>> {
    /// When the method was called.
    pub start: Instant,
    pub evaluator: Evaluator<'a, B, L>,
    /// The endpoints' energies.
    pub ends: [f64; 2],
    pub level: f64,
    /// `slack * level`: the highest energy a connected path may reach.
    pub limit: f64,
    /// The straight line between the endpoints, checked on the method's grid.
    pub linear: SegmentCheck,
}

/// Refuses an invalid config (`valid`, its validation) and unusable endpoints (of other
/// architectures, identical, not finite or above `slack * level`), then checks the straight line on
/// `grid` points against `slack * level`.
pub(crate) fn prepare<'a, B: AutodiffBackend, L: Landscape<B>>(
    landscape: &'a L,
    valid: Result<(), String>,
    a: &Tensor<B::InnerBackend, 1>,
    b: &Tensor<B::InnerBackend, 1>,
    level: f64,
    slack: f64,
    grid: usize,
) -> Result<Prepared<'a, B, L>, ConnectError> {
    let start = Instant::now();
    valid.map_err(ConnectError::Config)?;
    let evaluator = Evaluator::new(landscape);
    landscape.set_endpoints(a, b);
    let ends = check_endpoints(&evaluator, a, b, level, slack)?;
    let limit = slack * level;
    let linear = evaluator.check(a, b, grid, limit, 0);
    Ok(Prepared {
        start,
        evaluator,
        ends,
        level,
        limit,
        linear,
    })
}

impl<B: AutodiffBackend, L: Landscape<B>> Prepared<'_, B, L> {
    /// The report of the finished `path`, checked on `grid` points per segment after `steps`
    /// optimizer steps.
    pub fn report(
        &self,
        path: &ModelPath<B::InnerBackend>,
        method: &'static str,
        length_over: LengthOver,
        grid: usize,
        steps: usize,
    ) -> PathReport {
        report(
            &self.evaluator,
            path,
            Run {
                method,
                level: self.level,
                length_over,
                linear_barrier: self.linear.max_energy,
                grid,
                steps,
                start: self.start,
            },
        )
    }
}

/// A slack setting: at least 1 and finite (`prefix` names the method's section).
pub(crate) fn validate_slack(prefix: &str, slack: f64) -> Result<(), String> {
    if slack >= 1.0 && slack.is_finite() {
        Ok(())
    } else {
        Err(format!("{prefix}.slack must be >= 1, got {slack}"))
    }
}
