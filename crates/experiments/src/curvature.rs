//! The curvature along a path: the Hessian's top eigenvalues and trace at each of its points,
//! as `levelset hessian` measures them at a checkpoint, and the summary a report or a sweep's
//! row keeps of them (`connect --hessian`, a sweep whose config has a `[hessian]`).

use anyhow::Result;
use burn::prelude::Tensor;
use levelset_models::Landscape;
use levelset_models::backend::{Compute, Train, device};
use levelset_strings::{HessianConfig, HessianReport, hessian};
use serde::{Deserialize, Serialize};

/// The curvature at one point of a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointCurvature {
    /// The point's index along the path (a connect run's bead checkpoint `beads/<index>`).
    pub index: usize,
    /// Its position along the path by length, 0 at the first endpoint and 1 at the second.
    pub t: f64,
    /// The config's energy there, as the path method measured it.
    #[serde(with = "levelset_strings::json_float")]
    pub energy: f64,
    pub hessian: HessianReport,
}

/// Measures point `index` of a path, `bead` its flat parameters.
pub fn measure_point<L: Landscape<Train>>(
    landscape: &L,
    bead: &[f32],
    (index, t, energy): (usize, f64, f64),
    settings: &HessianConfig,
) -> Result<PointCurvature> {
    let point = Tensor::<Compute, 1>::from_data(bead, &device());
    let report = hessian(landscape, point, settings)
        .map_err(|e| anyhow::anyhow!("the Hessian at point {index} of the path: {e}"))?;
    Ok(PointCurvature {
        index,
        t,
        energy,
        hessian: report,
    })
}

/// Per point, in path order: its position, the top eigenvalue and the trace (none where not
/// measured or not finite).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvatureSummary {
    pub t: Vec<f64>,
    pub top_eigenvalue: Vec<Option<f64>>,
    pub trace: Vec<Option<f64>>,
}

impl CurvatureSummary {
    pub fn of(points: &[PointCurvature]) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        CurvatureSummary {
            t: points.iter().map(|p| p.t).collect(),
            top_eigenvalue: points
                .iter()
                .map(|p| {
                    p.hessian
                        .top_eigenvalues
                        .first()
                        .and_then(|e| finite(e.value))
                })
                .collect(),
            trace: points
                .iter()
                .map(|p| p.hessian.trace.as_ref().and_then(|t| finite(t.estimate)))
                .collect(),
        }
    }
}
