//! One entry point for every path method: a [`Method`] with its settings, run by
//! [`connect_with`] on the same endpoints and producing the same [`ModelPath`] and report.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use levelset_models::Landscape;
use levelset_models::train::TrainSettings;

use crate::curve::{CurveConfig, connect_curve};
use crate::dss::{DssConfig, connect_dss};
use crate::endpoints::ConnectError;
use crate::neb::{NebConfig, connect_neb};
use crate::path::{ModelPath, PathReport};

/// A path method and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Dynamic String Sampling (the paper); beads train with `config.bead`, else with the
    /// endpoints' own settings.
    Dss {
        config: DssConfig,
        endpoint_training: TrainSettings,
    },
    /// A trained Bezier curve or polygonal chain (Garipov et al. 2018), as `config.kind`.
    Curve(CurveConfig),
    /// Nudged elastic band with AutoNEB insertion (Draxler et al. 2018).
    Neb(NebConfig),
}

impl Method {
    /// What one unit of `progress` counts: a trained bead, or an optimizer step of the path.
    pub fn progress_unit(&self) -> &'static str {
        match self {
            Method::Dss { .. } => "bead",
            Method::Curve(_) | Method::Neb(_) => "path",
        }
    }

    /// The settings' own check, as the method makes it before it starts.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Method::Dss { config, .. } => config.validate(),
            Method::Curve(config) => config.validate(),
            Method::Neb(config) => config.validate(),
        }
    }

    /// Points the method checks the straight line between its endpoints on (a curve checks
    /// it at its own samples' spacing).
    pub fn line_grid(&self) -> usize {
        match self {
            Method::Dss { config, .. } => config.grid,
            Method::Curve(config) => config.eval_points - 1,
            Method::Neb(config) => config.grid,
        }
    }

    /// The path stays within `slack * level`: the limit its every point is checked against.
    pub fn slack(&self) -> f64 {
        match self {
            Method::Dss { config, .. } => config.slack,
            Method::Curve(config) => config.slack,
            Method::Neb(config) => config.slack,
        }
    }
}

/// Connects `a` and `b` inside the level set `{energy <= level}` with `method`. Every
/// method refuses an invalid config and unusable endpoints the same way, before any work.
pub fn connect_with<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    a: Tensor<B::InnerBackend, 1>,
    b: Tensor<B::InnerBackend, 1>,
    level: f64,
    method: &Method,
    seed: u64,
    progress: &ProgressBar,
) -> Result<(ModelPath<B::InnerBackend>, PathReport), ConnectError> {
    match method {
        Method::Dss {
            config,
            endpoint_training,
        } => connect_dss(
            landscape,
            a,
            b,
            level,
            config,
            endpoint_training,
            seed,
            progress,
        ),
        Method::Curve(config) => connect_curve(landscape, a, b, level, config, seed, progress),
        Method::Neb(config) => connect_neb(landscape, a, b, level, config, seed, progress),
    }
}
