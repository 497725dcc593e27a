//! The synthetic tasks of Freeman & Bruna (PAPER.md §4–5), each a pure function of its seeds.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// Dense regression data: x row-major [n, d_in], y row-major [n, d_out].
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub n: usize,
    pub d_in: usize,
    pub d_out: usize,
}

/// One draw from N(0, 1) by Box–Muller. Only the cosine half is used, so every draw costs
/// exactly two uniforms and a stream of normals is a plain function of the RNG state.
pub fn standard_normal(rng: &mut impl Rng) -> f32 {
    // 1 - U[0,1) lies in (0,1], keeping the logarithm finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn normals(rng: &mut impl Rng, count: usize, scale: f32) -> Vec<f32> {
    (0..count).map(|_| scale * standard_normal(rng)).collect()
}

/// The two one-dimensional regression targets of Figure 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polynomial {
    /// 0.5x² + 0.25x + 0.1
    Quadratic,
    /// 8x³ − 10x² + 3x
    Cubic,
}

impl Polynomial {
    pub fn eval(&self, x: f32) -> f32 {
        match self {
            Polynomial::Quadratic => (0.5 * x + 0.25) * x + 0.1,
            Polynomial::Cubic => ((8.0 * x - 10.0) * x + 3.0) * x,
        }
    }
}

/// `n` points x ~ U[0,1) with y = `poly`(x). The paper trains each model on its own fresh
/// sample (a different seed per model) and evaluates on one fixed-seed test set.
pub fn polynomial(poly: Polynomial, n: usize, seed: u64) -> Regression {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    let y = x.iter().map(|&v| poly.eval(v)).collect();
    Regression {
        x,
        y,
        n,
        d_in: 1,
        d_out: 1,
    }
}

/// Appendix E: three points of the plane at 120 degrees on the unit circle (angles 0°, 120°,
/// 240°), x1->x2->x3->x1 (targets are the next point). n=3, d_in=d_out=2.
pub fn three_point_cycle() -> Regression {
    let point = |k: usize| {
        let angle = std::f32::consts::TAU * (k % 3) as f32 / 3.0;
        [angle.cos(), angle.sin()]
    };
    Regression {
        x: (0..3).flat_map(point).collect(),
        y: (1..4).flat_map(point).collect(),
        n: 3,
        d_in: 2,
        d_out: 2,
    }
}

/// Random linear regression for deep linear nets (Prop 2.2): x ~ N(0, I_{d_in}),
/// y = W x + noise·N(0,1), with W ~ N(0, 1/d_in) row-major [d_out, d_in]. W is drawn first
/// from the seeded stream, so one seed gives the same W whatever `n` is.
pub fn linear_regression(d_in: usize, d_out: usize, n: usize, noise: f32, seed: u64) -> Regression {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = normals(&mut rng, d_out * d_in, (1.0 / d_in as f32).sqrt());
    let x = normals(&mut rng, n * d_in, 1.0);
    let mut y = Vec::with_capacity(n * d_out);
    for i in 0..n {
        let xi = &x[i * d_in..(i + 1) * d_in];
        for o in 0..d_out {
            let row = &w[o * d_in..(o + 1) * d_in];
            let dot: f32 = row.iter().zip(xi).map(|(a, b)| a * b).sum();
            y.push(dot + noise * standard_normal(&mut rng));
        }
    }
    Regression {
        x,
        y,
        n,
        d_in,
        d_out,
    }
}

/// Spread of the mixture means (std of each coordinate), relative to unit-variance components.
pub const MIXTURE_SPREAD: f32 = 2.0;

/// Low-dimensional task for the width study (Thm 2.4: the energy gap should shrink like
/// O(m^{-1/n}) in the input dimension n = `d`).
///
/// The task (fixed by `task_seed`) is `components` means μ_j ~ N(0, I_d)·[`MIXTURE_SPREAD`].
/// Inputs (drawn with `sample_seed`) come from the equal-weight mixture of N(μ_j, I_d). The
/// target is one smooth, bounded value per point, the mixture's unnormalized density:
/// y(x) = (1/k) Σ_j exp(−‖x − μ_j‖²/2), in (0, 1]. So d_out = 1, and training and test sets
/// of the same task share `task_seed` and differ in `sample_seed`.
pub fn gaussian_mixture(
    d: usize,
    components: usize,
    n: usize,
    task_seed: u64,
    sample_seed: u64,
) -> Result<Regression> {
    if components == 0 {
        return Err(DataError::InvalidArgument(
            "a Gaussian mixture needs at least one component".into(),
        ));
    }
    let means = normals(
        &mut ChaCha8Rng::seed_from_u64(task_seed),
        components * d,
        MIXTURE_SPREAD,
    );
    let mean = |j: usize| &means[j * d..(j + 1) * d];

    let mut rng = ChaCha8Rng::seed_from_u64(sample_seed);
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let component = mean(rng.random_range(0..components));
        let start = x.len();
        x.extend(component.iter().map(|&m| m + standard_normal(&mut rng)));
        let point = &x[start..];
        let density: f32 = (0..components)
            .map(|j| {
                let dist2: f32 = point
                    .iter()
                    .zip(mean(j))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                (-0.5 * dist2).exp()
            })
            .sum();
        y.push(density / components as f32);
    }
    Ok(Regression {
        x,
        y,
        n,
        d_in: d,
        d_out: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_evaluate_the_paper_formulas() {
        assert!((Polynomial::Quadratic.eval(0.0) - 0.1).abs() < 1e-6);
        assert!((Polynomial::Quadratic.eval(1.0) - 0.85).abs() < 1e-6);
        assert!((Polynomial::Quadratic.eval(0.5) - 0.35).abs() < 1e-6);
        assert!((Polynomial::Cubic.eval(1.0) - 1.0).abs() < 1e-6);
        assert!((Polynomial::Cubic.eval(0.5) - 0.0).abs() < 1e-6);
        assert!((Polynomial::Cubic.eval(0.25) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn polynomial_data_is_seeded_and_on_the_curve() {
        let a = polynomial(Polynomial::Cubic, 500, 1);
        assert_eq!(a, polynomial(Polynomial::Cubic, 500, 1));
        assert_ne!(a.x, polynomial(Polynomial::Cubic, 500, 2).x);
        assert_eq!(
            (a.n, a.d_in, a.d_out, a.x.len(), a.y.len()),
            (500, 1, 1, 500, 500)
        );
        assert!(a.x.iter().all(|&v| (0.0..1.0).contains(&v)));
        assert!(
            a.x.iter()
                .zip(&a.y)
                .all(|(&x, &y)| y == Polynomial::Cubic.eval(x))
        );
        let mean = a.x.iter().sum::<f32>() / 500.0;
        assert!((mean - 0.5).abs() < 0.05, "U[0,1) mean {mean}");
    }

    #[test]
    fn three_point_cycle_maps_each_point_to_its_rotation_by_120_degrees() {
        let t = three_point_cycle();
        assert_eq!(
            (t.n, t.d_in, t.d_out, t.x.len(), t.y.len()),
            (3, 2, 2, 6, 6)
        );
        let (s, c) = (std::f32::consts::TAU / 3.0).sin_cos();
        for (p, q) in t.x.chunks(2).zip(t.y.chunks(2)) {
            assert!((p[0].hypot(p[1]) - 1.0).abs() < 1e-6);
            assert!((q[0] - (c * p[0] - s * p[1])).abs() < 1e-6);
            assert!((q[1] - (s * p[0] + c * p[1])).abs() < 1e-6);
        }
        // The targets are the inputs in cyclic order: x2, x3, x1.
        assert_eq!(&t.y[..4], &t.x[2..]);
        assert_eq!(&t.y[4..], &t.x[..2]);
    }

    #[test]
    fn standard_normal_has_unit_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let v = normals(&mut rng, 20_000, 1.0);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
    }

    #[test]
    fn linear_regression_shapes_seeds_and_noise_free_fit() {
        let a = linear_regression(5, 3, 40, 0.1, 9);
        assert_eq!(
            (a.n, a.d_in, a.d_out, a.x.len(), a.y.len()),
            (40, 5, 3, 200, 120)
        );
        assert_eq!(a, linear_regression(5, 3, 40, 0.1, 9));
        assert_ne!(a.x, linear_regression(5, 3, 40, 0.1, 10).x);

        // Without noise the targets are one linear map, the same W for any n: W solved from
        // two points of a small sample must predict every point of a larger one.
        let small = linear_regression(2, 1, 3, 0.0, 4);
        let large = linear_regression(2, 1, 50, 0.0, 4);
        let (x, y) = (&small.x, &small.y);
        let det = x[0] * x[3] - x[1] * x[2];
        let w0 = (y[0] * x[3] - y[1] * x[1]) / det;
        let w1 = (x[0] * y[1] - x[2] * y[0]) / det;
        for (xi, yi) in large.x.chunks(2).zip(&large.y) {
            assert!((w0 * xi[0] + w1 * xi[1] - yi).abs() < 1e-3);
        }
    }

    #[test]
    fn gaussian_mixture_task_and_sample_seeds_are_separate() {
        let train = gaussian_mixture(3, 4, 200, 1, 10).unwrap();
        assert_eq!(
            (
                train.n,
                train.d_in,
                train.d_out,
                train.x.len(),
                train.y.len()
            ),
            (200, 3, 1, 600, 200)
        );
        assert_eq!(train, gaussian_mixture(3, 4, 200, 1, 10).unwrap());
        assert!(train.y.iter().all(|&y| y > 0.0 && y <= 1.0));

        let other_task = gaussian_mixture(3, 4, 200, 2, 10).unwrap();
        assert_ne!(train.x, other_task.x);
        let test = gaussian_mixture(3, 4, 200, 1, 11).unwrap();
        assert_ne!(train.x, test.x);
        // One component in one dimension: y is the Gaussian bump around the task's mean.
        let one = gaussian_mixture(1, 1, 50, 3, 3).unwrap();
        let mu = normals(&mut ChaCha8Rng::seed_from_u64(3), 1, MIXTURE_SPREAD)[0];
        for (x, y) in one.x.iter().zip(&one.y) {
            assert!((y - (-0.5 * (x - mu) * (x - mu)).exp()).abs() < 1e-6);
        }
        assert!(matches!(
            gaussian_mixture(2, 0, 5, 0, 0),
            Err(DataError::InvalidArgument(_))
        ));
    }
}
