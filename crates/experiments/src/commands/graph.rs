//! `levelset graph`: the config's `[graph]` with the command line's flags applied, run by
//! `studies::graph`, and its figures.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{ExperimentConfig, MethodName};
use crate::output::graph_figure;
use crate::studies::graph::{self, GraphArgs, GraphResults, summary_table};
use crate::studies::graph_merge;
use crate::studies::shard::Shard;

/// The flags of `levelset graph`; each given one replaces its `[graph]` key.
pub struct GraphFlags {
    pub levels: Option<Vec<f64>>,
    pub minima: Option<usize>,
    pub method: Option<MethodName>,
    pub align: bool,
    pub seed: Option<u64>,
}

pub fn run(
    config: ExperimentConfig,
    flags: GraphFlags,
    out: PathBuf,
    resume: bool,
    shard: Option<Shard>,
) -> Result<GraphResults> {
    let mut settings = config.graph.clone().unwrap_or_default();
    if let Some(levels) = flags.levels {
        settings.levels = levels;
    }
    if let Some(minima) = flags.minima {
        settings.minima = minima;
    }
    if let Some(method) = flags.method {
        settings.method = method;
    }
    if let Some(seed) = flags.seed {
        settings.seed = seed;
    }
    settings.align |= flags.align;
    let args = GraphArgs {
        config,
        settings,
        out,
        resume,
        shard,
    };
    let dir = args.results_dir();
    let results = graph::run(args)?;
    graph_figure::draw_all(&results, &dir)?;
    Ok(results)
}

/// `levelset graph --merge`: the shards' levels in one `graph.json`, its figures and its
/// summary.
pub fn merge(out: &Path) -> Result<GraphResults> {
    let results = graph_merge::merge(out)?;
    graph_figure::draw_all(&results, out)?;
    println!("{}", summary_table(&results));
    Ok(results)
}
