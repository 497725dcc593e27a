//! `levelset slurm`: the scripts it writes, and, on a machine with a working Slurm (CI starts a
//! single-node cluster, `.ci/slurm-up.sh`), a sharded sweep submitted as a job array whose
//! merge job writes the same rows as one whole sweep. Without Slurm the cluster test reports
//! itself skipped by name, unless `LEVELSET_REQUIRE_SLURM` is set (CI sets it).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::*;

/// `slurm --config CONFIG --out OUT` followed by `extra` arguments.
fn slurm_args(config: &Path, out: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut args = args(&[&"slurm", &"--config", &config, &"--out", &out]);
    args.extend(extra.iter().map(OsString::from));
    args
}

/// The options sbatch reads from a script's header, parsed as sbatch itself parses them
/// (`_get_argument` and `_opt_batch_script` in Slurm's src/sbatch/opt.c): the `#SBATCH`
/// lines before the first command, each split at unquoted whitespace, `"` and `'` quoting,
/// a backslash taking the next character as it is, an unquoted `#` ending the line.
fn sbatch_options(script: &str) -> Vec<String> {
    let mut options = Vec::new();
    for line in script.split('\n') {
        let Some(rest) = line.strip_prefix("#SBATCH") else {
            if !line.trim_start().is_empty() && !line.trim_start().starts_with('#') {
                break;
            }
            continue;
        };
        let mut chars = rest.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let (mut arg, mut quote, mut escaped) = (String::new(), None, false);
            while let Some(&c) = chars.peek() {
                if quote.is_none() && c.is_whitespace() {
                    break;
                }
                chars.next();
                match (escaped, quote) {
                    (true, _) => {
                        escaped = false;
                        arg.push(c);
                    }
                    (false, _) if c == '\\' => escaped = true,
                    (false, Some(q)) if c == q => quote = None,
                    (false, Some(_)) => arg.push(c),
                    (false, None) if c == '"' || c == '\'' => quote = Some(c),
                    (false, None) if c == '#' => {
                        chars = "".chars().peekable();
                        break;
                    }
                    (false, None) => arg.push(c),
                }
            }
            assert!(quote.is_none(), "unmatched quote in {line:?}");
            if arg.is_empty() {
                break;
            }
            options.push(arg);
        }
    }
    options
}

#[test]
fn the_scripts_run_one_shard_per_array_task_and_merge_after() {
    let dir = TempDir::new().unwrap();
    let config = write(
        dir.path(),
        "tiny5.toml",
        &edit(&tiny(), "pairs = 2", "pairs = 5"),
    );
    let out = dir.path().join("cluster");
    let run = succeed([
        "slurm".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--tasks".as_ref(),
        "5".as_ref(),
        "--parallel".as_ref(),
        "2".as_ref(),
        "--gpus-per-task".as_ref(),
        "1".as_ref(),
        "--partition".as_ref(),
        "gpu".as_ref(),
        "--time".as_ref(),
        "01:30:00".as_ref(),
        "--extra".as_ref(),
        "#SBATCH --mem=8G".as_ref(),
    ]);
    assert!(run.stdout.contains("sbatch"), "{}", run.stdout);
    let sweep = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    assert!(sweep.starts_with("#!/bin/bash\n"), "{sweep}");
    let logs = out.join("logs");
    assert_eq!(
        sbatch_options(&sweep),
        [
            "--job-name=levelset-tiny".to_string(),
            "--array=0-4%2".into(),
            format!("--output={}/%A_%a.out", logs.display()),
            format!("--error={}/%A_%a.err", logs.display()),
            "--ntasks=1".into(),
            "--time=01:30:00".into(),
            "--gpus-per-task=1".into(),
            "--partition=gpu".into(),
            "--mem=8G".into(),
        ],
        "{sweep}"
    );
    for needle in [
        "--shard \"$SLURM_ARRAY_TASK_ID/5\" --resume",
        "sweep-config.toml",
    ] {
        assert!(sweep.contains(needle), "{needle:?} in:\n{sweep}");
    }
    let merge = std::fs::read_to_string(out.join("merge.sbatch")).unwrap();
    assert!(merge.contains(" merge --out "), "{merge}");
    assert_eq!(
        sbatch_options(&merge),
        [
            "--job-name=levelset-tiny-merge".to_string(),
            format!("--output={}/merge_%j.out", logs.display()),
            format!("--error={}/merge_%j.err", logs.display()),
            "--ntasks=1".into(),
            "--partition=gpu".into(),
            "--mem=8G".into(),
        ],
        "{merge}"
    );
    assert_eq!(
        std::fs::read(out.join("sweep-config.toml")).unwrap(),
        std::fs::read(&config).unwrap()
    );
    fail_with(
        [
            "slurm".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--extra=--mem=8G".as_ref(),
        ],
        &["#SBATCH"],
    );
    fail_with(
        slurm_args(&config, &out, &["--tasks", "6"]),
        &["--tasks 6", "sweep.pairs is 5"],
    );
}

/// A value with a control character (a newline would end its `#SBATCH` line and run the
/// rest as a shell command on the cluster) or a word sbatch reads as a job separator is
/// refused, naming where it came from, before anything is written.
#[test]
fn values_that_would_break_a_job_script_are_refused() {
    let dir = TempDir::new().unwrap();
    // 4 pairs, for the default 4 tasks.
    let four = edit(&tiny(), "pairs = 2", "pairs = 4");
    let config = write(dir.path(), "tiny.toml", &four);
    let named = |file: &str, name: &str| {
        write(
            dir.path(),
            file,
            &edit(&four, "name = \"tiny\"", &format!("name = {name}")),
        )
    };
    let injected = named("injected.toml", r#""q\ntouch injected""#);
    let het = named("het.toml", r#""my-HetJob""#);
    let out = dir.path().join("cluster");
    let cases: Vec<(Vec<OsString>, &[&str])> = vec![
        (
            slurm_args(&injected, &out, &[]),
            &["config key `name`", "injected.toml", "control character"],
        ),
        (
            slurm_args(&het, &out, &[]),
            &["config key `name`", "hetjob"],
        ),
        (
            slurm_args(&config, &out, &["--partition", "gpu\ntouch injected"]),
            &["--partition", "control character"],
        ),
        (
            slurm_args(&config, &out, &["--time", "1:00:00\rid"]),
            &["--time", "control character"],
        ),
        (
            slurm_args(&config, &out, &["--extra", "#SBATCH --mem=1G\tid"]),
            &["--extra", "control character"],
        ),
        (
            slurm_args(&config, &out, &["--extra", "#SBATCH --comment=packjob"]),
            &["--extra", "packjob"],
        ),
        (
            slurm_args(&config, &dir.path().join("a\nb"), &[]),
            &["--out", "control character"],
        ),
        (
            slurm_args(&config, &dir.path().join("back\\slash"), &[]),
            &["--out", "backslash"],
        ),
        (
            slurm_args(
                &config,
                &out,
                &["--data-dir", dir.path().join("d\ne").to_str().unwrap()],
            ),
            &["--data-dir", "control character"],
        ),
    ];
    for (args, needles) in cases {
        fail_with(&args, needles);
    }
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["het.toml", "injected.toml", "tiny.toml"],
        "nothing written by the refused runs"
    );
}

/// A stub `sbatch` in `dir/bin` that appends its arguments, one a line, and `--` to
/// `dir/sbatch.log`, and prints a job id.
fn stub_sbatch(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let stub = write(
        &bin,
        "sbatch",
        "#!/bin/sh\n{ for a in \"$@\"; do printf '%s\\n' \"$a\"; done; echo --; } >> \"$SBATCH_LOG\"\necho '4242;cluster'\n",
    );
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs `levelset ARGS` with the stub sbatch first on PATH.
fn with_stub(dir: &Path, args: &[OsString]) -> std::process::Output {
    let path = std::env::join_paths(
        std::iter::once(stub_sbatch(dir))
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_levelset"))
        .args(args)
        .env("PATH", path)
        .env("SBATCH_LOG", dir.join("sbatch.log"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs a written script with bash as a Slurm task would, array index `task` if given.
fn run_script(script: &Path, task: Option<usize>) {
    let mut command = Command::new("bash");
    command.arg(script).env("RUST_LOG", "warn");
    if let Some(task) = task {
        command.env("SLURM_ARRAY_TASK_ID", task.to_string());
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Spaces, quotes, `$`, `#` and `%` in the config's name and the paths reach sbatch and the
/// shell as they are: sbatch reads each option whole, the shell lines run the sweep in the
/// folder given, and the printed hint is one shell word per path.
#[test]
fn the_scripts_quote_every_value_and_path() {
    let dir = TempDir::new().unwrap();
    let config = write(
        dir.path(),
        "tiny.toml",
        &edit(
            &tiny(),
            "name = \"tiny\"",
            r#"name = "tiny \"q\" $x #1 50%""#,
        ),
    );
    let out = dir.path().join("it's a \"run\" $HOME #1 100%");
    let run = with_stub(
        dir.path(),
        &slurm_args(
            &config,
            &out,
            &["--tasks", "2", "--partition", "gpu a", "--submit"],
        ),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("sweep array job 4242, merge job 4242"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let (sweep, merge) = (out.join("sweep.sbatch"), out.join("merge.sbatch"));
    let log = std::fs::read_to_string(dir.path().join("sbatch.log")).unwrap();
    assert_eq!(
        log,
        format!(
            "--parsable\n{}\n--\n--parsable\n--dependency=afterok:4242\n{}\n--\n",
            sweep.display(),
            merge.display()
        )
    );
    let logs = out.join("logs").display().to_string().replace('%', "%%");
    assert_eq!(
        sbatch_options(&std::fs::read_to_string(&sweep).unwrap()),
        [
            "--job-name=levelset-tiny \"q\" $x #1 50%".to_string(),
            "--array=0-1".into(),
            format!("--output={logs}/%A_%a.out"),
            format!("--error={logs}/%A_%a.err"),
            "--ntasks=1".into(),
            "--partition=gpu a".into(),
        ]
    );
    assert_eq!(
        sbatch_options(&std::fs::read_to_string(&merge).unwrap()),
        [
            "--job-name=levelset-tiny \"q\" $x #1 50%-merge".to_string(),
            format!("--output={logs}/merge_%j.out"),
            format!("--error={logs}/merge_%j.err"),
            "--ntasks=1".into(),
            "--partition=gpu a".into(),
        ]
    );
    run_script(&sweep, Some(0));
    run_script(&sweep, Some(1));
    run_script(&merge, None);
    assert_eq!(
        read_json(&out.join("results.json"))["rows"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let hint = with_stub(dir.path(), &slurm_args(&config, &out, &["--tasks", "2"]));
    let stdout = String::from_utf8_lossy(&hint.stdout);
    let words = |from: &str, to: &str| {
        let part = stdout.split(from).nth(1).unwrap().split(to).next().unwrap();
        shlex::split(part).unwrap_or_else(|| panic!("not shell words: {part}"))
    };
    assert_eq!(
        words("submit with: ", " (job id J)"),
        ["sbatch", "--parsable", sweep.to_str().unwrap()],
        "{stdout}"
    );
    assert_eq!(
        words("then ", "\n"),
        ["sbatch", "--dependency=afterok:J", merge.to_str().unwrap()],
        "{stdout}"
    );
}

fn slurm_available() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%a"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up"));
    if !up {
        assert!(
            std::env::var_os("LEVELSET_REQUIRE_SLURM").is_none(),
            "LEVELSET_REQUIRE_SLURM is set but no Slurm cluster answers (sinfo)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_sharded_sweep_on_a_slurm_cluster_merges_to_the_whole_sweep: no Slurm \
             cluster answers here (sinfo)"
        );
    }
    up
}

#[test]
fn a_sharded_sweep_on_a_slurm_cluster_merges_to_the_whole_sweep() {
    if !slurm_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let config = write(
        dir.path(),
        "tiny3.toml",
        &edit(&tiny(), "pairs = 2", "pairs = 3"),
    );
    let whole = dir.path().join("whole");
    succeed(sweep_args(&config, &whole, &[]));
    // sbatch reads the log folder whole, and the shell lines quote it, even with a space,
    // a quote and a `%` in it.
    let out = dir.path().join("cluster run's 100%");
    let run = succeed(slurm_args(&config, &out, &["--tasks", "3", "--submit"]));
    let merge_id = run
        .stdout
        .split("merge job ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no merge job id in: {}", run.stdout));
    let start = Instant::now();
    loop {
        let queued = Command::new("squeue")
            .args(["-h", "-j", &merge_id, "-o", "%T"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if queued.is_empty() && out.join("results.csv").exists() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "merge job {merge_id} not done after 300 s (state {queued:?}); logs in {}",
            out.join("logs").display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let strip = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("results.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(strip(&out), strip(&whole));
    let logs: Vec<_> = std::fs::read_dir(out.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(logs.iter().any(|l| l.ends_with("_2.out")), "{logs:?}");
}

/// A folder already holding another config's (or another split's) scripts is refused
/// without --force, the same config again only rewrites the scripts, and --force never
/// replaces the record of a split whose shards have started.
#[test]
fn slurm_refuses_another_configs_folder_unless_forced() {
    let dir = TempDir::new().unwrap();
    let a = write(dir.path(), "a.toml", &tiny());
    let b = write(
        dir.path(),
        "b.toml",
        &edit(&tiny(), "lr = 0.05", "lr = 0.04"),
    );
    let out = dir.path().join("cluster");
    let copy = out.join("sweep-config.toml");
    let read = |path: &Path| std::fs::read(path).unwrap();
    succeed(slurm_args(&a, &out, &["--tasks", "2"]));
    let script = read(&out.join("sweep.sbatch"));
    succeed(slurm_args(&a, &out, &["--tasks", "2"]));
    assert_eq!(read(&out.join("sweep.sbatch")), script, "the same scripts");

    fail_with(
        slurm_args(&b, &out, &["--tasks", "2"]),
        &["sweep-config.toml", "train.optimizer.lr", "--force"],
    );
    fail_with(
        slurm_args(&a, &out, &["--tasks", "1"]),
        &["split.json", "split into 2 shards, not 1", "--force"],
    );
    assert_eq!(read(&copy), read(&a), "the config copy is untouched");
    assert_eq!(read(&out.join("sweep.sbatch")), script);

    succeed(slurm_args(&b, &out, &["--tasks", "2", "--force"]));
    assert_eq!(read(&copy), read(&b), "--force replaced it");
    assert_eq!(
        read_json(&out.join("shards/split.json"))["config"]["train"]["optimizer"]["lr"],
        0.04
    );

    // A shard run of another config or split is refused before its folder exists.
    fail_with(
        sweep_args(&a, &out, &["--shard".as_ref(), "0/2".as_ref()]),
        &["split.json", "another config", "train.optimizer.lr"],
    );
    fail_with(
        sweep_args(&b, &out, &["--shard".as_ref(), "0/1".as_ref()]),
        &["split.json", "split into 2 shards, not 1"],
    );
    assert!(!out.join("shards/0-of-2").exists() && !out.join("shards/0-of-1").exists());

    succeed(sweep_args(
        &copy,
        &out,
        &["--shard".as_ref(), "0/2".as_ref()],
    ));
    fail_with(
        slurm_args(&a, &out, &["--tasks", "2", "--force"]),
        &["holds its shards", "0-of-2", "move them aside"],
    );
    assert_eq!(read(&copy), read(&b), "the shards' config stays");
}

/// `slurm --graph`: each array task runs a graph shard of whole levels and the merge job
/// `graph --merge`; the scripts, run as Slurm would run them, give the whole graph.
#[test]
fn graph_scripts_run_level_shards_and_merge_to_the_whole_graph() {
    let dir = TempDir::new().unwrap();
    let text = format!("{}\n[graph]\nlevels = [0.1, 0.06]\nminima = 4\n", tiny());
    let config = write(dir.path(), "tiny-graph.toml", &text);
    let whole = dir.path().join("whole");
    succeed(args(&[&"graph", &"--config", &config, &"--out", &whole]));
    let out = dir.path().join("cluster");
    fail_with(
        slurm_args(&config, &out, &["--graph", "--tasks", "3"]),
        &["--tasks 3", "whole levels", "has 2"],
    );
    fail_with(
        slurm_args(
            &write(dir.path(), "no-graph.toml", &tiny()),
            &out,
            &["--graph"],
        ),
        &["no [graph] section"],
    );
    succeed(slurm_args(&config, &out, &["--graph", "--tasks", "2"]));
    let array = out.join("graph.sbatch");
    let script = std::fs::read_to_string(&array).unwrap();
    for needle in [
        " graph --config ",
        "graph-config.toml",
        "--shard \"$SLURM_ARRAY_TASK_ID/2\" --resume",
    ] {
        assert!(script.contains(needle), "{needle:?} in:\n{script}");
    }
    assert!(sbatch_options(&script).contains(&"--array=0-1".to_string()));
    let merge = out.join("merge.sbatch");
    assert!(
        std::fs::read_to_string(&merge)
            .unwrap()
            .contains(" graph --merge --out ")
    );
    assert!(!out.join("shards/split.json").exists());
    for task in 0..2 {
        run_script(&array, Some(task));
    }
    run_script(&merge, None);
    assert_eq!(
        without_wall_seconds(&read_json(&out.join("graph.json"))),
        without_wall_seconds(&read_json(&whole.join("graph.json")))
    );
}
