//! `levelset graph`: many minima at one or more levels, connected in the order
//! [`MinimaGraph::next_pair`] gives until each level's graph is one component or every pair
//! between components has been tried; `graph.json` is rewritten atomically after every line
//! pass and every edge, so a killed run resumes where it stopped. Its figures are drawn by
//! `output::graph_figure` from the results.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use levelset_models::Landscape;
use levelset_models::atomic::write_atomic;
use levelset_models::backend::{BACKEND_NAME, Compute, Train};
use levelset_models::checkpoint;
use levelset_models::flat::unflatten;
use levelset_models::outdir::OutputLock;
use levelset_models::statistics::StatsMode;
use levelset_strings::graph::pairs;
use levelset_strings::{
    Derived, Evaluator, GraphEdge, Merge, MinimaGraph, Outcome, TreeEdge, align, line_barrier,
};
use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, GraphConfig};
use crate::landscapes::{WithLandscape, with_landscape};
use crate::pair::{
    Endpoints, Provenance, connect_pair, load_checkpoint, save_model, warn_if_unresolved,
};
use crate::resumable::{check_origin, read_json, refuse_unless_resumed};
use crate::studies::shard::{Shard, describe, results_dir};

/// The seed minimum `k` trains from: minima `2p` and `2p + 1` are the endpoints a sweep with
/// the same base seed trains for its pair `p`.
pub fn minimum_seed(base: u64, k: usize) -> u64 {
    base.wrapping_mul(1_000_003).wrapping_add(k as u64)
}

/// One minimum of a level's graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinimumRecord {
    /// Its number among the run's minima (`graph.minima`, `graph.checkpoints`).
    pub id: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    pub energy: f64,
    /// Optimizer steps from initialization to this level (trained minima).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
}

/// A minimum left out of a level's graph, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    pub id: usize,
    pub reason: String,
}

/// A straight line between two minima of a level's graph (positions in its `minima`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineRecord {
    pub a: usize,
    pub b: usize,
    /// Highest energy on the line, its ends included (`"inf"`: the line met a non-finite
    /// energy).
    #[serde(with = "levelset_strings::json_float")]
    pub barrier: f64,
}

/// A level's graph as `graph.json` holds it. Edges, components and the tree refer to the
/// minima by their position in `minima`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelGraph {
    pub level: f64,
    pub minima: Vec<MinimumRecord>,
    pub excluded: Vec<Excluded>,
    pub lines: Vec<LineRecord>,
    pub edges: Vec<GraphEdge>,
    /// The components at the level (joined by lines within it and connected paths).
    pub components: Vec<Vec<usize>>,
    /// The minimum spanning tree of the best known barriers, in increasing barrier.
    pub spanning_tree: Vec<TreeEdge>,
    /// The disconnectivity graph's merges, in increasing barrier.
    pub merges: Vec<Merge>,
    /// No pair is left to try: one component, or every pair between components tried.
    pub done: bool,
}

/// Components per level: the paper's question in one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphSummary {
    pub level: f64,
    pub minima: usize,
    pub components: usize,
    /// Pairs the straight line joins within the level.
    pub joined_by_lines: usize,
    /// Path methods run, and how many connected.
    pub method_runs: usize,
    pub method_connected: usize,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphResults {
    pub levelset_version: String,
    pub backend: String,
    pub config: ExperimentConfig,
    /// The settings run: the config's `[graph]` with the command line's flags applied.
    pub settings: GraphConfig,
    /// How a batch-normalized net's running statistics were set at every point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn_stats: Option<StatsMode>,
    /// The shard whose levels these are (`graph --shard`); none for a whole graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The levels run, in the settings' order (a shard's own levels only).
    pub levels: Vec<LevelGraph>,
    pub summary: Vec<GraphSummary>,
}

pub struct GraphArgs {
    pub config: ExperimentConfig,
    /// The config's `[graph]` with the flags applied ([`GraphConfig::complete`]).
    pub settings: GraphConfig,
    pub out: PathBuf,
    pub resume: bool,
    /// Run only this shard's levels, into `out/shards/K-of-N`.
    pub shard: Option<Shard>,
}

impl GraphArgs {
    /// Where this run's `graph.json` goes: `out`, or the shard's folder under it.
    pub fn results_dir(&self) -> PathBuf {
        results_dir(&self.out, self.shard)
    }

    /// The levels this run computes, in the settings' order.
    pub fn levels(&self) -> Vec<f64> {
        shard_levels(&self.settings.levels, self.shard)
    }
}

/// The levels of `levels` that `shard` owns (level `i` of the list goes to shard `i mod N`);
/// all of them without a shard. Levels are the unit of a graph's shards: the pairs of one
/// level are chosen one after another, each from what the edges before it found.
pub fn shard_levels(levels: &[f64], shard: Option<Shard>) -> Vec<f64> {
    levels
        .iter()
        .enumerate()
        .filter(|&(i, _)| shard.is_none_or(|s| s.owns(i)))
        .map(|(_, &l)| l)
        .collect()
}

/// Where a graph run in `dir` saves its trained minimum `id` at `level`:
/// `dir/minima/<level>/<id>`.
pub fn minimum_dir(dir: &Path, level: f64, id: usize) -> PathBuf {
    dir.join("minima")
        .join(level.to_string())
        .join(format!("{id:03}"))
}

pub fn graph_path(out: &Path) -> PathBuf {
    out.join("graph.json")
}

/// Runs the graph holding the lock on its output folder, taken before any work.
pub fn run(args: GraphArgs) -> Result<GraphResults> {
    args.settings.complete().map_err(anyhow::Error::msg)?;
    args.config
        .validate()
        .with_context(|| format!("config {}", args.config.name))?;
    let method = args.settings.method.method(&args.config)?;
    method.validate().map_err(anyhow::Error::msg)?;
    if let Some(shard) = args.shard
        && shard.count > args.settings.levels.len()
    {
        bail!(
            "--shard {}/{}: a graph splits into at most one shard per level, and it has {} \
             ({:?})",
            shard.index,
            shard.count,
            args.settings.levels.len(),
            args.settings.levels
        );
    }
    let _lock = OutputLock::acquire(&args.results_dir())?;
    let previous = previous_levels(&args)?;
    with_landscape(&args.config.clone(), (args, previous))?
}

/// The levels an earlier run of the same settings recorded.
fn previous_levels(args: &GraphArgs) -> Result<Vec<LevelGraph>> {
    let path = graph_path(&args.results_dir());
    refuse_unless_resumed(&path, args.resume, "graph")?;
    let Some(previous) = read_json::<GraphResults>(
        &path,
        "a levelset graph",
        "move it aside to start over, or choose another --out",
    )?
    else {
        return Ok(Vec::new());
    };
    check_origin(
        &path,
        (&previous.config, &previous.backend),
        &args.config,
        BACKEND_NAME,
        "resume needs the same one",
    )?;
    check_graph(
        &path,
        &previous,
        &args.settings,
        args.shard,
        "resume needs the same --level(s), --minima, --method and --align",
    )?;
    Ok(previous.levels)
}

/// Checks a graph read back from `path` against the settings and shard it is to continue or
/// join (`needs` says why): the same settings, the same shard, and only that shard's levels
/// in their order (a run stopped part-way has a prefix of them), each level's lines and edges
/// those of its own minima. A file edited or copied from another run is refused, the entry
/// named, instead of being taken in part.
pub fn check_graph(
    path: &Path,
    results: &GraphResults,
    settings: &GraphConfig,
    shard: Option<Shard>,
    needs: &str,
) -> Result<()> {
    if results.settings != *settings {
        bail!(
            "{} was produced with other graph settings ({:?}, now {:?}); {needs}",
            path.display(),
            results.settings,
            settings
        );
    }
    let part = |s: Option<Shard>| describe(s, "a whole graph");
    if results.shard != shard {
        bail!(
            "{} holds the levels of {}, not of {}",
            path.display(),
            part(results.shard),
            part(shard)
        );
    }
    let owned = shard_levels(&settings.levels, shard);
    for (i, level) in results.levels.iter().enumerate() {
        if owned.get(i) != Some(&level.level) {
            bail!(
                "{}: entry {i} is level {}, not level {:?} of {}'s levels {owned:?}: the file \
                 was edited or comes from another run",
                path.display(),
                level.level,
                owned.get(i),
                part(shard)
            );
        }
        let n = level.minima.len();
        let lines_fit = level.lines.len() == n * n.saturating_sub(1) / 2
            && level
                .lines
                .iter()
                .zip(pairs(n))
                .all(|(l, (a, b))| (l.a, l.b) == (a, b));
        let edges_fit = level.edges.iter().all(|e| e.a < e.b && e.b < n);
        if n >= 2 && !(lines_fit && edges_fit) {
            bail!(
                "{}: level {}'s lines or edges are not those of its {n} minima: the file was \
                 edited or damaged",
                path.display(),
                level.level
            );
        }
    }
    Ok(())
}

impl WithLandscape for (GraphArgs, Vec<LevelGraph>) {
    type Output = Result<GraphResults>;

    fn run<L: Landscape<Train>>(self, landscape: L) -> Result<GraphResults> {
        let (args, previous) = self;
        Runner::new(&args, &landscape, previous)?.run()
    }
}

/// A minimum as the graph uses it: its record and its flat parameters.
struct Minimum {
    record: MinimumRecord,
    flat: Tensor<Compute, 1>,
}

struct Runner<'a, L: Landscape<Train>> {
    args: &'a GraphArgs,
    landscape: &'a L,
    method: levelset_strings::Method,
    endpoints: Endpoints,
    checkpoints: Vec<Option<(Tensor<Compute, 1>, f64)>>,
    levels: Vec<LevelGraph>,
}

impl<'a, L: Landscape<Train>> Runner<'a, L> {
    fn new(args: &'a GraphArgs, landscape: &'a L, levels: Vec<LevelGraph>) -> Result<Self> {
        warn_if_unresolved(landscape, &args.levels());
        Ok(Runner {
            args,
            landscape,
            method: args.settings.method.method(&args.config)?,
            endpoints: Endpoints::new(&args.levels()),
            checkpoints: vec![None; args.settings.checkpoints.len()],
            levels,
        })
    }

    fn run(mut self) -> Result<GraphResults> {
        let levels = self.args.levels();
        for (i, &level) in levels.iter().enumerate() {
            if self.levels.get(i).is_some_and(|l| l.done) {
                continue;
            }
            self.run_level(i, level)?;
        }
        let results = self.write()?;
        println!("{}", summary_table(&results));
        Ok(results)
    }

    /// The minima usable at `level`: trained to it (or loaded) and within the method's slack.
    fn minima(&mut self, level: f64) -> Result<(Vec<Minimum>, Vec<Excluded>)> {
        let settings = &self.args.settings;
        let limit = level * self.method.slack();
        let (mut minima, mut excluded) = (Vec::new(), Vec::new());
        for id in 0..settings.count() {
            let found = if let Some(dir) = settings.checkpoints.get(id) {
                self.checkpoint(id, dir).map(|(flat, energy)| {
                    let record = MinimumRecord {
                        id,
                        seed: None,
                        checkpoint: Some(dir.clone()),
                        energy,
                        steps: None,
                    };
                    Minimum { record, flat }
                })
            } else {
                let seed = minimum_seed(settings.seed, id);
                self.endpoints
                    .get(self.landscape, &self.args.config, level, seed)
                    .map(|e| Minimum {
                        record: MinimumRecord {
                            id,
                            seed: Some(seed),
                            checkpoint: None,
                            energy: e.energy,
                            steps: Some(e.steps),
                        },
                        flat: e.flat,
                    })
            };
            match found {
                Ok(m) if m.record.energy <= limit => minima.push(m),
                Ok(m) => excluded.push(Excluded {
                    id,
                    reason: format!(
                        "its {} {} is above the level times the method's slack ({limit})",
                        self.landscape.energy_kind(),
                        m.record.energy
                    ),
                }),
                Err(e) => excluded.push(Excluded {
                    id,
                    reason: format!("{e:#}"),
                }),
            }
        }
        Ok((minima, excluded))
    }

    /// Saves the trained minima of `level` as checkpoints (for `hessian`, `plane`,
    /// `connect`), each once: a resumed run finds them complete and leaves them.
    fn save_minima(&self, level: f64, minima: &[Minimum]) -> Result<()> {
        let template = self.landscape.init(0).valid();
        for minimum in minima {
            let (Some(seed), Some(steps)) = (minimum.record.seed, minimum.record.steps) else {
                continue;
            };
            let dir = minimum_dir(&self.args.results_dir(), level, minimum.record.id);
            if checkpoint::read_meta(&dir).is_ok() {
                continue;
            }
            let made = Provenance {
                seed,
                energy: minimum.record.energy,
                level: Some(level),
                steps,
            };
            let model = unflatten(template.clone(), minimum.flat.clone());
            save_model(self.landscape, &self.args.config, model, made, &dir).with_context(
                || format!("saving minimum {} of level {level}", minimum.record.id),
            )?;
        }
        Ok(())
    }

    /// A checkpoint minimum, loaded once and measured by this run's landscape.
    fn checkpoint(&mut self, id: usize, dir: &Path) -> Result<(Tensor<Compute, 1>, f64)> {
        if let Some(loaded) = &self.checkpoints[id] {
            return Ok(loaded.clone());
        }
        let (flat, _) = load_checkpoint(self.landscape, dir)
            .with_context(|| format!("graph.checkpoints[{id}]: {}", dir.display()))?;
        let energy = Evaluator::new(self.landscape).energy(&flat);
        self.checkpoints[id] = Some((flat.clone(), energy));
        Ok((flat, energy))
    }

    fn run_level(&mut self, index: usize, level: f64) -> Result<()> {
        let (minima, excluded) = self.minima(level)?;
        self.save_minima(level, &minima)?;
        let records: Vec<MinimumRecord> = minima.iter().map(|m| m.record.clone()).collect();
        let recorded = self.levels.get(index).cloned();
        if let Some(recorded) = &recorded
            && (recorded.minima != records || recorded.excluded != excluded)
        {
            bail!(
                "{}: level {level}'s minima now differ from the recorded ones (their energies or \
                 which reached the level): a resume needs the same machine, backend and data",
                graph_path(&self.args.results_dir()).display()
            );
        }
        let mut aligned = Aligned::default();
        let lines = match &recorded {
            Some(recorded) => recorded.lines.iter().map(|l| l.barrier).collect(),
            None => self.lines(level, &minima, &mut aligned)?,
        };
        let energies = records.iter().map(|r| r.energy).collect();
        let mut graph = if minima.len() >= 2 {
            Some(MinimaGraph::new(level, energies, lines).map_err(anyhow::Error::msg)?)
        } else {
            None
        };
        if let (Some(graph), Some(recorded)) = (&mut graph, &recorded) {
            for edge in &recorded.edges {
                graph.record(edge.clone()).map_err(|e| {
                    anyhow::anyhow!("{}: {e}", graph_path(&self.args.results_dir()).display())
                })?;
            }
        }
        let Some(mut graph) = graph else {
            return self.store(index, level, &records, &excluded, None);
        };
        let mut derived = graph.derive();
        self.store(index, level, &records, &excluded, Some((&graph, &derived)))?;
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("graph [{elapsed_precise}] level {msg}")
                .expect("valid template"),
        );
        while let Some((a, b)) = derived.next_pair {
            bar.set_message(format!(
                "{level}: {} components, connecting {a}-{b}",
                derived.components.len()
            ));
            let edge = self.connect(level, &minima, &graph, (a, b), &mut aligned);
            tracing::info!(
                level,
                a,
                b,
                outcome = %edge.outcome,
                path_max = ?edge.path_max,
                seconds = edge.wall_seconds,
                reason = %edge.reason,
                "edge done"
            );
            graph.record(edge).map_err(anyhow::Error::msg)?;
            derived = graph.derive();
            self.store(index, level, &records, &excluded, Some((&graph, &derived)))?;
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Every pair's straight-line barrier (after alignment with `--align`).
    fn lines(&self, level: f64, minima: &[Minimum], aligned: &mut Aligned) -> Result<Vec<f64>> {
        let evaluator = Evaluator::new(self.landscape);
        let grid = self.method.line_grid();
        let n = minima.len();
        let bar = ProgressBar::new((n * n.saturating_sub(1) / 2) as u64).with_style(
            ProgressStyle::with_template(
                "straight lines [{elapsed_precise}] {bar:30} {pos}/{len} pairs {msg}",
            )
            .expect("valid template"),
        );
        bar.set_message(format!("level {level}"));
        let mut lines = Vec::new();
        for (a, b) in pairs(n) {
            let second = self.second(minima, a, b, aligned)?;
            let ends = [minima[a].record.energy, minima[b].record.energy];
            lines.push(line_barrier(
                &evaluator,
                &minima[a].flat,
                &second,
                ends,
                grid,
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(lines)
    }

    /// Minimum `b` as pair `(a, b)` meets it: itself, or with `--align` weight-matched to `a`.
    fn second(
        &self,
        minima: &[Minimum],
        a: usize,
        b: usize,
        aligned: &mut Aligned,
    ) -> Result<Tensor<Compute, 1>> {
        if !self.args.settings.align {
            return Ok(minima[b].flat.clone());
        }
        if let Some(flat) = aligned.0.get(&(a, b)) {
            return Ok(flat.clone());
        }
        let config = self.args.config.align.clone().unwrap_or_default();
        let matched = align::<Train, _>(
            self.landscape,
            &minima[a].flat,
            &minima[b].flat,
            &config,
            self.args.settings.seed,
        )
        .map_err(|e| anyhow::anyhow!("--align on minima {a} and {b}: {e}"))?;
        aligned.0.insert((a, b), matched.b.clone());
        Ok(matched.b)
    }

    fn connect(
        &self,
        level: f64,
        minima: &[Minimum],
        graph: &MinimaGraph,
        (a, b): (usize, usize),
        aligned: &mut Aligned,
    ) -> GraphEdge {
        let start = Instant::now();
        let (ia, ib) = (minima[a].record.id as u64, minima[b].record.id as u64);
        let seed = self.args.settings.seed ^ (ia << 32) ^ ib;
        let result = self.second(minima, a, b, aligned).and_then(|second| {
            connect_pair(
                self.landscape,
                &self.method,
                minima[a].flat.clone(),
                second,
                level,
                seed,
            )
        });
        GraphEdge::from_result(
            (a, b),
            self.args.settings.method.name(),
            graph.line(a, b),
            result
                .map(|(_, report)| report)
                .map_err(|e| format!("{e:#}")),
            start.elapsed().as_secs_f64(),
        )
    }

    /// Puts level `index`'s state (its graph with what is derived from it; none with fewer
    /// than two minima) in the results and rewrites `graph.json`.
    fn store(
        &mut self,
        index: usize,
        level: f64,
        minima: &[MinimumRecord],
        excluded: &[Excluded],
        graph: Option<(&MinimaGraph, &Derived)>,
    ) -> Result<()> {
        let entry = LevelGraph {
            level,
            minima: minima.to_vec(),
            excluded: excluded.to_vec(),
            lines: graph.map_or_else(Vec::new, |(g, _)| {
                pairs(g.minima())
                    .map(|(a, b)| LineRecord {
                        a,
                        b,
                        barrier: g.line(a, b),
                    })
                    .collect()
            }),
            edges: graph.map_or_else(Vec::new, |(g, _)| g.edges().to_vec()),
            components: graph.map_or_else(
                || (0..minima.len()).map(|i| vec![i]).collect(),
                |(_, d)| d.components.clone(),
            ),
            spanning_tree: graph.map_or_else(Vec::new, |(_, d)| d.spanning_tree.clone()),
            merges: graph.map_or_else(Vec::new, |(_, d)| d.merges.clone()),
            done: graph.is_none_or(|(_, d)| d.next_pair.is_none()),
        };
        if index < self.levels.len() {
            self.levels[index] = entry;
        } else {
            self.levels.push(entry);
        }
        self.write().map(|_| ())
    }

    fn write(&self) -> Result<GraphResults> {
        let results = GraphResults {
            levelset_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: BACKEND_NAME.to_string(),
            config: self.args.config.clone(),
            settings: self.args.settings.clone(),
            bn_stats: self.landscape.statistics().map(|bn| bn.stats),
            shard: self.args.shard,
            summary: self.levels.iter().map(summarize).collect(),
            levels: self.levels.clone(),
        };
        write_graph(&self.args.results_dir(), &results)?;
        Ok(results)
    }
}

/// Rewrites `dir/graph.json` atomically with `results`.
pub fn write_graph(dir: &Path, results: &GraphResults) -> Result<()> {
    let path = graph_path(dir);
    let mut text = serde_json::to_vec_pretty(results)?;
    text.push(b'\n');
    write_atomic(&path, &text).with_context(|| format!("writing {}", path.display()))
}

/// With `--align`, each pair's weight-matched second minimum, computed once per run.
#[derive(Default)]
struct Aligned(HashMap<(usize, usize), Tensor<Compute, 1>>);

/// A level's row of the summary.
pub fn summarize(level: &LevelGraph) -> GraphSummary {
    GraphSummary {
        level: level.level,
        minima: level.minima.len(),
        components: level.components.len(),
        joined_by_lines: level
            .lines
            .iter()
            .filter(|l| l.barrier <= level.level)
            .count(),
        method_runs: level.edges.len(),
        method_connected: level
            .edges
            .iter()
            .filter(|e| e.outcome == Outcome::Connected)
            .count(),
        done: level.done,
    }
}

/// Components per level, as a Markdown table.
pub fn summary_table(results: &GraphResults) -> String {
    let mut text = format!(
        "{} graph ({} minima, {}{})\n\n| level | minima | components | joined by lines | \
         paths run | connected | done |\n|---|---|---|---|---|---|---|\n",
        results.config.name,
        results.settings.count(),
        results.settings.method.name(),
        if results.settings.align {
            ", aligned"
        } else {
            ""
        }
    );
    for row in &results.summary {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.level,
            row.minima,
            row.components,
            row.joined_by_lines,
            row.method_runs,
            row.method_connected,
            if row.done { "yes" } else { "no" }
        ));
    }
    text
}
