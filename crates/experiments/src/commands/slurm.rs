//! `levelset slurm`: a sweep (or with `--graph`, a graph over levels) as a Slurm job array.
//! Each array task runs one shard (`sweep --shard $SLURM_ARRAY_TASK_ID/N --resume`, or `graph
//! --shard ...`, so a failed or preempted task resubmitted under the same index resumes its
//! shard), and a merge job that waits for the whole array (`--dependency=afterok`) writes the
//! results. Slurm is driven through its programs (`sbatch`), not a library binding.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use levelset_models::atomic::write_atomic;
use levelset_models::outdir::OutputLock;

use crate::config::ExperimentConfig;
use crate::studies::shard::{Split, check_count, record_split};

#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The sweep's output folder; the scripts and logs go there too.
    #[arg(long)]
    pub out: PathBuf,
    /// Array tasks (shards) to split the pairs over (with --graph, the levels).
    #[arg(long, default_value_t = 4)]
    pub tasks: usize,
    /// Run the config's `[graph]` instead of its `[sweep]`: each task takes whole levels (level i
    /// goes to task i mod N), and the merge job runs `graph --merge`.
    #[arg(long)]
    pub graph: bool,
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
    /// Replace the scripts and the config copy of another config's (or another split's)
    /// earlier `levelset slurm` in --out, as long as none of its shards has started.
    #[arg(long)]
    pub force: bool,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Refuses a value from `source` (a flag, a config key) that a job script cannot carry: a
/// control character (a newline or carriage return would end its line, and what follows
/// would run as a shell command, with sbatch ignoring every `#SBATCH` line after it).
fn script_text<'a>(source: &str, value: &'a str) -> Result<&'a str> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!(
            "{source} {value:?}: contains the control character {c:?}, which a job script \
             cannot carry"
        );
    }
    Ok(value)
}

/// [`script_text`] for a line of the `#SBATCH` header: sbatch also reads "hetjob" or
/// "packjob" anywhere in such a line as the start of another component of a heterogeneous
/// job, whatever the quoting.
fn sbatch_text<'a>(source: &str, value: &'a str) -> Result<&'a str> {
    let lower = script_text(source, value)?.to_ascii_lowercase();
    if let Some(word) = ["hetjob", "packjob"].iter().find(|w| lower.contains(*w)) {
        bail!(
            "{source} {value:?}: contains \"{word}\", which sbatch reads anywhere in an \
             #SBATCH line as the start of another job; rename it"
        );
    }
    Ok(value)
}

/// `path` as text for a script: UTF-8 (a script is text) and free of control characters.
fn path_text<'a>(source: &str, path: &'a Path) -> Result<&'a str> {
    let text = path
        .to_str()
        .with_context(|| format!("{source} {}: not valid UTF-8", path.display()))?;
    script_text(source, text)
}

/// `path` quoted as one word for a POSIX shell.
fn shell_word(source: &str, path: &Path) -> Result<String> {
    let text = path_text(source, path)?;
    Ok(shlex::try_quote(text)
        .with_context(|| format!("{source} {text:?}: cannot be quoted for a shell"))?
        .into_owned())
}

/// `#SBATCH --OPTION="VALUE"`: sbatch's parser takes a double-quoted value whole (spaces
/// and `#` included), a backslash escaping the next character.
fn directive(option: &str, source: &str, value: &str) -> Result<String> {
    let escaped = sbatch_text(source, value)?
        .replace('\\', r"\\")
        .replace('"', "\\\"");
    Ok(format!("#SBATCH --{option}=\"{escaped}\""))
}

/// `--output`/`--error` directives for log files named `name` in `dir`. sbatch expands `%`
/// sequences in these names (`%%` is a `%`), and a backslash anywhere in one makes it
/// expand none, so a backslash in the folder is refused.
fn log_directives(source: &str, dir: &str, name: &str) -> Result<[String; 2]> {
    if dir.contains('\\') {
        bail!(
            "{source} {dir:?}: contains a backslash, which makes sbatch take the log file \
             names literally (no %A, %a, %j); choose another folder"
        );
    }
    let pattern = format!("{}/{name}", dir.replace('%', "%%"));
    Ok([
        directive("output", source, &format!("{pattern}.out"))?,
        directive("error", source, &format!("{pattern}.err"))?,
    ])
}

pub fn run(args: SlurmArgs) -> Result<()> {
    if args.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    if args.parallel == Some(0) {
        bail!("--parallel must be at least 1");
    }
    // Every value that reaches a script is checked before anything is read or written.
    let mut header = Vec::new();
    if let Some(p) = &args.partition {
        header.push(directive("partition", "--partition", p)?);
    }
    for line in &args.extra {
        if !sbatch_text("--extra", line)?.starts_with("#SBATCH ") {
            bail!("--extra {line:?}: expected one line starting with \"#SBATCH \"");
        }
        header.push(line.clone());
    }
    let time = match &args.time {
        Some(t) => Some(directive("time", "--time", t)?),
        None => None,
    };
    let out = absolute(&args.out)?;
    let logs = out.join("logs");
    let logs_text = path_text("--out", &logs)?;
    let exe = std::env::current_exe().context("locating the levelset binary")?;
    let exe_word = shell_word("the levelset binary's path", &exe)?;
    let data_dir = match &args.data_dir {
        Some(dir) => format!(" --data-dir {}", shell_word("--data-dir", &absolute(dir)?)?),
        None => String::new(),
    };
    // The config is read now, so that a bad one fails here and not in every task.
    let config = crate::config::load_config(&args.config, args.data_dir.clone())?;
    let study = if args.graph { "graph" } else { "sweep" };
    if args.graph {
        check_graph_count(args.tasks, &config, &args.config)?;
    } else {
        let sweep = config
            .sweep
            .as_ref()
            .with_context(|| format!("{} has no [sweep] section", args.config.display()))?;
        check_count(args.tasks, sweep)
            .map_err(|e| anyhow::anyhow!("--tasks {}: {e}", args.tasks))?;
    }
    let name_source = format!("config key `name` (in {})", args.config.display());
    let job_name = directive(
        "job-name",
        &name_source,
        &format!("levelset-{}", config.name),
    )?;
    let merge_name = directive(
        "job-name",
        &name_source,
        &format!("levelset-{}-merge", config.name),
    )?;
    let [sweep_output, sweep_error] = log_directives("--out", logs_text, "%A_%a")?;
    let [merge_output, merge_error] = log_directives("--out", logs_text, "merge_%j")?;
    let config_copy = out.join(format!("{study}-config.toml"));
    let config_word = shell_word("--out", &config_copy)?;
    let out_word = shell_word("--out", &out)?;
    let sweep_path = out.join(format!("{study}.sbatch"));
    let merge_path = out.join("merge.sbatch");
    let (sweep_word, merge_word) = (
        shell_word("--out", &sweep_path)?,
        shell_word("--out", &merge_path)?,
    );
    let text = std::fs::read(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;

    let _lock = OutputLock::acquire(&out)?;
    refuse_other_config(&config_copy, &config, args.data_dir.clone(), args.force)?;
    // A graph's shards record their split in their own files, which its merge checks.
    if !args.graph {
        let split = Split {
            shards: args.tasks,
            config: config.clone(),
        };
        record_split(
            &out,
            &split,
            args.force,
            "pass --force to replace it (while no shard has started), or choose another --out",
        )?;
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    // Every task reads the same copy of the config, whatever becomes of the original.
    write_atomic(&config_copy, &text)
        .with_context(|| format!("writing {}", config_copy.display()))?;

    let mut sweep_header = vec![
        job_name,
        format!(
            "#SBATCH --array=0-{}{}",
            args.tasks - 1,
            args.parallel.map(|p| format!("%{p}")).unwrap_or_default()
        ),
        sweep_output,
        sweep_error,
        "#SBATCH --ntasks=1".into(),
    ];
    sweep_header.extend(time);
    if let Some(g) = args.gpus_per_task {
        sweep_header.push(format!("#SBATCH --gpus-per-task={g}"));
    }
    sweep_header.extend(header.iter().cloned());
    let sweep_script = format!(
        "#!/bin/bash\n{}\n# Shard $SLURM_ARRAY_TASK_ID of {n}; resubmitting a failed index resumes its shard.\n\
         set -euo pipefail\n\
         exec {exe_word} {study} --config {config_word} --out {out_word} --shard \"$SLURM_ARRAY_TASK_ID/{n}\" --resume{data_dir}\n",
        sweep_header.join("\n"),
        n = args.tasks,
    );
    let mut merge_header = vec![
        merge_name,
        merge_output,
        merge_error,
        "#SBATCH --ntasks=1".into(),
    ];
    merge_header.extend(header);
    let merge_command = if args.graph { "graph --merge" } else { "merge" };
    let merge_script = format!(
        "#!/bin/bash\n{}\nset -euo pipefail\nexec {exe_word} {merge_command} --out {out_word}\n",
        merge_header.join("\n"),
    );
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
            "submit with: sbatch --parsable {sweep_word} (job id J), then sbatch \
             --dependency=afterok:J {merge_word}"
        );
        return Ok(());
    }
    let array = sbatch(&[&sweep_path.to_string_lossy()])?;
    let merge = sbatch(&[
        &format!("--dependency=afterok:{array}"),
        &merge_path.to_string_lossy(),
    ])?;
    println!("submitted: {study} array job {array}, merge job {merge}");
    Ok(())
}

/// Refuses a split of `config`'s graph (from `path`) into `tasks` shards that leaves a shard
/// without a level.
fn check_graph_count(tasks: usize, config: &ExperimentConfig, path: &Path) -> Result<()> {
    let graph = config
        .graph
        .as_ref()
        .with_context(|| format!("{} has no [graph] section", path.display()))?;
    graph
        .complete()
        .map_err(|e| anyhow::anyhow!("{}: [graph]: {e}", path.display()))?;
    if tasks > graph.levels.len() {
        bail!(
            "--tasks {tasks}: a graph's shards take whole levels, and graph.levels has {} \
             ({:?})",
            graph.levels.len(),
            graph.levels
        );
    }
    Ok(())
}

/// Refuses to replace the config copy of an earlier `levelset slurm` in this folder with
/// another config, unless `force`: the same config again only rewrites the scripts, as a
/// resumed sweep continues its own rows.
fn refuse_other_config(
    copy: &Path,
    config: &ExperimentConfig,
    data_dir: Option<PathBuf>,
    force: bool,
) -> Result<()> {
    if force || !copy.exists() {
        return Ok(());
    }
    let earlier = crate::config::load_config(copy, data_dir).with_context(|| {
        format!(
            "{} holds the config of an earlier `levelset slurm`, unreadable: pass --force to \
             replace it, or choose another --out",
            copy.display()
        )
    })?;
    let changed = earlier.differences(config);
    if !changed.is_empty() {
        bail!(
            "{} holds another config's sweep (differs in {}): pass --force to replace its \
             scripts, or choose another --out",
            copy.display(),
            changed.join(", ")
        );
    }
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
