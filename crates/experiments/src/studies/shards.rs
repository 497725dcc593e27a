//! A sweep split into shards (`sweep --shard K/N`: the pairs p with p mod N = K, each pair's
//! endpoints trained once through all levels as in a whole sweep), their status
//! (`sweep --status`) and their merge into the results of one whole sweep (`merge`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use levelset_models::outdir::{OutputLock, holder};

use crate::studies::shard::{Shard, Split, read_split, shard_entries, shards_dir, split_path};
use crate::studies::sweep::{
    Row, SweepResults, check_results, jobs, read_results, results_path, write_results,
};

/// The split recorded under `out` and the shard folders under `out/shards`, each name
/// checked against the recorded count: a folder of another split, or anything else there,
/// is an error naming it.
fn recorded_shards(out: &Path) -> Result<(Split, Vec<(Shard, PathBuf)>)> {
    let dir = shards_dir(out);
    if !dir.is_dir() {
        bail!("no shards in {}", dir.display());
    }
    let Some(split) = read_split(out)? else {
        bail!(
            "{} has no {}, the record of its split that `levelset slurm` and the first \
             `sweep --shard` write: the shard count is taken from it, not from folder names",
            dir.display(),
            split_path(out).display()
        );
    };
    let mut found = Vec::new();
    for (name, path) in shard_entries(out)? {
        let shard: Shard = name
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: not a shard folder ({e})", path.display()))?;
        if shard.count != split.shards {
            bail!(
                "{}: a shard of a split into {}, but {} records a split into {}: move the \
                 folder aside",
                path.display(),
                shard.count,
                split_path(out).display(),
                split.shards
            );
        }
        if !path.is_dir() {
            bail!("{}: not a shard folder (not a folder)", path.display());
        }
        found.push((shard, path));
    }
    found.sort_by_key(|(s, _)| s.index);
    Ok((split, found))
}

/// The rows in `dir`, the folder of `shard`, checked against the recorded split and
/// against `backend`, the backend of the shards accepted so far (set from the first);
/// `None` before the shard's first row.
fn shard_rows(
    split: &Split,
    shard: Shard,
    dir: &Path,
    backend: &mut Option<String>,
) -> Result<Option<Vec<Row>>> {
    let Some(results) = read_results(dir)? else {
        return Ok(None);
    };
    let expected = backend.clone().unwrap_or_else(|| results.backend.clone());
    check_results(
        &results_path(dir),
        &results,
        &split.config,
        &expected,
        Some(shard),
        "merge needs every shard run with the recorded config",
    )?;
    *backend = Some(expected);
    Ok(Some(results.rows))
}

/// Merges the shards under `out/shards` into `out/results.{json,csv}` and `out/summary.md`,
/// exactly as one whole sweep writes them. Shards of another config or another split, rows
/// that are not the shard's own or appear twice, and missing shards or pairs are errors;
/// with `partial`, missing ones are listed in summary.md instead. Results already in `out`
/// are replaced only by a merge of the same config that keeps every row they hold.
pub fn merge(out: &Path, partial: bool) -> Result<SweepResults> {
    let _lock = OutputLock::acquire(out)?;
    let (split, folders) = recorded_shards(out)?;
    let sweep = split.sweep()?;
    let count = split.shards;
    let mut rows: Vec<Row> = Vec::new();
    let mut missing_shards = Vec::new();
    let mut backend = None;
    for index in 0..count {
        let shard = Shard { index, count };
        let found = match folders.iter().find(|(s, _)| *s == shard) {
            Some((_, dir)) => shard_rows(&split, shard, dir, &mut backend)?,
            None => None,
        };
        match found {
            Some(found) => rows.extend(found),
            None => missing_shards.push(shard.to_string()),
        }
    }
    // The merged rows are the shards': their backend is the one recorded.
    let Some(backend) = backend else {
        bail!(
            "no shard under {} has results yet",
            shards_dir(out).display()
        );
    };
    let has = |rows: &[Row], (level, pair): (f64, usize)| {
        rows.iter().any(|r| r.level == level && r.pair == pair)
    };
    let missing: Vec<String> = jobs(sweep, None)
        .filter(|&job| !has(&rows, job))
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
            jobs(sweep, None).count(),
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
    if let Some(earlier) = read_results(out)? {
        let path = results_path(out);
        check_results(
            &path,
            &earlier,
            &split.config,
            &backend,
            None,
            "move it aside to merge the shards into this folder",
        )?;
        if let Some(lost) = earlier.rows.iter().find(|r| !has(&rows, (r.level, r.pair))) {
            bail!(
                "{} holds level {} pair {}, which the shards lack: merging now would lose \
                 it; move results.json aside to merge anyway",
                path.display(),
                lost.level,
                lost.pair
            );
        }
    }
    write_results(
        out,
        &split.config,
        sweep,
        &backend,
        None,
        &rows,
        note.as_deref(),
    )
}

/// One line per shard of the recorded split: done, running (its lock held), failed
/// (stopped with pairs left), missing, or damaged (its results refused, as merge refuses
/// them). Rows are counted by the distinct (level, pair) jobs of the shard, against the
/// shard's jobs in the recorded config.
pub fn status(out: &Path) -> Result<String> {
    let (split, folders) = recorded_shards(out)?;
    let sweep = split.sweep()?;
    let count = split.shards;
    let mut lines = Vec::new();
    let mut backend = None;
    for index in 0..count {
        let shard = Shard { index, count };
        let Some((_, dir)) = folders.iter().find(|(s, _)| *s == shard) else {
            lines.push(format!("{shard}: missing"));
            continue;
        };
        let total = jobs(sweep, Some(shard)).count();
        let done = match shard_rows(&split, shard, dir, &mut backend) {
            Ok(rows) => rows.map_or(0, |r| r.len()),
            Err(e) => {
                lines.push(format!(
                    "{shard}: damaged, merge refuses it: {e:#}; move its results.json aside \
                     and rerun the shard"
                ));
                continue;
            }
        };
        let line = match holder(dir) {
            Some(pid) => format!(
                "{shard}: running{} ({done} of {total} rows)",
                pid.map(|p| format!(", process {p}")).unwrap_or_default()
            ),
            None if done == total => format!("{shard}: done ({done} rows)"),
            None => {
                format!("{shard}: failed or stopped ({done} of {total} rows; rerun with --resume)")
            }
        };
        lines.push(line);
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
        for bad in [
            "5/5",
            "1/0",
            "a/2",
            "3",
            "-1/2",
            "0/100001",
            "0-of-18446744073709551615",
        ] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!("0/100000".parse::<Shard>().map(|s| s.count), Ok(100_000));
    }

    #[test]
    fn a_shard_read_from_a_file_is_checked_as_the_command_line_is() {
        let read = |json: &str| serde_json::from_str::<Shard>(json);
        assert_eq!(
            read(r#"{"index": 1, "count": 2}"#).unwrap(),
            Shard { index: 1, count: 2 }
        );
        for bad in [
            r#"{"index": 0, "count": 0}"#,
            r#"{"index": 2, "count": 2}"#,
            r#"{"index": 0, "count": 1, "extra": 1}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
