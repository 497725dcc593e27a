//! `connect --hessian`: the Hessian's top eigenvalues and trace at every point of a connected
//! path (DSS beads, NEB pivots, the endpoints first and last), as `levelset hessian` measures
//! them at a checkpoint. Is the path sharper or flatter than its endpoints? `hessian.json` in
//! the run's folder is rewritten after every point, so a stopped measurement continues
//! (`connect --resume --hessian`), and `hessian.{svg,png}` draws it against the position
//! along the path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use levelset_models::Landscape;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_strings::path::positions;
use levelset_strings::{HessianConfig, HessianReport};
use serde::{Deserialize, Serialize};

use crate::curvature::{CurvatureSummary, PointCurvature, measure_point};
use crate::output::figures::{Figure, LEVELSET_COLOR, PAPER_COLOR, Series, draw};
use crate::output::progress::count_bar;
use crate::resumable::read_json;

/// The curvature along a path, as `hessian.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathCurvature {
    pub backend: String,
    pub settings: HessianConfig,
    /// The points measured so far, in path order.
    pub points: Vec<PointCurvature>,
}

pub fn json_path(run: &Path) -> PathBuf {
    run.join("hessian.json")
}

/// Measures the curvature at every point of the path `beads` (flat parameters in path
/// order, with their `energies`) in the run folder `run`, continuing the points an earlier
/// measurement of the same settings recorded there, and draws it.
pub fn measure<L: Landscape<Train>>(
    landscape: &L,
    run: &Path,
    beads: &[Vec<f32>],
    energies: &[f64],
    settings: &HessianConfig,
) -> Result<PathCurvature> {
    if beads.len() < 2 {
        bail!(
            "--hessian needs the points of the path, and this path has fewer than two: measure \
             a checkpoint with `levelset hessian`"
        );
    }
    let path = json_path(run);
    let mut curvature = PathCurvature {
        backend: BACKEND_NAME.to_string(),
        settings: settings.clone(),
        points: Vec::new(),
    };
    let along = positions(beads);
    if let Some(earlier) = read_json::<PathCurvature>(
        &path,
        "a levelset path curvature",
        "remove it to measure the path again",
    )? {
        check_earlier(&path, &earlier, &curvature, &along)?;
        curvature.points = earlier.points;
    }
    let bar = count_bar("hessian", "points", beads.len() as u64);
    bar.set_position(curvature.points.len() as u64);
    for k in curvature.points.len()..beads.len() {
        let measured = measure_point(landscape, &beads[k], (k, along[k], energies[k]), settings)
            .with_context(|| run.display().to_string())?;
        curvature.points.push(measured);
        let mut text = serde_json::to_vec_pretty(&curvature)?;
        text.push(b'\n');
        write_atomic(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    draw_curvature(&curvature, &run.join("hessian"))?;
    Ok(curvature)
}

/// What `report.json` says of the curvature: the file, and per point (in path order) its
/// position, top eigenvalue and trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportCurvature {
    pub file: String,
    #[serde(flatten)]
    pub summary: CurvatureSummary,
}

pub fn summary(curvature: &PathCurvature) -> ReportCurvature {
    ReportCurvature {
        file: "hessian.json".into(),
        summary: CurvatureSummary::of(&curvature.points),
    }
}

/// Refuses to continue a measurement in `path` made with other settings, on another backend
/// or of another path (its points' positions differ).
fn check_earlier(
    path: &Path,
    earlier: &PathCurvature,
    now: &PathCurvature,
    along: &[f64],
) -> Result<()> {
    if earlier.settings != now.settings || earlier.backend != now.backend {
        bail!(
            "{} was measured with other settings ({:?} on {}, now {:?} on {}); remove it to \
             measure again with these",
            path.display(),
            earlier.settings,
            earlier.backend,
            now.settings,
            now.backend
        );
    }
    let fits = earlier.points.len() <= along.len()
        && earlier
            .points
            .iter()
            .enumerate()
            .all(|(k, p)| p.index == k && p.t == along[k]);
    if !fits {
        bail!(
            "{}: its points are not those of this run's path of {} points (edited, or from \
             another run); remove it to measure again",
            path.display(),
            along.len()
        );
    }
    Ok(())
}

/// `stem.{svg,png}`: the top eigenvalue (and the trace, when measured) against the position
/// along the path.
fn draw_curvature(curvature: &PathCurvature, stem: &Path) -> Result<()> {
    let series =
        |label: &str, color, value: &dyn Fn(&HessianReport) -> Option<(f64, f64)>| Series {
            label: label.to_string(),
            points: curvature
                .points
                .iter()
                .filter_map(|p| value(&p.hessian).map(|(v, se)| (p.t, v, Some(se))))
                .collect(),
            color,
        };
    let mut all = vec![series("top eigenvalue", LEVELSET_COLOR, &|h| {
        h.top_eigenvalues.first().map(|e| (e.value, e.residual))
    })];
    if curvature.settings.probes > 0 {
        all.push(series("trace", PAPER_COLOR, &|h| {
            h.trace.as_ref().map(|t| (t.estimate, t.standard_error))
        }));
    }
    all.retain(|s| !s.points.is_empty());
    let figure = Figure {
        title: "Curvature along the path".into(),
        x_label: "position along the path (by length)".into(),
        y_label: "Hessian of the training loss".into(),
        log_x: false,
        series: all,
    };
    draw(&figure, stem)
}
