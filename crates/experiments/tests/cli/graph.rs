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
