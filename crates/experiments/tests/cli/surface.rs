//! `levelset surface`: a trained checkpoint's neighbourhood along filter-normalized
//! directions, as a curve and as a surface.

use std::path::Path;

use tempfile::TempDir;

use crate::common::*;
use crate::train::train;

fn surface(config: &Path, checkpoint: &Path, extra: &[&str], out: &Path) -> serde_json::Value {
    let mut words = args(&[
        &"surface",
        &"--config",
        &config,
        &"--checkpoint",
        &checkpoint,
        &"--out",
        &out,
    ]);
    words.extend(extra.iter().map(Into::into));
    succeed(words);
    read_json(&out.join("surface.json"))
}

fn row(file: &serde_json::Value, key: &str, j: usize) -> Vec<f64> {
    file["grid"][key][j]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn surface_draws_a_curve_and_a_reproducible_surface() {
    let dir = TempDir::new().unwrap();
    let config = write(dir.path(), "tiny.toml", &tiny());
    let model = train(dir.path(), &config, 0.1, 1, "a");
    let trained = f64_at(&read_json(&model.join("model.json")), "energy");

    let out = dir.path().join("curve");
    let curve = surface(
        &config,
        &model,
        &["--dims", "1", "--grid", "7", "--seed", "5"],
        &out,
    );
    assert_eq!(curve["grid"]["y"], serde_json::json!([0.0]));
    assert_eq!(curve["grid"]["x"].as_array().unwrap().len(), 7);
    let directions = curve["directions"].as_array().unwrap();
    assert_eq!(directions.len(), 1);
    assert_eq!(directions[0]["seed"], 5);
    assert!(f64_at(&directions[0], "norm") > 0.0);
    assert!(f64_at(&curve, "model_norm") > 0.0);
    // x = 0 is the checkpoint itself.
    let energy = row(&curve, "energy", 0);
    assert!(
        (energy[3] - trained).abs() <= 1e-6,
        "{energy:?} vs {trained}"
    );
    assert_eq!(row(&curve, "train_loss", 0).len(), 7);
    for name in ["surface.svg", "surface.png", "surface.csv"] {
        assert!(
            std::fs::metadata(out.join(name)).unwrap().len() > 0,
            "{name}"
        );
    }

    let out = dir.path().join("surface");
    let grid = [
        "--dims", "2", "--grid", "5", "--range", "0.5", "--seed", "3",
    ];
    let file = surface(&config, &model, &grid, &out);
    let seeds: Vec<u64> = file["directions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [3, 4]);
    assert_eq!(file["grid"]["energy"].as_array().unwrap().len(), 5);
    let middle = row(&file, "energy", 2);
    assert!(
        (middle[2] - trained).abs() <= 1e-6,
        "{middle:?} vs {trained}"
    );
    // The trained model is the lowest point of its neighbourhood's corners and edges.
    assert!(row(&file, "energy", 0).iter().all(|&e| e > trained));
    for name in ["surface.svg", "surface.png", "surface-train-loss.png"] {
        assert!(
            std::fs::metadata(out.join(name)).unwrap().len() > 0,
            "{name}"
        );
    }
    // The same seed draws the same directions: the same file.
    let again = dir.path().join("again");
    surface(&config, &model, &grid, &again);
    assert_eq!(
        std::fs::read(out.join("surface.json")).unwrap(),
        std::fs::read(again.join("surface.json")).unwrap()
    );
}
