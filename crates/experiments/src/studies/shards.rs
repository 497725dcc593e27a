//! A sweep split into shards (`sweep --shard K/N`: the pairs p with p mod N = K, each pair's
//! endpoints trained once through all levels as in a whole sweep), their status
//! (`sweep --status`) and their merge into the results of one whole sweep (`merge`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use levelset_models::outdir::{OutputLock, holder};

use crate::studies::shard::{Shard, shards_dir};
use crate::studies::sweep::{Row, SweepResults, jobs, read_results, results_path, write_results};

/// The shard folders under `out/shards`, by name; any other entry there is an error.
fn shard_folders(out: &Path) -> Result<Vec<(Shard, PathBuf)>> {
    let dir = shards_dir(out);
    let entries =
        std::fs::read_dir(&dir).with_context(|| format!("no shards in {}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let shard: Shard = name
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: not a shard folder ({e})", entry.path().display()))?;
        found.push((shard, entry.path()));
    }
    found.sort_by_key(|(s, _)| (s.count, s.index));
    Ok(found)
}

/// Merges the shards under `out/shards` into `out/results.{json,csv}` and `out/summary.md`,
/// exactly as one whole sweep writes them. Shards of another config or another split, and
/// missing shards or pairs, are errors; with `partial`, missing ones are listed in
/// summary.md instead.
pub fn merge(out: &Path, partial: bool) -> Result<SweepResults> {
    let _lock = OutputLock::acquire(out)?;
    let folders = shard_folders(out)?;
    let Some(&(first, _)) = folders.first() else {
        bail!("no shards in {}", shards_dir(out).display());
    };
    let count = first.count;
    let splits: Vec<String> = folders
        .iter()
        .filter(|(s, _)| s.count != count)
        .map(|(s, _)| s.to_string())
        .collect();
    if !splits.is_empty() {
        bail!(
            "{} holds shards of different splits, which overlap: {}-of-{count} against {}",
            shards_dir(out).display(),
            first.index,
            splits.join(", ")
        );
    }
    let mut config = None;
    let mut rows: Vec<Row> = Vec::new();
    let mut missing_shards = Vec::new();
    for index in 0..count {
        let shard = Shard { index, count };
        let Some((_, dir)) = folders.iter().find(|(s, _)| *s == shard) else {
            missing_shards.push(shard.to_string());
            continue;
        };
        let Some(results) = read_results(dir)? else {
            missing_shards.push(shard.to_string());
            continue;
        };
        if results.shard != Some(shard) {
            bail!(
                "{} records shard {:?}, not {shard}",
                results_path(dir).display(),
                results.shard
            );
        }
        match &config {
            None => config = Some(results.config.clone()),
            Some(c) => {
                let differs = results.config.differences(c);
                if !differs.is_empty() {
                    bail!(
                        "shard {shard} was run with another config than shard {} (differs in \
                         {}): merge needs one config",
                        folders[0].0,
                        differs.join(", ")
                    );
                }
            }
        }
        if let Some(stray) = results.rows.iter().find(|r| !shard.owns(r.pair)) {
            bail!(
                "{} holds pair {}, which belongs to shard {}-of-{count}",
                results_path(dir).display(),
                stray.pair,
                stray.pair % count
            );
        }
        rows.extend(results.rows);
    }
    let Some(config) = config else {
        bail!(
            "no shard under {} has results yet",
            shards_dir(out).display()
        );
    };
    let sweep = config
        .sweep
        .clone()
        .context("the shards' config has no [sweep] section")?;
    let missing: Vec<String> = jobs(&sweep, None)
        .filter(|&(level, pair)| !rows.iter().any(|r| r.level == level && r.pair == pair))
        .map(|(level, pair)| format!("level {level} pair {pair}"))
        .collect();
    let absent = if missing_shards.is_empty() {
        String::new()
    } else {
        format!(", shards {} absent", missing_shards.join(", "))
    };
    let note = if missing.is_empty() {
        None
    } else if partial {
        Some(format!(
            "Partial merge: {} of {} rows missing{absent} ({}).",
            missing.len(),
            jobs(&sweep, None).count(),
            missing.join("; ")
        ))
    } else {
        bail!(
            "cannot merge {}: {} row(s) missing{absent} (first: {}); finish those shards with \
             `levelset sweep --shard K/{count} --resume`, or pass --partial",
            out.display(),
            missing.len(),
            missing[0]
        )
    };
    write_results(out, &config, &sweep, None, &rows, note.as_deref())
}

/// One line per shard of the split found under `out/shards`: done, running (its lock held),
/// failed (stopped with pairs left) or missing.
pub fn status(out: &Path) -> Result<String> {
    let folders = shard_folders(out)?;
    let Some(count) = folders.iter().map(|(s, _)| s.count).max() else {
        bail!("no shards in {}", shards_dir(out).display());
    };
    let mut lines = Vec::new();
    for index in 0..count {
        let shard = Shard { index, count };
        let Some((_, dir)) = folders.iter().find(|(s, _)| *s == shard) else {
            lines.push(format!("{shard}: missing"));
            continue;
        };
        let results = read_results(dir)?;
        let (done, total) = match &results {
            Some(r) => {
                let total = r
                    .config
                    .sweep
                    .as_ref()
                    .map_or(0, |s| jobs(s, Some(shard)).count());
                (r.rows.len(), total)
            }
            None => (0, 0),
        };
        // Before its first row a shard has no results, hence no config to count from.
        let of_total = if total > 0 {
            format!("{done} of {total} rows")
        } else {
            format!("{done} of ? rows")
        };
        let line = match holder(dir) {
            Some(pid) => format!(
                "{shard}: running{} ({of_total})",
                pid.map(|p| format!(", process {p}")).unwrap_or_default()
            ),
            None if results.is_some() && done == total => format!("{shard}: done ({done} rows)"),
            None => format!("{shard}: failed or stopped ({of_total}; rerun with --resume)"),
        };
        lines.push(line);
    }
    let others: Vec<String> = folders
        .iter()
        .filter(|(s, _)| s.count != count)
        .map(|(s, _)| s.to_string())
        .collect();
    if !others.is_empty() {
        lines.push(format!(
            "also shards of another split: {}",
            others.join(", ")
        ));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_belongs_to_exactly_one_shard_for_any_split() {
        for count in 1..=12 {
            for pair in 0..100 {
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.owns(pair))
                    .count();
                assert_eq!(owners, 1, "pair {pair} of {count} shards");
            }
        }
    }

    #[test]
    fn shards_parse_from_the_command_line_and_folder_names() {
        assert_eq!("2/5".parse(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!("0-of-1".parse(), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(Shard { index: 3, count: 4 }.to_string(), "3-of-4");
        for bad in ["5/5", "1/0", "a/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
