//! `levelset floor`: every seed trains its whole budget, its curve and lowest energy are kept,
//! and a rerun resumes instead of retraining.

use crate::common::{args, edit, fail_with, read_json, succeed, tiny, write};

#[test]
fn floor_keeps_each_seeds_curve_and_lowest_energy_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("floor");
    let floor = |config: &std::path::Path, seeds: &str, steps: &str| {
        [
            "floor",
            "--config",
            config.to_str().unwrap(),
            "--seeds",
            seeds,
            "--steps",
            steps,
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
    };
    let args = |seeds: &str, steps: &str| floor(&config, seeds, steps);
    let first = succeed(args("2", "200"));
    assert!(
        first.stdout.contains("floor (mean ± standard error"),
        "{}",
        first.stdout
    );
    let results = read_json(&out.join("floor.json"));
    let seeds = results["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 2);
    let mut bests = Vec::new();
    for (k, seed) in seeds.iter().enumerate() {
        assert_eq!(seed["seed"].as_u64(), Some(k as u64));
        let curve: Vec<(u64, f64)> = seed["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        // The untrained model, then every 10 steps (check_every) to the whole budget.
        let steps: Vec<u64> = curve.iter().map(|p| p.0).collect();
        assert_eq!(steps, (0..=200).step_by(10).collect::<Vec<u64>>());
        let (best_step, best) = curve
            .iter()
            .copied()
            .reduce(|a, b| if b.1 < a.1 { b } else { a })
            .unwrap();
        assert_eq!(seed["best"].as_f64(), Some(best));
        assert_eq!(seed["best_step"].as_u64(), Some(best_step));
        assert_eq!(seed["last"].as_f64(), Some(curve.last().unwrap().1));
        assert!(best < curve[0].1, "training lowered the energy");
        bests.push(best);
    }
    assert_ne!(bests[0], bests[1], "seeds differ");
    let min = bests[0].min(bests[1]);
    assert_eq!(results["floor_min"].as_f64(), Some(min));
    assert_eq!(
        results["floor_mean"].as_f64(),
        Some((bests[0] + bests[1]) / 2.0)
    );
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 21);
    assert!(
        std::fs::read_to_string(out.join("floor.md"))
            .unwrap()
            .contains("| 1 |")
    );

    // A third seed resumes: the first two are kept as they were, not trained again.
    succeed(args("3", "200"));
    let resumed = read_json(&out.join("floor.json"));
    let resumed_seeds = resumed["seeds"].as_array().unwrap();
    assert_eq!(resumed_seeds.len(), 3);
    assert_eq!(
        resumed_seeds[..2],
        seeds[..],
        "seeds 0 and 1 kept, wall times included"
    );

    // Another budget is another measurement: refused, not mixed in.
    fail_with(args("3", "300"), &["floor.json", "--steps"]);
    // The sweep's levels do not change what trains: the seeds are kept.
    let relevelled = write(
        dir.path(),
        "relevelled.toml",
        &edit(&tiny(), "levels = [0.1, 0.06]", "levels = [0.2]"),
    );
    succeed(floor(&relevelled, "3", "200"));
    let kept = read_json(&out.join("floor.json"));
    assert_eq!(kept["seeds"], resumed["seeds"]);
    // A changed optimizer is another measurement.
    let faster = write(
        dir.path(),
        "faster.toml",
        &edit(&tiny(), "lr = 0.05", "lr = 0.06"),
    );
    fail_with(floor(&faster, "3", "200"), &["train.optimizer.lr"]);
}

/// `levelset depth` draws a sweep against its measured floor, and says what is missing.
#[test]
fn depth_draws_a_sweep_against_its_floor() {
    use crate::common::sweep_args;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let sweep = dir.path().join("sweep");
    let out = dir.path().join("depth");
    let depth =
        |spec: &str| ["depth", "--sweep", spec, "--out", out.to_str().unwrap()].map(String::from);
    let spec = format!("quadratic={}", sweep.display());
    succeed(sweep_args(&config, &sweep, &[]));
    // Without a floor measurement, the error says how to make one.
    fail_with(depth(&spec), &["floor.json", "levelset floor"]);
    let floor_dir = sweep.join("floor");
    succeed([
        "floor",
        "--config",
        config.to_str().unwrap(),
        "--seeds",
        "2",
        "--steps",
        "300",
        "--out",
        floor_dir.to_str().unwrap(),
    ]);
    let run = succeed(depth(&spec));
    let floor = read_json(&floor_dir.join("floor.json"))["floor_mean"]
        .as_f64()
        .unwrap();
    // One row per level of the tiny sweep (0.1 and 0.06), each divided by the floor.
    for level in [0.1, 0.06] {
        let row = format!("| quadratic | test_loss | {floor:.4}");
        let ratio = format!("| {level} | {:.3} |", level / floor);
        assert!(run.stdout.contains(&row), "{}", run.stdout);
        assert!(run.stdout.contains(&ratio), "{ratio} in {}", run.stdout);
    }
    for file in [
        "length.svg",
        "length.png",
        "beads.svg",
        "beads.png",
        "depth.md",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    // A task outside the paper's Figure 1 (a ResNet) is drawn by its name, without a paper
    // line; a spec without a name is refused.
    succeed(depth(&format!("resnet20={}", sweep.display())));
    let svg = std::fs::read_to_string(out.join("length.svg")).unwrap();
    assert!(svg.contains("resnet20 (levelset") && !svg.contains("(paper"));
    fail_with(depth("=somewhere"), &["a task's name"]);

    // depth draws the stored summary: one its rows do not give (a mean length edited) is
    // refused, naming the file.
    let path = sweep.join("results.json");
    let honest = std::fs::read(&path).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&honest).unwrap();
    let level = edited["summary"][0].as_object_mut().unwrap();
    let key = level
        .keys()
        .find(|k| level[k.as_str()].is_f64() && k.as_str() != "level")
        .cloned()
        .expect("a summary field holding a number");
    let value = level[&key].as_f64().unwrap();
    level.insert(key, (value * 0.5 + 1.0).into());
    std::fs::write(&path, serde_json::to_vec(&edited).unwrap()).unwrap();
    fail_with(
        depth(&spec),
        &["results.json", "its summary is not the one its rows give"],
    );
    std::fs::write(&path, &honest).unwrap();
    succeed(depth(&spec));
}

/// A floor.json edited between runs (a lower best than its curve reaches, a NaN, a seed
/// twice) is refused by the resuming run, naming the file and the seed.
#[test]
fn a_resumed_floor_checks_the_seeds_it_keeps() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let out = dir.path().join("floor");
    let floor = |seeds: &str| {
        args(&[
            &"floor",
            &"--config",
            &config,
            &"--seeds",
            &seeds,
            &"--steps",
            &"60",
            &"--out",
            &out,
        ])
    };
    succeed(floor("1"));
    let path = out.join("floor.json");
    let honest = std::fs::read(&path).unwrap();
    type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
    let edits: [(Edit, &str); 3] = [
        (
            &|r| r["seeds"][0]["best"] = 1e-9.into(),
            "seed 0: it records best 0.000000001",
        ),
        (
            &|r| r["seeds"][0]["curve"][1][1] = serde_json::Value::Null,
            "parsing",
        ),
        (
            &|r| {
                let seed = r["seeds"][0].clone();
                r["seeds"].as_array_mut().unwrap().push(seed);
            },
            "seed 0 appears twice",
        ),
    ];
    for (edit, expected) in edits {
        let mut results: serde_json::Value = serde_json::from_slice(&honest).unwrap();
        edit(&mut results);
        std::fs::write(&path, serde_json::to_vec(&results).unwrap()).unwrap();
        fail_with(floor("2"), &["floor.json", expected]);
    }
    std::fs::write(&path, &honest).unwrap();
    succeed(floor("2"));
}
