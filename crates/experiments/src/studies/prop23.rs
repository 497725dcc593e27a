//! `levelset reproduce prop23`: Monte Carlo check of the Gaussian ReLU kernel behind
//! Proposition 2.3, E[relu(w1·x) relu(w2·x)] = (sin α + (π − α) cos α) / (2π) for unit
//! vectors at angle α and x ~ N(0, I).

use std::f64::consts::PI;
use std::path::Path;

use anyhow::{Context, Result};
use levelset_data::standard_normal;
use levelset_models::atomic::write_atomic;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Input dimension: the identity holds in any dimension, so use one where the two vectors
/// are not the whole space.
const DIM: usize = 8;
const SAMPLES: usize = 1_000_000;
const ANGLES: usize = 9;

#[derive(Debug, Clone, Serialize)]
pub struct KernelRow {
    pub angle: f64,
    pub closed_form: f64,
    pub monte_carlo: f64,
    /// Standard error of the Monte Carlo mean.
    pub standard_error: f64,
}

pub fn closed_form(angle: f64) -> f64 {
    (angle.sin() + (PI - angle) * angle.cos()) / (2.0 * PI)
}

/// Both vectors span the first two coordinates, so only those of x matter for the products;
/// the others are still drawn to keep x a genuine N(0, I_DIM) sample.
pub fn monte_carlo(angle: f64, samples: usize, seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (c, s) = (angle.cos(), angle.sin());
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    let mut x = [0.0f64; DIM];
    for _ in 0..samples {
        for xi in x.iter_mut() {
            *xi = standard_normal(&mut rng) as f64;
        }
        let v = x[0].max(0.0) * (c * x[0] + s * x[1]).max(0.0);
        sum += v;
        sum_sq += v * v;
    }
    let n = samples as f64;
    let mean = sum / n;
    let var = (sum_sq / n - mean * mean).max(0.0);
    (mean, (var / n).sqrt())
}

pub fn run(out: &Path) -> Result<Vec<KernelRow>> {
    let rows: Vec<KernelRow> = (0..ANGLES)
        .map(|k| {
            let angle = PI * k as f64 / (ANGLES - 1) as f64;
            let (monte_carlo, standard_error) = monte_carlo(angle, SAMPLES, 1000 + k as u64);
            KernelRow {
                angle,
                closed_form: closed_form(angle),
                monte_carlo,
                standard_error,
            }
        })
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut table = format!(
        "E[relu(w1.x) relu(w2.x)], x ~ N(0, I_{DIM}), {SAMPLES} samples per angle\n\n\
         | angle / pi | closed form | Monte Carlo | standard error | deviation / s.e. |\n\
         |---|---|---|---|---|\n"
    );
    for r in &rows {
        table.push_str(&format!(
            "| {:.3} | {:.5} | {:.5} | {:.5} | {} |\n",
            r.angle / PI,
            r.closed_form,
            r.monte_carlo,
            r.standard_error,
            // At α = π the product is exactly 0 for every sample: no spread to compare with.
            if r.standard_error > 0.0 {
                format!("{:+.2}", (r.monte_carlo - r.closed_form) / r.standard_error)
            } else {
                "exact".into()
            }
        ));
    }
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(&rows)?,
    )?;
    write_atomic(&out.join("summary.md"), table.as_bytes())?;
    println!("{table}");
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_known_values() {
        // α = 0: E[relu(z)^2] = 1/2; α = π: the two ReLUs never fire together.
        assert!((closed_form(0.0) - 0.5).abs() < 1e-12);
        assert!(closed_form(PI).abs() < 1e-12);
        assert!((closed_form(PI / 2.0) - 1.0 / (2.0 * PI)).abs() < 1e-12);
    }

    #[test]
    fn monte_carlo_agrees_with_the_closed_form() {
        for angle in [0.3, 1.2, 2.5] {
            let (mean, se) = monte_carlo(angle, 50_000, 7);
            assert!(
                (mean - closed_form(angle)).abs() < 5.0 * se,
                "angle {angle}: {mean} vs {}",
                closed_form(angle)
            );
        }
    }
}
