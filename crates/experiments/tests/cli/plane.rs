//! `levelset plane`: the plane through three trained checkpoints, through a `connect` run,
//! and resuming a run from its finished rows.

use std::path::Path;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;
use crate::train::train;

fn plane_args(
    config: &Path,
    models: &[&dyn AsRef<std::ffi::OsStr>],
    extra: &[&str],
    out: &Path,
) -> Vec<std::ffi::OsString> {
    let mut words = args(&[&"plane", &"--config", &config, &"--out", &out]);
    words.extend(models.iter().map(|m| m.as_ref().to_os_string()));
    words.extend(extra.iter().map(Into::into));
    words
}

fn rows(file: &Value, key: &str) -> Vec<Vec<f64>> {
    file["grid"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn assert_figure(path: &Path) {
    let len = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    assert!(len > 0, "{} is empty", path.display());
}

#[test]
fn plane_through_three_checkpoints_resumes_to_the_same_file() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let [a, b, c] = [(1, "a"), (2, "b"), (3, "c")]
        .map(|(seed, name)| train(dir.path(), &config, 0.1, seed, name));
    let models: [&dyn AsRef<std::ffi::OsStr>; 6] = [&"--a", &a, &"--b", &b, &"--c", &c];
    let out = dir.path().join("plane");
    let run = succeed(plane_args(&config, &models, &["--grid", "5"], &out));
    assert!(run.stdout.contains("plane.json"), "{}", run.stdout);

    let file = read_json(&out.join("plane.json"));
    assert_eq!(file["energy"], "test_loss");
    assert_eq!(f64_at(&file, "level"), 0.1);
    assert_eq!(file["settings"]["grid"], 5);
    assert_eq!(f64_at(&file["settings"], "margin"), 0.2);
    assert!(file["bn"].is_null());
    let (energy, train_loss) = (rows(&file, "energy"), rows(&file, "train_loss"));
    assert_eq!(energy.len(), 5);
    assert!(energy.iter().chain(&train_loss).all(|r| r.len() == 5));
    assert!(
        energy
            .iter()
            .flatten()
            .chain(train_loss.iter().flatten())
            .all(|v| v.is_finite() && *v > 0.0)
    );
    // The test loss and the training loss are measured on different points.
    assert_ne!(energy, train_loss);
    let marks = file["models"].as_array().unwrap();
    assert_eq!(marks.len(), 3);
    assert_eq!((f64_at(&marks[0], "x"), f64_at(&marks[0], "y")), (0.0, 0.0));
    let u_norm = f64_at(&file, "u_norm");
    assert!(
        (f64_at(&marks[1], "x") - u_norm).abs() < 1e-3 * u_norm,
        "{file}"
    );
    assert!(f64_at(&marks[1], "y").abs() < 1e-3 * u_norm, "{file}");
    assert!((f64_at(&marks[2], "y") - f64_at(&file, "v_norm")).abs() < 1e-3 * u_norm);
    // The grid covers the three models with the margin on each side.
    let x: Vec<f64> = file["grid"]["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(x[0] < 0.0 && x[4] > u_norm);
    let csv = std::fs::read_to_string(out.join("plane.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("x,y,energy,train_loss"));
    assert_eq!(csv.lines().count(), 1 + 25);
    for name in [
        "plane.svg",
        "plane.png",
        "plane-train-loss.svg",
        "plane-train-loss.png",
    ] {
        assert_figure(&out.join(name));
    }

    // A second run into the same folder is refused.
    fail_with(
        plane_args(&config, &models, &["--grid", "5"], &out),
        &["plane.json exists", "--resume"],
    );

    // A run that stopped after two rows resumes to the file of the uninterrupted run.
    let partial = dir.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let mut cut = file.clone();
    for key in ["energy", "train_loss"] {
        cut["grid"][key].as_array_mut().unwrap().truncate(2);
    }
    let cut_text = serde_json::to_string_pretty(&cut).unwrap();
    std::fs::write(partial.join("plane.json"), &cut_text).unwrap();
    // Other settings are refused, naming what differs.
    fail_with(
        plane_args(&config, &models, &["--grid", "6", "--resume"], &partial),
        &["cannot resume", "settings.grid"],
    );
    fail_with(
        plane_args(
            &config,
            &[&"--a", &b, &"--b", &a, &"--c", &c],
            &["--grid", "5", "--resume"],
            &partial,
        ),
        &["cannot resume", "settings.models.checkpoints.a"],
    );
    let run = succeed(plane_args(
        &config,
        &models,
        &["--grid", "5", "--resume"],
        &partial,
    ));
    assert!(run.stdout.contains("2 of 5 rows done"), "{}", run.stdout);
    assert_eq!(
        std::fs::read(partial.join("plane.json")).unwrap(),
        std::fs::read(out.join("plane.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(partial.join("plane.csv")).unwrap(),
        std::fs::read(out.join("plane.csv")).unwrap()
    );
}

#[test]
fn plane_through_a_connect_run_projects_its_path() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let a = train(dir.path(), &config, 0.1, 1, "a");
    let b = train(dir.path(), &config, 0.1, 2, "b");
    let run_dir = dir.path().join("ab");
    succeed(connect_words(&config, [&a, &b], "0.1", "dss", &run_dir));
    let report = read_json(&run_dir.join("report.json"));
    let beads = u64_at(&report, "beads") as usize;

    let out = dir.path().join("plane");
    succeed(plane_args(
        &config,
        &[&"--path", &run_dir],
        &["--grid", "4"],
        &out,
    ));
    let file = read_json(&out.join("plane.json"));
    assert_eq!(f64_at(&file, "level"), 0.1);
    let path = file["path"].as_array().unwrap();
    assert_eq!(path.len(), beads);
    let marks = file["models"].as_array().unwrap();
    // The path starts at a and ends at b; c is one of its beads, and every bead of a path
    // with one bend between them lies in the plane.
    assert_eq!((f64_at(&path[0], "x"), f64_at(&path[0], "y")), (0.0, 0.0));
    let last = &path[beads - 1];
    assert!((f64_at(last, "x") - f64_at(&marks[1], "x")).abs() < 1e-9);
    let c = (f64_at(&marks[2], "x"), f64_at(&marks[2], "y"));
    assert!(
        path.iter().any(|p| (f64_at(p, "x"), f64_at(p, "y")) == c),
        "{file}"
    );
    assert!(path.iter().all(|p| f64_at(p, "off_plane").is_finite()));
    assert_eq!(rows(&file, "energy").len(), 4);
    assert_figure(&out.join("plane.png"));

    // --also draws another run between the same endpoints on the same plane: a Bezier
    // curve beside the string; a run between other endpoints is refused.
    let curves = write(
        dir.path(),
        "curves.toml",
        &format!("{}{}", tiny(), crate::methods::PATH_SECTIONS),
    );
    let bezier = dir.path().join("ab-bezier");
    succeed(connect_words(&curves, [&a, &b], "0.1", "bezier", &bezier));
    let samples = u64_at(&read_json(&bezier.join("report.json")), "beads") as usize;
    let both = dir.path().join("plane-both");
    succeed(plane_args(
        &config,
        &[&"--path", &run_dir, &"--also", &bezier],
        &["--grid", "4"],
        &both,
    ));
    let file = read_json(&both.join("plane.json"));
    assert_eq!(file["method"], "dss");
    let also = file["also"].as_array().unwrap();
    assert_eq!(also.len(), 1);
    assert_eq!(also[0]["method"], "bezier");
    let curve = also[0]["points"].as_array().unwrap();
    assert_eq!(curve.len(), samples);
    // The curve starts at a and ends at b, in the plane; its middle leaves the straight line.
    assert_eq!((f64_at(&curve[0], "x"), f64_at(&curve[0], "y")), (0.0, 0.0));
    let end = &curve[samples - 1];
    assert!(
        (f64_at(end, "x") - f64_at(&marks[1], "x")).abs() < 1e-5,
        "{file}"
    );
    assert!(f64_at(end, "y").abs() < 1e-5, "{file}");
    assert!(f64_at(end, "off_plane") < 1e-5, "{file}");
    let middle = &curve[samples / 2];
    assert!(
        f64_at(middle, "y").abs() + f64_at(middle, "off_plane") > 1e-4,
        "{file}"
    );
    // The plane and its grid are --path's: the same with or without --also but for the
    // extent the curve may widen.
    assert_eq!(file["models"], read_json(&out.join("plane.json"))["models"]);
    assert_figure(&both.join("plane.png"));
    let c_run = dir.path().join("ac");
    let c = train(dir.path(), &config, 0.1, 3, "c");
    succeed(connect_words(&config, [&a, &c], "0.1", "dss", &c_run));
    fail_with(
        plane_args(
            &config,
            &[&"--path", &run_dir, &"--also", &c_run],
            &[],
            &dir.path().join("plane-other"),
        ),
        &["--also", "last endpoint", "same two endpoints"],
    );
    // --also goes with --path.
    fail_with(
        plane_args(
            &config,
            &[&"--a", &a, &"--b", &b, &"--c", &c, &"--also", &bezier],
            &[],
            &dir.path().join("plane-abc"),
        ),
        &["--path"],
    );

    // --path and the checkpoints are one or the other.
    fail_with(
        plane_args(
            &config,
            &[&"--path", &run_dir, &"--a", &a],
            &[],
            &dir.path().join("x"),
        ),
        &["cannot be used with"],
    );
}
