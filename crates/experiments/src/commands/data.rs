//! `levelset data fetch` and `levelset data check`: obtaining the real data sets and saying
//! what a data directory holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use levelset_data::catalog::{Dataset, Install};
use levelset_data::fetch::{
    FetchOptions, FileOutcome, Unpacked, fetch, file_digest, unpacked_state,
};
use levelset_data::locate::{fetch_hint, resolve_data_dir};
use levelset_data::{DataError, count_cifar10, count_mnist, load_ptb};
use levelset_models::outdir::OutputLock;

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Download a data set's official files, verify their checksums and install them.
    Fetch {
        /// mnist, cifar10, ptb or all.
        dataset: String,
        /// Data directory (default: $LEVELSET_DATA_DIR, else the per-user data folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A base URL tried before the official mirrors (repeatable, in order).
        #[arg(long = "mirror")]
        mirrors: Vec<String>,
        /// Try only the --mirror URLs, not the official hosts (air-gapped machines).
        #[arg(long, requires = "mirrors")]
        no_default_mirrors: bool,
    },
    /// Say per data set what a data directory holds: files, record counts, full or subset,
    /// and whether each file matches its official checksum.
    Check {
        /// Data directory (default: $LEVELSET_DATA_DIR, else the per-user data folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Fetch {
            dataset,
            dir,
            mirrors,
            no_default_mirrors,
        } => run_fetch(&dataset, dir.as_deref(), mirrors, no_default_mirrors),
        DataCommand::Check { dir } => {
            let (dir, source) =
                resolve_data_dir(dir.as_deref(), None).map_err(anyhow::Error::msg)?;
            println!("data directory {} (from {source})", dir.display());
            for dataset in Dataset::ALL {
                print!("{}", check(dataset, &dir)?);
            }
            Ok(())
        }
    }
}

fn datasets(name: &str) -> Result<Vec<Dataset>> {
    if name == "all" {
        return Ok(Dataset::ALL.to_vec());
    }
    match Dataset::parse(name) {
        Some(d) => Ok(vec![d]),
        None => bail!("unknown data set '{name}' (expected mnist, cifar10, ptb or all)"),
    }
}

fn run_fetch(
    name: &str,
    dir: Option<&Path>,
    mirrors: Vec<String>,
    only_mirrors: bool,
) -> Result<()> {
    let sets = datasets(name)?;
    for mirror in &mirrors {
        if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
            bail!("--mirror {mirror}: expected an http:// or https:// URL");
        }
    }
    let (dir, source) = resolve_data_dir(dir, None).map_err(anyhow::Error::msg)?;
    let _lock = OutputLock::acquire(&dir)?;
    let mb = sets.iter().map(|d| d.download_size()).sum::<u64>() as f64 / 1e6;
    println!(
        "fetching {} into {} (from {source}; up to {mb:.0} MB)",
        sets.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
        dir.display()
    );
    let options = FetchOptions {
        mirrors,
        only_mirrors,
        progress: true,
    };
    for dataset in sets {
        let outcomes = fetch(dataset, &dir, &options)
            .with_context(|| format!("fetching {dataset} into {}", dir.display()))?;
        for (file, outcome) in outcomes {
            match outcome {
                FileOutcome::Present => println!("  {dataset}/{file}: present, checksum verified"),
                FileOutcome::Downloaded { url } => {
                    println!("  {dataset}/{file}: downloaded from {url}, checksum verified")
                }
            }
        }
    }
    Ok(())
}

/// The report of `data check` for one data set.
pub fn check(dataset: Dataset, dir: &Path) -> Result<String> {
    let folder = dir.join(dataset.name());
    let mut out = format!("{dataset} ({}):\n", folder.display());
    if !folder.is_dir() {
        out.push_str(&format!("  missing: {}\n", fetch_hint(dataset, dir)));
        return Ok(out);
    }
    for source in dataset.sources() {
        match source.install {
            Install::AsIs => {
                let name = source.file.name;
                let plain = name.strip_suffix(".gz").unwrap_or(name);
                let state = if folder.join(name).is_file() {
                    let found = file_digest(&folder.join(name), source.file.digest)?;
                    if found == source.file.digest.hex() {
                        "official checksum".to_string()
                    } else {
                        format!(
                            "present, not the official file ({} differs)",
                            source.file.digest.algorithm()
                        )
                    }
                } else if folder.join(plain).is_file()
                    || folder.join(format!("{name}.gz")).is_file()
                {
                    "present, compressed otherwise than published (checksum not comparable)".into()
                } else {
                    "missing".into()
                };
                out.push_str(&format!("  {name}: {state}\n"));
            }
            Install::Unpack { .. } => {
                let state = match unpacked_state(source, &folder)? {
                    Unpacked::Intact => format!(
                        "unpacked from {} with the official checksum, members intact",
                        source.file.name
                    ),
                    Unpacked::NotIntact(why) => format!("not intact ({why}): checksums unknown"),
                };
                out.push_str(&format!("  files: {state}\n"));
            }
        }
    }
    out.push_str(&format!("  {}\n", counts(dataset, &folder)));
    Ok(out)
}

/// Record counts as the loaders would read them, and whether they are the full official set.
/// Image sets are counted as streams, so that checking a data directory holds no data set in
/// memory.
fn counts(dataset: Dataset, folder: &Path) -> String {
    let verdict = |full: bool| if full { "full" } else { "subset" };
    let images =
        |counted: Result<(usize, usize), DataError>, (train, test): (usize, usize)| match counted {
            Ok(found) => format!(
                "{} train + {} test images: {} (official: {train} + {test})",
                found.0,
                found.1,
                verdict(found == (train, test)),
            ),
            Err(e) => format!("unreadable: {e}"),
        };
    match dataset {
        Dataset::Mnist => images(count_mnist(folder), (60_000, 10_000)),
        Dataset::Cifar10 => images(count_cifar10(folder), (50_000, 10_000)),
        Dataset::Ptb => {
            let parts: Vec<String> = ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]
                .iter()
                .filter_map(|name| {
                    let path = folder.join(name);
                    path.is_file().then(|| match load_ptb(&path, &path) {
                        Ok(corpus) => format!("{name} {} tokens", corpus.train.len()),
                        Err(e) => format!("{name} unreadable: {e}"),
                    })
                })
                .collect();
            let full = folder.join("ptb.train.txt").is_file();
            format!(
                "{}: {} (official: train 929k + valid 73k + test 82k words)",
                if parts.is_empty() {
                    "no text files".into()
                } else {
                    parts.join(", ")
                },
                verdict(full)
            )
        }
    }
}
