//! `levelset slurm`: a sweep as a Slurm job array. Each array task runs one shard
//! (`sweep --shard $SLURM_ARRAY_TASK_ID/N --resume`, so a failed or preempted task resubmitted
//! under the same index resumes its shard), and a merge job that waits for the whole array
//! (`--dependency=afterok`) writes the sweep's results. Slurm is driven through its programs
//! (`sbatch`), not a library binding.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use levelset_models::atomic::write_atomic;

#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The sweep's output folder; the scripts and logs go there too.
    #[arg(long)]
    pub out: PathBuf,
    /// Array tasks (shards) to split the pairs over.
    #[arg(long, default_value_t = 4)]
    pub tasks: usize,
    /// At most this many tasks run at once (`--array=...%P`); default: all.
    #[arg(long)]
    pub parallel: Option<usize>,
    /// GPUs per task (`--gpus-per-task`); Slurm sets CUDA_VISIBLE_DEVICES to the ones it
    /// assigns, and levelset uses the first device it sees.
    #[arg(long)]
    pub gpus_per_task: Option<usize>,
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task, HH:MM:SS (or any form sbatch accepts).
    #[arg(long)]
    pub time: Option<String>,
    /// Extra lines for both scripts' headers, each "#SBATCH ..." (repeatable).
    #[arg(long = "extra")]
    pub extra: Vec<String>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Submit both scripts with sbatch (the merge after the array succeeds) and print the ids.
    #[arg(long)]
    pub submit: bool,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Quotes `text` for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

pub fn run(args: SlurmArgs) -> Result<()> {
    if args.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    if args.parallel == Some(0) {
        bail!("--parallel must be at least 1");
    }
    for line in &args.extra {
        if !line.starts_with("#SBATCH ") || line.contains('\n') {
            bail!("--extra {line:?}: expected one line starting with \"#SBATCH \"");
        }
    }
    // The config is read now, so that a bad one fails here and not in every task.
    let config = crate::config::load_config(&args.config, args.data_dir.clone())?;
    if config.sweep.is_none() {
        bail!("{} has no [sweep] section", args.config.display());
    }
    let out = absolute(&args.out)?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    // Every task reads the same copy of the config, whatever becomes of the original.
    let config_copy = out.join("sweep-config.toml");
    let text = std::fs::read(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    write_atomic(&config_copy, &text)
        .with_context(|| format!("writing {}", config_copy.display()))?;
    let exe = std::env::current_exe().context("locating the levelset binary")?;
    let data_dir = match &args.data_dir {
        Some(dir) => format!(" --data-dir {}", quote_path(&absolute(dir)?)),
        None => String::new(),
    };

    let mut header = Vec::new();
    if let Some(p) = &args.partition {
        header.push(format!("#SBATCH --partition={p}"));
    }
    header.extend(args.extra.iter().cloned());
    let mut sweep_header = vec![
        format!("#SBATCH --job-name=levelset-{}", config.name),
        format!(
            "#SBATCH --array=0-{}{}",
            args.tasks - 1,
            args.parallel.map(|p| format!("%{p}")).unwrap_or_default()
        ),
        format!("#SBATCH --output={}/%A_%a.out", logs.display()),
        format!("#SBATCH --error={}/%A_%a.err", logs.display()),
        "#SBATCH --ntasks=1".into(),
    ];
    if let Some(t) = &args.time {
        sweep_header.push(format!("#SBATCH --time={t}"));
    }
    if let Some(g) = args.gpus_per_task {
        sweep_header.push(format!("#SBATCH --gpus-per-task={g}"));
    }
    sweep_header.extend(header.iter().cloned());
    let sweep_script = format!(
        "#!/bin/bash\n{}\n# Shard $SLURM_ARRAY_TASK_ID of {n}; resubmitting a failed index resumes its shard.\n\
         set -euo pipefail\n\
         exec {exe} sweep --config {config} --out {out} --shard \"$SLURM_ARRAY_TASK_ID/{n}\" --resume{data_dir}\n",
        sweep_header.join("\n"),
        n = args.tasks,
        exe = quote_path(&exe),
        config = quote_path(&config_copy),
        out = quote_path(&out),
    );
    let mut merge_header = vec![
        format!("#SBATCH --job-name=levelset-{}-merge", config.name),
        format!("#SBATCH --output={}/merge_%j.out", logs.display()),
        format!("#SBATCH --error={}/merge_%j.err", logs.display()),
        "#SBATCH --ntasks=1".into(),
    ];
    merge_header.extend(header);
    let merge_script = format!(
        "#!/bin/bash\n{}\nset -euo pipefail\nexec {} merge --out {}\n",
        merge_header.join("\n"),
        quote_path(&exe),
        quote_path(&out)
    );
    let sweep_path = out.join("sweep.sbatch");
    let merge_path = out.join("merge.sbatch");
    for (path, text) in [(&sweep_path, &sweep_script), (&merge_path, &merge_script)] {
        write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {} ({} array tasks) and {}",
        sweep_path.display(),
        args.tasks,
        merge_path.display()
    );
    if !args.submit {
        println!(
            "submit with: sbatch --parsable {} (job id J), then sbatch --dependency=afterok:J {}",
            sweep_path.display(),
            merge_path.display()
        );
        return Ok(());
    }
    let array = sbatch(&[&sweep_path.to_string_lossy()])?;
    let merge = sbatch(&[
        &format!("--dependency=afterok:{array}"),
        &merge_path.to_string_lossy(),
    ])?;
    println!("submitted: sweep array job {array}, merge job {merge}");
    Ok(())
}

/// Runs `sbatch --parsable ARGS`; the job id it prints.
fn sbatch(args: &[&str]) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .context("running sbatch (is Slurm installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints "id" or "id;cluster".
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id: {text:?}");
    }
    Ok(id)
}
