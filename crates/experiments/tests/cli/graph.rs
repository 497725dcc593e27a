//! `levelset graph` on the tiny quadratic task: graph.json's structure, its components
//! recomputed from its own lines and edges, the figures, and resume from a cut-short file.

use std::path::Path;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

fn graph(
    config: &Path,
    out: &Path,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> Vec<std::ffi::OsString> {
    let mut words: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"graph",
        &"--config",
        &config,
        &"--levels",
        &"0.1,0.06",
        &"--minima",
        &"4",
        &"--out",
        &out,
    ];
    words.extend_from_slice(extra);
    args(&words)
}

/// The components a level's lines and edges give, by a plain flood fill.
fn components(level: &Value) -> Vec<Vec<u64>> {
    let l0 = f64_at(level, "level");
    let n = level["minima"].as_array().unwrap().len();
    let mut joined = vec![vec![false; n]; n];
    for line in level["lines"].as_array().unwrap() {
        if f64_at(line, "barrier") <= l0 {
            let (a, b) = (u64_at(line, "a") as usize, u64_at(line, "b") as usize);
            joined[a][b] = true;
            joined[b][a] = true;
        }
    }
    for edge in level["edges"].as_array().unwrap() {
        if edge["outcome"] == "connected" {
            let (a, b) = (u64_at(edge, "a") as usize, u64_at(edge, "b") as usize);
            joined[a][b] = true;
            joined[b][a] = true;
        }
    }
    let mut seen = vec![false; n];
    let mut found = Vec::new();
    for start in 0..n {
        if seen[start] {
            continue;
        }
        let (mut stack, mut members) = (vec![start], Vec::new());
        seen[start] = true;
        while let Some(i) = stack.pop() {
            members.push(i as u64);
            for j in 0..n {
                if joined[i][j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        members.sort_unstable();
        found.push(members);
    }
    found
}

#[test]
fn graph_writes_components_tree_and_figures_and_resumes_to_the_same_graph() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("graph");
    let run = succeed(graph(&config, &out, &[]));
    assert!(
        run.stdout.contains("| level | minima | components |"),
        "{}",
        run.stdout
    );
    let written = read_json(&out.join("graph.json"));
    assert_eq!(written["settings"]["minima"], 4);
    assert_eq!(written["settings"]["method"], "dss");
    let levels = written["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (level, l0) in levels.iter().zip([0.1, 0.06]) {
        assert_eq!(f64_at(level, "level"), l0);
        assert_eq!(level["done"], true);
        let minima = level["minima"].as_array().unwrap();
        assert_eq!(minima.len(), 4, "{level}");
        for m in minima {
            assert!(f64_at(m, "energy") <= 1.1 * l0, "{m}");
            // Each trained minimum is saved as a checkpoint of its level.
            let saved = out
                .join("minima")
                .join(l0.to_string())
                .join(format!("{:03}", u64_at(m, "id")));
            let meta = read_json(&saved.join("model.json"));
            assert_eq!(meta["energy"], m["energy"], "{}", saved.display());
            assert_eq!(f64_at(&meta, "level"), l0);
            assert_eq!(meta["seed"], m["seed"]);
        }
        assert_eq!(level["lines"].as_array().unwrap().len(), 6);
        let expected: Vec<Vec<u64>> = components(level);
        let recorded: Vec<Vec<u64>> = serde_json::from_value(level["components"].clone()).unwrap();
        assert_eq!(recorded, expected, "{level}");
        // A spanning tree of 4 minima has 3 edges, and the disconnectivity graph 3 merges.
        assert_eq!(level["spanning_tree"].as_array().unwrap().len(), 3);
        assert_eq!(level["merges"].as_array().unwrap().len(), 3);
        // No pair inside one component was connected directly after it was joined, and no
        // pair twice.
        let edges = level["edges"].as_array().unwrap();
        assert!(edges.len() <= 6);
        for e in edges {
            assert_eq!(e["method"], "dss");
            assert!(
                f64_at(e, "linear_barrier") > l0,
                "a line within the level is not run: {e}"
            );
        }
        for ext in ["svg", "png"] {
            let figure = out.join(format!("graph-{l0}.{ext}"));
            assert!(
                std::fs::metadata(&figure).unwrap().len() > 0,
                "{}",
                figure.display()
            );
        }
    }
    assert!(std::fs::metadata(out.join("components.svg")).unwrap().len() > 0);
    let summary = written["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);

    // Again into the same folder: refused without --resume, the file untouched.
    let before = std::fs::read(out.join("graph.json")).unwrap();
    fail_with(graph(&config, &out, &[]), &["--resume", "graph.json"]);
    assert_eq!(before, std::fs::read(out.join("graph.json")).unwrap());
    // Other settings: refused, naming them.
    fail_with(
        graph(&config, &out, &[&"--resume", &"--seed", &"9"]),
        &["other graph settings"],
    );

    // Cut short as a killed run leaves it: the second level and the first level's last edge
    // gone. The resumed run ends at the same graph.
    let mut cut = written.clone();
    cut["levels"].as_array_mut().unwrap().truncate(1);
    let first = &mut cut["levels"][0];
    first["edges"].as_array_mut().unwrap().pop();
    first["done"] = Value::Bool(false);
    std::fs::write(
        out.join("graph.json"),
        serde_json::to_vec_pretty(&cut).unwrap(),
    )
    .unwrap();
    succeed(graph(&config, &out, &[&"--resume"]));
    let resumed = read_json(&out.join("graph.json"));
    assert_eq!(
        without_wall_seconds(&resumed),
        without_wall_seconds(&written)
    );
}

#[test]
fn graph_settings_are_checked_before_any_work() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("graph");
    fail_with(
        args(&[
            &"graph",
            &"--config",
            &config,
            &"--minima",
            &"3",
            &"--out",
            &out,
        ]),
        &["needs a level"],
    );
    fail_with(
        args(&[
            &"graph",
            &"--config",
            &config,
            &"--level",
            &"0.1",
            &"--out",
            &out,
        ]),
        &["at least 2 minima"],
    );
    let listed = format!(
        "{}\n[graph]\nminima = 3\ncheckpoints = [\"a\", \"b\"]\n",
        tiny()
    );
    let bad = write(dir.path(), "bad.toml", &listed);
    fail_with(
        args(&[
            &"graph",
            &"--config",
            &bad,
            &"--level",
            &"0.1",
            &"--out",
            &out,
        ]),
        &["graph.minima is 3 but graph.checkpoints lists 2"],
    );
    assert!(!out.join("graph.json").exists());
}

/// Shards take whole levels (level i to shard i mod N, each training the minima to its own
/// lowest level) and merge to the single-process graph; the merge refuses unfinished,
/// missing and mismatched shards. A graph file holding an infinite barrier (a line that met
/// NaN) resumes; truncated, non-JSON and `null`-barrier files are refused, naming the file.
#[test]
fn graph_shards_merge_to_the_whole_graph_and_crafted_files_are_refused() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let whole = dir.path().join("whole");
    succeed(graph(&config, &whole, &[]));
    let written = read_json(&whole.join("graph.json"));

    let out = dir.path().join("sharded");
    let o: &dyn AsRef<std::ffi::OsStr> = &out;
    let merge = || args(&[&"graph", &"--merge", &"--out", o]);
    fail_with(
        graph(&config, &out, &[&"--shard", &"0/3"]),
        &["at most one shard per level"],
    );
    succeed(graph(&config, &out, &[&"--shard", &"1/2"]));
    let one = read_json(&out.join("shards/1-of-2/graph.json"));
    assert_eq!(one["shard"], serde_json::json!({"index": 1, "count": 2}));
    assert_eq!(one["levels"].as_array().unwrap().len(), 1);
    assert_eq!(f64_at(&one["levels"][0], "level"), 0.06);
    assert!(out.join("shards/1-of-2/graph-0.06.svg").exists());
    fail_with(merge(), &["0-of-2", "no graph.json"]);
    succeed(graph(&config, &out, &[&"--shard", &"0/2"]));
    let run = succeed(merge());
    assert!(run.stdout.contains("| level | minima | components |"));
    let merged = read_json(&out.join("graph.json"));
    assert_eq!(merged.get("shard"), None);
    assert_eq!(
        without_wall_seconds(&merged),
        without_wall_seconds(&written)
    );
    assert!(out.join("components.svg").exists());

    // A shard cut short (its level not finished), or of other settings, is refused.
    let shard0 = out.join("shards/0-of-2/graph.json");
    let original = std::fs::read(&shard0).unwrap();
    let mut cut = read_json(&shard0);
    cut["levels"][0]["done"] = Value::Bool(false);
    std::fs::write(&shard0, serde_json::to_vec_pretty(&cut).unwrap()).unwrap();
    fail_with(merge(), &["0-of-2/graph.json", "not finished", "--resume"]);
    let mut other = read_json(&shard0);
    other["levels"][0]["done"] = Value::Bool(true);
    other["settings"]["seed"] = 9.into();
    std::fs::write(&shard0, serde_json::to_vec_pretty(&other).unwrap()).unwrap();
    fail_with(merge(), &["other graph settings"]);
    std::fs::write(&shard0, &original).unwrap();
    succeed(merge());

    // Crafted files read back by --resume.
    let path = whole.join("graph.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let resume = || graph(&config, &whole, &[&"--resume"]);
    for (case, bad) in [
        ("truncated", text[..text.len() / 2].to_string()),
        ("not JSON", "\u{0}\u{1}binary".to_string()),
        (
            "null barrier",
            text.replacen("\"barrier\": ", "\"barrier\": null, \"was\": ", 1),
        ),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let run = fail_with(resume(), &["graph.json", "not a levelset graph"]);
        assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bad, "{case}");
    }
    // An edge naming a minimum the level does not have.
    let mut edited = written.clone();
    let level = edited["levels"][0].as_object_mut().unwrap();
    let mut edge = level["edges"]
        .as_array()
        .and_then(|e| e.first().cloned())
        .unwrap_or_else(|| {
            serde_json::json!({"a": 0, "b": 1, "method": "dss",
            "outcome": "failed", "reason": "x", "linear_barrier": 1.0, "path_max": null,
            "normalized_length": null, "beads": null, "wall_seconds": 0.0})
        });
    edge["b"] = 7.into();
    level["edges"].as_array_mut().unwrap().push(edge);
    std::fs::write(&path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    fail_with(resume(), &["graph.json", "not those of its 4 minima"]);
    // An infinite barrier is written as "inf" and read back: the finished graph resumes
    // and keeps it.
    let mut infinite = written.clone();
    infinite["levels"][0]["lines"][0]["barrier"] = "inf".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&infinite).unwrap()).unwrap();
    succeed(resume());
    let back = read_json(&path);
    assert_eq!(back["levels"][0]["lines"][0]["barrier"], "inf");
}

/// A graph killed (SIGKILL) as soon as its graph.json first appears resumes to the graph of
/// an uninterrupted run (wall seconds aside).
#[test]
fn a_graph_killed_and_resumed_is_the_uninterrupted_graph() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let longer = |out: &Path| -> Vec<std::ffi::OsString> {
        args(&[
            &"graph",
            &"--config",
            &config,
            &"--levels",
            &"0.1,0.08,0.06,0.05",
            &"--minima",
            &"6",
            &"--out",
            &out,
        ])
    };
    let whole = dir.path().join("whole");
    succeed(longer(&whole));
    let out = dir.path().join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_levelset"))
        .args(longer(&out))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = out.join("graph.json");
    let start = std::time::Instant::now();
    while !file.exists() && start.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = read_json(&file);
    let levels = killed["levels"].as_array().unwrap();
    assert!(
        levels.len() < 4 || levels.iter().any(|l| l["done"] == false),
        "the kill came after the graph finished"
    );
    succeed({
        let mut words = longer(&out);
        words.push("--resume".into());
        words
    });
    assert_eq!(
        without_wall_seconds(&read_json(&file)),
        without_wall_seconds(&read_json(&whole.join("graph.json")))
    );
}
