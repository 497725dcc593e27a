//! `levelset connect`: a string between two checkpoints (or two freshly trained endpoints).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::prelude::Tensor;
use levelset_models::EvalModel;
use levelset_models::Landscape;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::checkpoint;
use levelset_models::flat::{flatten, num_params, unflatten};
use levelset_models::outdir::OutputLock;
use levelset_strings::{Curve, CurveKind, HessianConfig, PathReport, align};

use crate::commands::connect_hessian;
use crate::commands::connect_resume::{self, RunSettings, SavedString};
use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::pair::{
    MethodName, Provenance, connect_pair, flat_of, load_checkpoint, load_model, pair_seeds,
    save_model, train_endpoint, warn_if_unresolved,
};

pub struct ConnectArgs {
    pub config: ExperimentConfig,
    /// Checkpoint directories of the endpoints; both or neither.
    pub endpoints: Option<(PathBuf, PathBuf)>,
    pub level: Option<f64>,
    pub seed: u64,
    pub out: PathBuf,
    pub method: MethodName,
    /// Weight-match the second endpoint to the first before connecting.
    pub align: bool,
    /// Finish an interrupted run in `out` from its saved path.
    pub resume: bool,
    /// Measure the Hessian at every point of the path (`connect --hessian`, `[hessian]`).
    pub hessian: Option<HessianConfig>,
}

fn beads_dir(out: &Path) -> PathBuf {
    out.join("beads")
}

fn bends_dir(out: &Path) -> PathBuf {
    out.join("bends")
}

/// A finished run as its folder keeps it: the report and its points, for the methods that
/// save their beads (DSS and NEB) every bead's checkpoint in path order, the endpoints first
/// and last; for a curve its points of control (`bends/`, the endpoints first and last), from
/// which its samples are rebuilt.
pub struct SavedPath {
    pub report: PathReport,
    pub points: SavedPoints,
    /// A curve's samples, evenly spaced in `t`: the report's unless
    /// [`SavedPath::resampled`] chose another count.
    samples: usize,
}

/// Where a finished run's points come from.
pub enum SavedPoints {
    /// One checkpoint a point, in path order.
    Beads(Vec<PathBuf>),
    /// A curve of this kind through these checkpoints (coefficient order); its points are
    /// its samples, evenly spaced in `t`.
    Curve {
        kind: CurveKind,
        bends: Vec<PathBuf>,
    },
}

/// The checkpoints named by their index (0000, 0001, ...) in `dir`, in index order.
fn indexed_checkpoints(dir: &Path, what: &str) -> Result<Vec<PathBuf>> {
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let index = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<usize>().ok());
        let Some(index) = index else {
            bail!(
                "{}: not a {what} checkpoint (connect names them by their index, 0000, 0001, \
                 ...)",
                path.display()
            );
        };
        found.push((index, path));
    }
    found.sort();
    if found.iter().enumerate().any(|(k, (index, _))| k != *index) {
        bail!("{}: the {what}s' indices have gaps", dir.display());
    }
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

impl SavedPath {
    /// Reads the run in `run`.
    pub fn read(run: &Path) -> Result<SavedPath> {
        let report_path = run.join("report.json");
        let text = std::fs::read(&report_path).map_err(|e| {
            let unfinished = if connect_resume::exists(run) {
                "; it holds an unfinished one: finish it with `connect --resume`"
            } else {
                ""
            };
            anyhow::anyhow!(
                "{}: {e}: {} holds no finished connect run{unfinished}",
                report_path.display(),
                run.display()
            )
        })?;
        let report: PathReport = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a connect report", report_path.display()))?;
        if report.beads < 2 || report.bead_energies.len() != report.beads {
            bail!(
                "{}: a path of {} points with {} energies; a path runs between two endpoints, \
                 an energy a point",
                report_path.display(),
                report.beads,
                report.bead_energies.len()
            );
        }
        let curve = [CurveKind::Bezier, CurveKind::Polychain]
            .into_iter()
            .find(|kind| kind.name() == report.method);
        let points = match curve {
            Some(kind) => {
                let dir = bends_dir(run);
                if !dir.exists() {
                    bail!(
                        "{} is a {} curve without its points of control ({} is missing: it was \
                         connected by a levelset that did not save them); connect it again",
                        run.display(),
                        report.method,
                        dir.display()
                    );
                }
                let bends = indexed_checkpoints(&dir, "bend")?;
                if bends.len() < 2 {
                    bail!(
                        "{}: {} points of control; a curve has its two endpoints and its bends",
                        dir.display(),
                        bends.len()
                    );
                }
                // Reports written before the count was kept cannot say; they read as before.
                if let Some(count) = report.control_points
                    && count != bends.len()
                {
                    bail!(
                        "{} holds {} points of control, its report {}: the run folder is \
                         incomplete or was changed",
                        dir.display(),
                        bends.len(),
                        count
                    );
                }
                SavedPoints::Curve { kind, bends }
            }
            None => {
                let dir = beads_dir(run);
                let beads = indexed_checkpoints(&dir, "bead")?;
                if beads.len() != report.beads {
                    bail!(
                        "{} holds {} bead checkpoints, its report {} beads: the run folder is \
                         incomplete or was changed",
                        dir.display(),
                        beads.len(),
                        report.beads
                    );
                }
                SavedPoints::Beads(beads)
            }
        };
        let samples = report.beads;
        Ok(SavedPath {
            report,
            points,
            samples,
        })
    }

    /// The same curve sampled at `samples` points evenly spaced in `t` instead of the
    /// report's; refused for a string or band, whose points are its beads.
    pub fn resampled(self, samples: usize) -> Result<SavedPath> {
        if !matches!(self.points, SavedPoints::Curve { .. }) {
            bail!(
                "--points samples a curve; this {} path's points are its {} beads",
                self.report.method,
                self.report.beads
            );
        }
        if samples < 2 {
            bail!("--points {samples}: a curve's samples include its two endpoints (at least 2)");
        }
        Ok(SavedPath { samples, ..self })
    }

    /// The energies the report measured at the points, in path order; `None` for the
    /// samples of a curve resampled at other `t` than the report's.
    pub fn reported_energies(&self) -> Option<&[f64]> {
        (self.samples == self.report.beads).then_some(self.report.bead_energies.as_slice())
    }

    /// A curve's points of control (the endpoints first and last); empty for a string or
    /// band.
    pub fn control_points(&self) -> &[PathBuf] {
        match &self.points {
            SavedPoints::Beads(_) => &[],
            SavedPoints::Curve { bends, .. } => bends,
        }
    }

    /// Each point's position parameter: a curve's `t` (its samples are evenly spaced in
    /// `t`), `None` for a string's beads.
    pub fn curve_t(&self, k: usize) -> Option<f64> {
        match self.points {
            SavedPoints::Beads(_) => None,
            SavedPoints::Curve { .. } => Some(k as f64 / (self.samples - 1) as f64),
        }
    }

    /// What point `k` is, for a report: its checkpoint, or the curve at its `t`.
    pub fn describe(&self, k: usize) -> serde_json::Value {
        match &self.points {
            SavedPoints::Beads(beads) => serde_json::json!({ "checkpoint": beads[k] }),
            SavedPoints::Curve { .. } => serde_json::json!({ "curve_t": self.curve_t(k) }),
        }
    }

    /// Every point's model, in path order: the bead checkpoints as saved (their running
    /// statistics with them), or the curve's samples rebuilt from its points of control,
    /// with the first endpoint's running statistics.
    pub fn models<L: Landscape<Train>>(
        &self,
        landscape: &L,
        config: &str,
    ) -> Result<Vec<EvalModel<Train, L>>> {
        match &self.points {
            SavedPoints::Beads(beads) => load_models(landscape, beads, config),
            SavedPoints::Curve { kind, bends } => {
                let (template, samples) = self.curve_samples(landscape, *kind, bends, config)?;
                Ok(samples
                    .into_iter()
                    .map(|flat| unflatten(template.clone(), flat))
                    .collect())
            }
        }
    }

    /// Every point's flat parameters, in path order (see [`SavedPath::models`]).
    pub fn flats<L: Landscape<Train>>(
        &self,
        landscape: &L,
        config: &str,
    ) -> Result<Vec<Tensor<Compute, 1>>> {
        match &self.points {
            SavedPoints::Beads(beads) => Ok(load_models(landscape, beads, config)?
                .iter()
                .map(flatten)
                .collect()),
            SavedPoints::Curve { kind, bends } => {
                Ok(self.curve_samples(landscape, *kind, bends, config)?.1)
            }
        }
    }

    /// A curve's samples at its evenly spaced `t`, rebuilt from its points of control, and the
    /// first endpoint's model (a template carrying its running statistics).
    fn curve_samples<L: Landscape<Train>>(
        &self,
        landscape: &L,
        kind: CurveKind,
        bends: &[PathBuf],
        config: &str,
    ) -> Result<CurveSamples<L>> {
        let models = load_models(landscape, bends, config)?;
        let flats: Vec<Tensor<Compute, 1>> = models.iter().map(flatten).collect();
        let last = flats.len() - 1;
        let curve = Curve {
            kind,
            first: flats[0].clone(),
            controls: Tensor::stack(flats[1..last].to_vec(), 0),
            last: flats[last].clone(),
        };
        let ts: Vec<f64> = (0..self.samples)
            .map(|k| self.curve_t(k).expect("a curve"))
            .collect();
        let samples = curve
            .points(&ts)
            .iter_dim(0)
            .map(|row| row.squeeze_dim::<1>(0))
            .collect();
        let template = models
            .into_iter()
            .next()
            .expect("a curve has its endpoints");
        Ok((template, samples))
    }
}

/// A curve's first endpoint (carrying its running statistics) and its samples.
type CurveSamples<L> = (EvalModel<Train, L>, Vec<Tensor<Compute, 1>>);

/// The checkpoints in `dirs`, loaded for `config`, as evaluation models.
fn load_models<L: Landscape<Train>>(
    landscape: &L,
    dirs: &[PathBuf],
    config: &str,
) -> Result<Vec<EvalModel<Train, L>>> {
    dirs.iter()
        .map(|dir| Ok(load_model(landscape, dir, config)?.0.valid()))
        .collect()
}

pub fn run(args: ConnectArgs) -> Result<()> {
    if args.hessian.is_some() && args.method.samples_a_curve() {
        bail!(
            "--hessian measures the Hessian at every bead of a DSS string or NEB band as it is \
             found; a {} curve's points are its samples, rebuilt from the points of control \
             it saves: connect it, then measure them with `levelset hessian --path RUN`",
            args.method.name()
        );
    }
    // Fails early when the config lacks the method's section.
    args.method.method(&args.config)?;
    // Refuse before any training: writing a second path into the folder of a first one
    // would overwrite its report and mix the two strings' beads.
    let report = args.out.join("report.json");
    if report.exists() {
        bail!(
            "{} already holds a path ({} exists); choose another --out",
            args.out.display(),
            report.display()
        );
    }
    let unfinished = [connect_resume::json_path(&args.out), beads_dir(&args.out)]
        .into_iter()
        .find(|p| p.exists());
    if let Some(existing) = &unfinished
        && !args.resume
    {
        bail!(
            "{} holds an unfinished path ({} exists); pass --resume to finish it, or choose \
             another --out",
            args.out.display(),
            existing.display()
        );
    }
    if args.resume && unfinished.is_some() && !connect_resume::exists(&args.out) {
        bail!(
            "cannot resume in {}: it holds beads but no saved path (string.json); remove \
             {} to start over",
            args.out.display(),
            beads_dir(&args.out).display()
        );
    }
    let _lock = OutputLock::acquire(&args.out)?;
    with_landscape(&args.config.clone(), args)?
}

/// `report.json`: the path's report, its keys in their order, and with `--hessian` the
/// curvature's summary after them.
#[derive(serde::Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    report: &'a PathReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    hessian: Option<connect_hessian::ReportCurvature>,
}

/// Writes `run/report.json` (atomically) and returns its path.
pub fn write_report(
    run: &Path,
    report: &PathReport,
    hessian: Option<connect_hessian::ReportCurvature>,
) -> Result<PathBuf> {
    let path = run.join("report.json");
    let written = Written { report, hessian };
    write_atomic(&path, &serde_json::to_vec_pretty(&written)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl ConnectArgs {
    fn settings(&self) -> RunSettings {
        RunSettings {
            config: self.config.clone(),
            endpoints: self.endpoints.clone(),
            level: self.level,
            seed: self.seed,
            method: format!("{:?}", self.method),
            align: self.align,
        }
    }
}

impl WithLandscape for ConnectArgs {
    type Output = Result<()>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<()> {
        let saved = if self.resume && connect_resume::exists(&self.out) {
            let saves_beads = !self.method.samples_a_curve();
            let template = landscape.init(0).valid();
            let saved = SavedString::load(
                &self.out,
                &self.settings(),
                num_params(&template),
                saves_beads,
            )?;
            self.recertify(&landscape, &saved)?;
            println!(
                "resuming in {}: its path was computed by an earlier run and measured again; \
                 writing what remains",
                self.out.display()
            );
            saved
        } else {
            let saved = self.compute(&landscape)?;
            saved.save(&self.out)?;
            saved
        };
        let (level, report) = (saved.level, saved.report.clone());

        let beads_dir = beads_dir(&self.out);
        let beads = saved
            .beads
            .iter()
            .map(|flat| Tensor::<Compute, 1>::from_data(flat.as_slice(), &device()));
        self.save_points(&landscape, &beads_dir, beads, &saved.bead_energies, level)?;
        let hessian = match &self.hessian {
            Some(settings) => Some(connect_hessian::summary(&connect_hessian::measure(
                &landscape,
                &self.out,
                &saved.beads,
                &saved.bead_energies,
                settings,
            )?)),
            None => None,
        };
        let report_path = write_report(&self.out, &report, hessian)?;
        SavedString::remove(&self.out);
        println!(
            "{}: {} at {} <= {level}\n  beads {}, normalized length {:.4} (over {} parameters)\n  \
             max {} along the string {:.5}, on the straight line {:.5}\n  \
             {} {} steps, {} energy evaluations, {:.1} s\n  report {}{}",
            self.config.name,
            report.status.describe(),
            report.energy,
            report.beads,
            report.normalized_length,
            report.length_over,
            report.energy,
            report.max_energy,
            report.linear_barrier,
            report.bead_steps,
            if self.method == MethodName::Dss {
                "bead-training"
            } else {
                "optimizer"
            },
            report.energy_evaluations,
            report.wall_seconds,
            report_path.display(),
            if !saved.beads.is_empty() {
                format!(", beads in {}", beads_dir.display())
            } else {
                String::new()
            }
        );
        Ok(())
    }
}

impl ConnectArgs {
    /// Measures a saved path again before a resumed run reports it: its beads' energies and
    /// segments, its status and lengths (for a curve, that its status follows from its own
    /// energies: its samples are rebuilt only when a finished run is read back).
    fn recertify<L: Landscape<Train>>(&self, landscape: &L, saved: &SavedString) -> Result<()> {
        let limit = self.method.method(&self.config)?.slack() * saved.level;
        let result = if self.method.samples_a_curve() {
            levelset_strings::consistent(&saved.report, limit)
        } else {
            let beads = saved
                .beads
                .iter()
                .map(|b| Tensor::<Compute, 1>::from_data(b.as_slice(), &device()))
                .collect();
            levelset_strings::recertify::<Train, L>(landscape, beads, &saved.report, limit)
        };
        result.map_err(|reason| {
            anyhow::anyhow!(
                "cannot resume in {}: the saved path does not hold up when measured again \
                 ({reason}); remove {} and string.f32 to compute the path again",
                self.out.display(),
                connect_resume::json_path(&self.out).display()
            )
        })
    }

    /// Saves the points of a path as checkpoints `dir/0000`, `dir/0001`, ..., each with its
    /// energy; points a resumed run finds complete (the sidecar is written last) stay as
    /// they are.
    fn save_points<L: Landscape<Train>>(
        &self,
        landscape: &L,
        dir: &Path,
        points: impl Iterator<Item = Tensor<Compute, 1>>,
        energies: &[f64],
        level: f64,
    ) -> Result<()> {
        let template = landscape.init(0).valid();
        for (k, (flat, &energy)) in points.zip(energies).enumerate() {
            let dir = dir.join(format!("{k:04}"));
            if checkpoint::read_meta(&dir).is_ok() {
                continue;
            }
            let made = Provenance {
                seed: self.seed,
                energy,
                level: Some(level),
                steps: 0,
            };
            save_model(
                landscape,
                &self.config,
                unflatten(template.clone(), flat),
                made,
                &dir,
            )?;
        }
        Ok(())
    }

    /// Saves a curve's points of control as checkpoints `bends/0000`, ..., the endpoints
    /// first and last, each with its energy.
    fn save_bends<L: Landscape<Train>>(
        &self,
        landscape: &L,
        bends: &[Tensor<Compute, 1>],
        level: f64,
    ) -> Result<()> {
        let template = landscape.init(0).valid();
        let energies = landscape.energies(&template, Tensor::stack(bends.to_vec(), 0));
        let dir = bends_dir(&self.out);
        // A run that stopped while writing them left no string.json: this one starts over.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the earlier {}", dir.display()))?;
        }
        self.save_points(landscape, &dir, bends.iter().cloned(), &energies, level)
    }

    /// Trains or loads the endpoints, aligns them if asked, and computes the path.
    fn compute<L: Landscape<Train>>(&self, landscape: &L) -> Result<SavedString> {
        let (a, b, level) = match &self.endpoints {
            Some((pa, pb)) => {
                let (a, meta_a) = load_checkpoint(landscape, pa)?;
                let (b, meta_b) = load_checkpoint(landscape, pb)?;
                let level = match (self.level, meta_a.level, meta_b.level) {
                    (Some(l), _, _) => l,
                    (None, Some(la), Some(lb)) => la.max(lb),
                    _ => bail!("--level is required: the checkpoints record no training level"),
                };
                warn_if_unresolved(landscape, &[level]);
                (a, b, level)
            }
            None => {
                let Some(level) = self.level else {
                    bail!("--level is required when connect trains its own endpoints");
                };
                warn_if_unresolved(landscape, &[level]);
                let (sa, sb) = pair_seeds(self.seed, 0);
                let a = train_endpoint(landscape, &self.config, level, sa)?;
                let b = train_endpoint(landscape, &self.config, level, sb)?;
                (flat_of(&a.model), flat_of(&b.model), level)
            }
        };
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let b = if self.align {
            let config = self.config.align.clone().unwrap_or_default();
            let aligned = align::<Train, _>(landscape, &a, &b, &config, self.seed)
                .map_err(|e| anyhow::anyhow!("--align: {e}"))?;
            let path = self.out.join("align.json");
            write_atomic(&path, &serde_json::to_vec_pretty(&aligned.report)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "aligned: straight-line barrier {:.5} before, {:.5} after weight matching ({} sweeps); {}",
                aligned.report.barrier_before,
                aligned.report.barrier_after,
                aligned.report.sweeps,
                path.display()
            );
            aligned.b
        } else {
            b
        };
        let method = self.method.method(&self.config)?;
        let (path, report) = connect_pair(landscape, &method, a, b, level, self.seed)?;

        // A curve's beads are its dense samples (61 models by default): the report holds its
        // energy profile, and its points of control, saved here before the run's string.json
        // (so a resumed run finds them complete), rebuild every sample.
        let beads: Vec<Vec<f32>> = if self.method.samples_a_curve() {
            self.save_bends(landscape, &path.bends, level)?;
            Vec::new()
        } else {
            path.beads
                .iter()
                .map(|b| b.to_data().to_vec().expect("f32 parameters"))
                .collect()
        };
        Ok(SavedString {
            settings: self.settings(),
            level,
            report,
            bead_energies: path.bead_energies[..beads.len()].to_vec(),
            num_params: beads.first().map_or(0, Vec::len),
            beads,
        })
    }
}
