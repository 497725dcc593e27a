//! `levelset graph --merge`: the shards of a graph (`graph --shard K/N`, each a share of the
//! levels) joined into the `graph.json` one whole run writes. Every shard must be there and
//! finished, and all of them of one config, one set of graph settings and one backend; the
//! merged file is then the single-process graph (wall seconds aside: each level's lines and
//! edges depend only on its minima, which every shard trains alike).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use levelset_models::outdir::OutputLock;

use crate::resumable::{check_origin, read_json};
use crate::studies::graph::{
    GraphResults, check_graph, graph_path, shard_levels, summarize, write_graph,
};
use crate::studies::shard::{Shard, describe, shard_entries, shards_dir};

/// Merges the shards under `out/shards` into `out/graph.json`. A `graph.json` already in
/// `out` is replaced only by a merge of the same config and settings.
pub fn merge(out: &Path) -> Result<GraphResults> {
    let _lock = OutputLock::acquire(out)?;
    let shards = read_shards(out)?;
    let (first_path, first) = &shards[0];
    let count = first.shard.map_or(1, |s| s.count);
    let mut present = vec![false; count];
    for (path, results) in &shards {
        check_origin(
            path,
            (&results.config, &results.backend),
            &first.config,
            &first.backend,
            &format!(
                "every shard of a graph runs one config (the first, {}, differs)",
                first_path.display()
            ),
        )?;
        let shard = results.shard.expect("read_shards keeps shards only");
        if shard.count != count {
            bail!(
                "{}: a shard of a split into {}, but {} is of a split into {count}: move the \
                 folder of the other split aside",
                path.display(),
                shard.count,
                first_path.display()
            );
        }
        check_graph(
            path,
            results,
            &first.settings,
            Some(shard),
            "every shard of a graph runs the same settings",
        )?;
        let owned = shard_levels(&first.settings.levels, Some(shard));
        if let Some(level) = results.levels.iter().find(|l| !l.done) {
            bail!(
                "{}: level {} is not finished: run `levelset graph --shard {}/{count} --resume` \
                 with the same config and flags again",
                path.display(),
                level.level,
                shard.index
            );
        }
        if results.levels.len() != owned.len() {
            bail!(
                "{}: {} of the shard's {} levels are done: run `levelset graph --shard {}/{count} \
                 --resume` with the same config and flags again",
                path.display(),
                results.levels.len(),
                owned.len(),
                shard.index
            );
        }
        present[shard.index] = true;
    }
    let missing: Vec<String> = (0..count)
        .filter(|&i| !present[i])
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "cannot merge {}: shard(s) {} have no graph.json under {}",
            out.display(),
            missing.join(", "),
            shards_dir(out).display()
        );
    }
    // Level i of the settings is entry i / N of shard i mod N.
    let levels = (0..first.settings.levels.len())
        .map(|i| {
            let (_, results) = shards
                .iter()
                .find(|(_, r)| r.shard.is_some_and(|s| s.index == i % count))
                .expect("every shard is present");
            results.levels[i / count].clone()
        })
        .collect::<Vec<_>>();
    let merged = GraphResults {
        shard: None,
        summary: levels.iter().map(summarize).collect(),
        levels,
        ..first.clone()
    };
    let path = graph_path(out);
    if let Some(existing) = read_json::<GraphResults>(
        &path,
        "a levelset graph",
        "move it aside to merge into this folder",
    )? {
        let needs = "a merge replaces only a graph of the same config and settings; move it aside";
        check_origin(
            &path,
            (&existing.config, &existing.backend),
            &merged.config,
            &merged.backend,
            needs,
        )?;
        if existing.settings != merged.settings {
            bail!(
                "{} holds a graph of other settings ({:?}, the shards' {:?}); {needs}",
                path.display(),
                existing.settings,
                merged.settings
            );
        }
    }
    write_graph(out, &merged)?;
    Ok(merged)
}

/// Every shard's `graph.json` under `out/shards`, by shard index; a folder that is not a
/// shard's, or a shard without a file, is an error naming it.
fn read_shards(out: &Path) -> Result<Vec<(PathBuf, GraphResults)>> {
    let mut shards = Vec::new();
    for (name, dir) in shard_entries(out)? {
        let named: Shard = name
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: not a shard folder ({e})", dir.display()))?;
        let path = graph_path(&dir);
        let Some(results) = read_json::<GraphResults>(
            &path,
            "a levelset graph",
            "run that shard again with --resume after moving the file aside",
        )?
        else {
            bail!(
                "{}: shard {named} has no graph.json yet: run `levelset graph --shard {}/{}` \
                 first",
                dir.display(),
                named.index,
                named.count
            );
        };
        if results.shard != Some(named) {
            bail!(
                "{} holds {}, not shard {named} as its folder's name says",
                path.display(),
                describe(results.shard, "a whole graph")
            );
        }
        shards.push((path, results));
    }
    if shards.is_empty() {
        bail!("no graph shards under {}", shards_dir(out).display());
    }
    shards.sort_by_key(|(_, r)| r.shard.map(|s| s.index));
    Ok(shards)
}
