//! `levelset graph`: the config's `[graph]` with the command line's flags applied, run by
//! `studies::graph`, and its figures.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{ExperimentConfig, MethodName};
use crate::output::graph_figure;
use crate::studies::graph::{self, GraphArgs, GraphResults};

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
    let results = graph::run(GraphArgs {
        config,
        settings,
        out: out.clone(),
        resume,
    })?;
    graph_figure::draw_all(&results, &out)?;
    Ok(results)
}
