//! `levelset floor`: how low a task's training gets. Each seed trains for a fixed budget of
//! steps with the config's optimizer, and its training curve (the energy at every check) is
//! kept; the floor is the lowest energy each seed reached, summarized over the seeds. Sweeps
//! towards the floor pick their levels from it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use levelset_models::Landscape;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Train};
use levelset_models::outdir::OutputLock;
use levelset_models::train::{TrainError, train_to_levels_observed};
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::landscapes::{WithLandscape, with_landscape};
use crate::output::progress::steps_bar;
use crate::output::tables::{mean_se, plus_minus};

pub struct FloorArgs {
    pub config: ExperimentConfig,
    /// Seeds `0..seeds` are trained.
    pub seeds: u64,
    /// Steps per seed (the budget).
    pub steps: usize,
    pub out: PathBuf,
}

/// One seed's training curve and the lowest energy on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedFloor {
    pub seed: u64,
    pub best: f64,
    /// The step of the first check at `best`.
    pub best_step: usize,
    pub last: f64,
    /// (steps, energy) at every check, the untrained model first.
    pub curve: Vec<(usize, f64)>,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloorResults {
    pub levelset_version: String,
    pub backend: String,
    pub config: ExperimentConfig,
    pub steps: usize,
    pub seeds: Vec<SeedFloor>,
    /// Mean and standard error of the seeds' lowest energies, and the lowest of them.
    pub floor_mean: Option<f64>,
    pub floor_se: Option<f64>,
    pub floor_min: Option<f64>,
}

/// Config sections a floor measurement does not depend on.
const PATH_SECTIONS: [&str; 7] = ["name", "sweep", "dss", "curve", "neb", "compare", "width"];

pub fn results_path(out: &Path) -> PathBuf {
    out.join("floor.json")
}

pub fn run(args: FloorArgs) -> Result<FloorResults> {
    if args.seeds == 0 || args.steps == 0 {
        bail!("--seeds and --steps must be at least 1");
    }
    let _lock = OutputLock::acquire(&args.out)?;
    with_landscape(&args.config.clone(), args)?
}

/// Seeds finished by an earlier run with the same config and budget.
fn previous_seeds(args: &FloorArgs) -> Result<Vec<SeedFloor>> {
    let path = results_path(&args.out);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let previous: FloorResults =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    // Only what trains matters: the sweep's levels and the path methods' settings may change
    // once the floor is known.
    let mut changed = previous.config.differences(&args.config);
    changed.retain(|key| {
        !PATH_SECTIONS
            .iter()
            .any(|section| key == section || key.starts_with(&format!("{section}.")))
    });
    if !changed.is_empty() || previous.steps != args.steps {
        bail!(
            "{} was produced by a different run (differs in {}); resume needs the same config \
             and --steps, or choose another --out",
            path.display(),
            if changed.is_empty() {
                "--steps".to_string()
            } else {
                changed.join(", ")
            }
        );
    }
    if previous.backend != BACKEND_NAME {
        bail!(
            "{} was measured on the {} backend; resuming it on {BACKEND_NAME} would mix two \
             backends' numbers in one floor: rerun on {}, or choose another --out",
            path.display(),
            previous.backend,
            previous.backend
        );
    }
    // The finished seeds are reported as they are read: each must be what a run writes.
    let mut seen = std::collections::HashSet::new();
    for seed in &previous.seeds {
        if !seen.insert(seed.seed) {
            bail!("{}: seed {} appears twice", path.display(), seed.seed);
        }
        seed.check(args.steps).map_err(|e| {
            anyhow::anyhow!(
                "{}: seed {}: {e}; remove the file to measure again",
                path.display(),
                seed.seed
            )
        })?;
    }
    Ok(previous.seeds)
}

/// The lowest energy of a (non-empty) curve and the step it is first reached at.
fn lowest(curve: &[(usize, f64)]) -> (usize, f64) {
    curve
        .iter()
        .copied()
        .reduce(|a, b| if b.1 < a.1 { b } else { a })
        .expect("a curve holds the untrained model's check at least")
}

impl SeedFloor {
    /// Checks that the seed's summary is its curve's: `best` the lowest energy and
    /// `best_step` where it is first reached, `last` the last, steps increasing within the
    /// budget, every energy finite.
    fn check(&self, budget: usize) -> std::result::Result<(), String> {
        let Some(&(_, last)) = self.curve.last() else {
            return Err("an empty training curve".into());
        };
        if let Some((steps, e)) = self.curve.iter().find(|(_, e)| !e.is_finite()) {
            return Err(format!("the energy at step {steps} is {e}"));
        }
        if self.curve.windows(2).any(|w| w[1].0 <= w[0].0)
            || self.curve[self.curve.len() - 1].0 > budget
        {
            return Err(format!(
                "its curve's steps do not increase within the budget of {budget}"
            ));
        }
        let (best_step, best) = lowest(&self.curve);
        if best != self.best || best_step != self.best_step || last != self.last {
            return Err(format!(
                "it records best {} at step {} and last {}, but its curve gives {best} at step \
                 {best_step} and {last}",
                self.best, self.best_step, self.last
            ));
        }
        Ok(())
    }
}

impl WithLandscape for FloorArgs {
    type Output = Result<FloorResults>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<FloorResults> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let mut seeds = previous_seeds(&self)?;
        let mut settings = self.config.train.clone();
        settings.max_steps = self.steps;
        for seed in 0..self.seeds {
            if seeds.iter().any(|s| s.seed == seed) {
                continue;
            }
            let start = Instant::now();
            let bar = steps_bar(&format!("floor seed {seed}"));
            let mut curve = Vec::new();
            // No level is reachable, so the whole budget is trained.
            let result = train_to_levels_observed(
                &landscape,
                landscape.init(seed),
                &[f64::NEG_INFINITY],
                &settings,
                seed,
                &bar,
                |steps, energy| curve.push((steps, energy)),
            )
            .pop()
            .expect("one result per target");
            bar.finish_and_clear();
            match result {
                Err(TrainError::NotReached { .. }) => {}
                Err(e) => bail!("seed {seed}: {e}"),
                Ok(_) => unreachable!("no energy is at most -inf"),
            }
            let (best_step, best) = lowest(&curve);
            let last = curve.last().expect("checked").1;
            tracing::info!(seed, best, best_step, last, "floor seed done");
            seeds.push(SeedFloor {
                seed,
                best,
                best_step,
                last,
                curve,
                wall_seconds: start.elapsed().as_secs_f64(),
            });
            write_results(&self, &seeds)?;
        }
        let results = write_results(&self, &seeds)?;
        println!("{}", floor_table(&results));
        Ok(results)
    }
}

fn write_results(args: &FloorArgs, seeds: &[SeedFloor]) -> Result<FloorResults> {
    let bests: Vec<f64> = seeds.iter().map(|s| s.best).collect();
    let (floor_mean, floor_se) = mean_se(&bests);
    let results = FloorResults {
        levelset_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: BACKEND_NAME.to_string(),
        config: args.config.clone(),
        steps: args.steps,
        seeds: seeds.to_vec(),
        floor_mean,
        floor_se,
        floor_min: bests.iter().copied().reduce(f64::min),
    };
    let json = results_path(&args.out);
    write_atomic(&json, serde_json::to_string_pretty(&results)?.as_bytes())
        .with_context(|| format!("writing {}", json.display()))?;
    let mut csv = String::from("seed,steps,energy\n");
    for s in seeds {
        for (steps, energy) in &s.curve {
            csv.push_str(&format!("{},{steps},{energy}\n", s.seed));
        }
    }
    let curves = args.out.join("curves.csv");
    write_atomic(&curves, csv.as_bytes())
        .with_context(|| format!("writing {}", curves.display()))?;
    let md = args.out.join("floor.md");
    write_atomic(&md, floor_table(&results).as_bytes())
        .with_context(|| format!("writing {}", md.display()))?;
    Ok(results)
}

/// A Markdown table: each seed's lowest energy and where it was, then the floor.
pub fn floor_table(results: &FloorResults) -> String {
    let energy = &results.config.energy;
    let mut out = format!(
        "{} floor: the lowest {energy} each seed reached in {} steps ({})\n\n\
         | seed | lowest | at step | last | seconds |\n|---|---|---|---|---|\n",
        results.config.name, results.steps, results.backend
    );
    for s in &results.seeds {
        out.push_str(&format!(
            "| {} | {:.6} | {} | {:.6} | {:.1} |\n",
            s.seed, s.best, s.best_step, s.last, s.wall_seconds
        ));
    }
    out.push_str(&format!(
        "\nfloor (mean ± standard error of the seeds' lowest): {}; lowest of all: {}\n",
        plus_minus(results.floor_mean, results.floor_se, 6),
        plus_minus(results.floor_min, None, 6)
    ));
    out
}
