//! The curvature of a landscape at a point: the largest eigenvalues of the Hessian of the
//! net's training loss (Lanczos) and its trace (Hutchinson), from Hessian-vector products.
//!
//! Burn has no second derivatives (tracel-ai/burn#1942), so a product `H v` is a central
//! difference of two gradients, `(g(w + e v) - g(w - e v)) / 2e`: exact for a quadratic loss up
//! to rounding, with an error of order `e^2` otherwise. `e` balances that error against the
//! gradients' float32 rounding, which the difference divides by `e`: the cube root of float32's
//! epsilon, times the point's root-mean-square weight (the scale its coordinates vary on), for
//! a unit `v`.
//!
//! Both gradients hold the activation pattern of the point (its ReLU masks and max-pool
//! choices, [`Pattern`]): a ReLU net is piecewise polynomial in its weights, and a step across
//! one of its switches would measure the jump of the gradient there, an error that does not
//! shrink with `e`. Held, the difference is the Hessian of the point's own piece, the one
//! autograd's double backward computes almost everywhere.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_data::standard_normal;
use levelset_models::flat::unflatten;
use levelset_models::pattern::Pattern;
use levelset_models::{CurvatureLoss, DataSplit, Landscape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What `levelset hessian` measures, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HessianConfig {
    /// The largest eigenvalues wanted (0: none).
    pub top: usize,
    /// Lanczos iterations (at least `top`; more sharpen the eigenvalues and shrink their
    /// residuals).
    pub iterations: usize,
    /// Hutchinson probes for the trace (0: no trace).
    pub probes: usize,
    pub split: DataSplit,
    pub examples: usize,
    /// Seeds the Lanczos start vector and the trace's probes.
    pub seed: u64,
}

impl HessianConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.top == 0 && self.probes == 0 {
            return Err("nothing to measure: ask for eigenvalues (--top) or the trace".into());
        }
        if self.top > 0 && self.iterations < self.top {
            return Err(format!(
                "{} Lanczos iterations cannot give {} eigenvalues",
                self.iterations, self.top
            ));
        }
        Ok(())
    }
}

/// An eigenvalue of the Hessian and how well its Ritz vector `y` satisfies `H y = λ y`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eigenvalue {
    pub value: f64,
    /// `||H y - λ y||` for the unit Ritz vector `y`, one more product measured.
    pub residual: f64,
}

/// The trace's Hutchinson estimate: the mean of `z^T H z` over Rademacher probes `z`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub estimate: f64,
    pub standard_error: f64,
    pub probes: usize,
}

/// What `levelset hessian` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HessianReport {
    pub top_eigenvalues: Vec<Eigenvalue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    pub split: DataSplit,
    pub examples: usize,
    pub lanczos_iterations: usize,
    /// Hessian-vector products as central differences of gradients with this step (for a
    /// unit vector).
    pub difference_step: f64,
    pub hessian_vector_products: usize,
    /// The net's ReLU and max-pool layers whose choices at the point both gradients of a
    /// product hold (absent for a smooth net, which has none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_switching_layers: usize,
    pub seed: u64,
    pub num_params: usize,
    /// What makes these numbers doubtful (see [`doubts`]); absent when nothing does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The largest residual, relative to the top eigenvalue, that still reads as a measurement.
/// Lanczos's residuals on a smooth loss are far below it (1e-4 of the top eigenvalue on the
/// MNIST MLP fixture, at most 5e-2 on the deep linear strings); switches of a large ReLU
/// net crossed within the difference step made them 40-80 % before the products held the
/// point's activation pattern.
pub const DOUBTFUL_RESIDUAL: f64 = 0.1;

/// Why eigenvalues with these residuals are not a measurement: a residual above
/// [`DOUBTFUL_RESIDUAL`] times the top eigenvalue means the products are not those of one
/// symmetric matrix (a loss or a net with kinks within the difference step).
pub fn doubts(eigenvalues: &[Eigenvalue]) -> Vec<String> {
    let Some(top) = eigenvalues.first() else {
        return Vec::new();
    };
    let scale = top.value.abs();
    // NaN is the worst residual: no measurement at all.
    let worst = eigenvalues
        .iter()
        .map(|e| e.residual)
        .fold(0.0, |w, r| if r.is_nan() || r > w { r } else { w });
    if worst.is_finite() && worst <= DOUBTFUL_RESIDUAL * scale {
        return Vec::new();
    }
    vec![format!(
        "the largest residual ||H y - λ y|| is {worst:.4} against a top eigenvalue of {:.4}: \
         the Hessian-vector products are not those of one matrix (something switches within \
         the difference step that the held activation pattern does not cover, or the \
         gradients' rounding outweighs the curvature), so these eigenvalues and the trace are \
         not a measurement",
        top.value
    )]
}

/// Hessian-vector products of a landscape's [`Landscape::curvature_loss`] at one point.
pub struct Curvature<'a, B: AutodiffBackend, L: Landscape<B>> {
    loss: CurvatureLoss<'a, B, L::Model>,
    /// The point's activation pattern, held by every gradient.
    pattern: Pattern<B>,
    template: L::Model,
    point: Tensor<B::InnerBackend, 1>,
    step: f64,
    products: usize,
}

impl<'a, B: AutodiffBackend, L: Landscape<B>> Curvature<'a, B, L> {
    /// At `point` (a flat vector), over the first `examples` examples of `split`, which the
    /// landscape prepares once (or says why it cannot).
    pub fn new(
        landscape: &'a L,
        point: Tensor<B::InnerBackend, 1>,
        split: DataSplit,
        examples: usize,
    ) -> Result<Self, String> {
        let template = landscape.init(0);
        let n = point.dims()[0];
        let rms = (point
            .clone()
            .powi_scalar(2)
            .sum()
            .into_scalar()
            .elem::<f64>()
            / n as f64)
            .sqrt();
        let loss = landscape.curvature_loss(split, examples)?;
        let mut pattern = Pattern::recording();
        // A forward pass only: the pattern is what the point's net computes.
        loss(
            &unflatten(template.clone(), Tensor::from_inner(point.clone())),
            &mut pattern,
        );
        Ok(Self {
            loss,
            pattern,
            template,
            point,
            step: f64::from(f32::EPSILON).cbrt() * rms.max(1e-3),
            products: 0,
        })
    }

    /// The difference step for a unit vector.
    pub fn step(&self) -> f64 {
        self.step
    }

    /// Products computed so far.
    pub fn products(&self) -> usize {
        self.products
    }

    pub fn num_params(&self) -> usize {
        self.point.dims()[0]
    }

    /// The ReLU and max-pool layers whose choices the products hold.
    pub fn held_switching_layers(&self) -> usize {
        self.pattern.switching_layers()
    }

    /// The loss's gradient at `w`, the point's activation pattern held (at the point itself,
    /// the loss's own gradient): a Hessian-vector product costs two.
    pub fn gradient(
        &self,
        w: Tensor<B::InnerBackend, 1>,
    ) -> Result<Tensor<B::InnerBackend, 1>, String> {
        let w = Tensor::<B, 1>::from_inner(w).require_grad();
        let loss = (self.loss)(
            &unflatten(self.template.clone(), w.clone()),
            &mut self.pattern.held(),
        );
        w.grad(&loss.backward())
            .ok_or_else(|| "the loss does not depend on the parameters".to_string())
    }

    /// `H v`, `v` of unit norm (the step is scaled for one).
    pub fn product(
        &mut self,
        v: &Tensor<B::InnerBackend, 1>,
    ) -> Result<Tensor<B::InnerBackend, 1>, String> {
        self.products += 1;
        let shift = v.clone().mul_scalar(self.step);
        let plus = self.gradient(self.point.clone() + shift.clone())?;
        let minus = self.gradient(self.point.clone() - shift)?;
        Ok((plus - minus).div_scalar(2.0 * self.step))
    }
}

fn dot<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>) -> f64 {
    (a.clone() * b.clone()).sum().into_scalar().elem::<f64>()
}

fn norm<B: Backend>(a: &Tensor<B, 1>) -> f64 {
    dot(a, a).sqrt()
}

/// A seeded vector of `n` standard normal entries, or Rademacher signs.
fn random<B: Backend>(
    n: usize,
    rng: &mut ChaCha8Rng,
    signs: bool,
    device: &B::Device,
) -> Tensor<B, 1> {
    let values: Vec<f32> = (0..n)
        .map(|_| {
            if !signs {
                standard_normal(rng)
            } else if rng.random::<bool>() {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The `top` largest eigenvalues by Lanczos with full reorthogonalization (`iterations`
/// products; fewer if the Krylov space closes), each with its residual (one product more).
pub fn top_eigenvalues<B: AutodiffBackend, L: Landscape<B>>(
    curvature: &mut Curvature<'_, B, L>,
    top: usize,
    iterations: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Eigenvalue>, String> {
    let n = curvature.num_params();
    let device = curvature.point.device();
    let iterations = iterations.min(n);
    let mut basis: Vec<Tensor<B::InnerBackend, 1>> = Vec::with_capacity(iterations);
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let mut q = random::<B::InnerBackend>(n, rng, false, &device);
    q = q.clone().div_scalar(norm(&q));
    for _ in 0..iterations {
        let mut w = curvature.product(&q)?;
        let a = dot(&w, &q);
        // Full reorthogonalization, twice (Kahan's "twice is enough"): the products' rounding
        // would otherwise bring back converged directions as spurious copies.
        basis.push(q.clone());
        for _ in 0..2 {
            for u in &basis {
                w = w.clone() - u.clone().mul_scalar(dot(&w, u));
            }
        }
        alpha.push(a);
        let b = norm(&w);
        if !a.is_finite() || !b.is_finite() {
            return Err("the Hessian-vector products are not finite".into());
        }
        if basis.len() == iterations || b <= 1e-10 * a.abs().max(1.0) {
            break;
        }
        beta.push(b);
        q = w.div_scalar(b);
    }
    let m = alpha.len();
    let mut tridiagonal = vec![0.0; m * m];
    for i in 0..m {
        tridiagonal[i * m + i] = alpha[i];
        if i + 1 < m {
            tridiagonal[i * m + i + 1] = beta[i];
            tridiagonal[(i + 1) * m + i] = beta[i];
        }
    }
    let (values, vectors) = symmetric_eigen(tridiagonal, m);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| values[j].total_cmp(&values[i]));
    order
        .into_iter()
        .take(top)
        .map(|k| {
            // The Ritz vector: the basis combined by the tridiagonal's eigenvector k.
            let y = basis
                .iter()
                .enumerate()
                .map(|(i, u)| u.clone().mul_scalar(vectors[i * m + k]))
                .reduce(|x, z| x + z)
                .expect("at least one iteration");
            let y = y.clone().div_scalar(norm(&y));
            let hy = curvature.product(&y)?;
            let residual = norm(&(hy - y.mul_scalar(values[k])));
            Ok(Eigenvalue {
                value: values[k],
                residual,
            })
        })
        .collect()
}

/// Hutchinson's estimate of the trace over `probes` Rademacher vectors.
pub fn trace<B: AutodiffBackend, L: Landscape<B>>(
    curvature: &mut Curvature<'_, B, L>,
    probes: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Trace, String> {
    let n = curvature.num_params();
    let device = curvature.point.device();
    let unit = (n as f64).sqrt();
    let samples = (0..probes)
        .map(|_| {
            let z = random::<B::InnerBackend>(n, rng, true, &device);
            // The product is linear in z: measured on the unit z / sqrt(n), scaled back.
            let hz = curvature.product(&z.clone().div_scalar(unit))?;
            Ok(dot(&hz, &z) * unit)
        })
        .collect::<Result<Vec<f64>, String>>()?;
    let mean = samples.iter().sum::<f64>() / probes as f64;
    let standard_error = if probes > 1 {
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (probes - 1) as f64;
        (var / probes as f64).sqrt()
    } else {
        f64::NAN
    };
    Ok(Trace {
        estimate: mean,
        standard_error,
        probes,
    })
}

/// The Hessian's top eigenvalues and trace at `point`, as `config` asks.
pub fn hessian<B: AutodiffBackend, L: Landscape<B>>(
    landscape: &L,
    point: Tensor<B::InnerBackend, 1>,
    config: &HessianConfig,
) -> Result<HessianReport, String> {
    config.validate()?;
    if let Some(caveat) = landscape.curvature_caveat() {
        return Err(caveat);
    }
    let mut curvature = Curvature::new(landscape, point, config.split, config.examples)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let top_eigenvalues = if config.top > 0 {
        top_eigenvalues(&mut curvature, config.top, config.iterations, &mut rng)?
    } else {
        Vec::new()
    };
    let trace = if config.probes > 0 {
        Some(trace(&mut curvature, config.probes, &mut rng)?)
    } else {
        None
    };
    let warnings = doubts(&top_eigenvalues);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Ok(HessianReport {
        top_eigenvalues,
        trace,
        split: config.split,
        examples: config.examples,
        lanczos_iterations: config.iterations,
        difference_step: curvature.step(),
        hessian_vector_products: curvature.products(),
        held_switching_layers: curvature.held_switching_layers(),
        seed: config.seed,
        num_params: curvature.num_params(),
        warnings,
    })
}

/// Eigenvalues and eigenvectors (columns, row-major `m x m`) of a small symmetric matrix by
/// cyclic Jacobi rotations: the tridiagonal of a few dozen Lanczos steps, where no linear
/// algebra crate is among the workspace's dependencies and the rotations converge
/// quadratically.
fn symmetric_eigen(mut a: Vec<f64>, m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; m * m];
    for i in 0..m {
        v[i * m + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * m + j].powi(2))
            .sum();
        let scale: f64 = (0..m)
            .map(|i| a[i * m + i].powi(2))
            .sum::<f64>()
            .max(1e-300);
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..m {
            for q in p + 1..m {
                let apq = a[p * m + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..m {
                    let (akp, akq) = (a[k * m + p], a[k * m + q]);
                    a[k * m + p] = c * akp - s * akq;
                    a[k * m + q] = s * akp + c * akq;
                }
                for k in 0..m {
                    let (apk, aqk) = (a[p * m + k], a[q * m + k]);
                    a[p * m + k] = c * apk - s * aqk;
                    a[q * m + k] = s * apk + c * aqk;
                }
                for k in 0..m {
                    let (vkp, vkq) = (v[k * m + p], v[k * m + q]);
                    v[k * m + p] = c * vkp - s * vkq;
                    v[k * m + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..m).map(|i| a[i * m + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::{Eigenvalue, doubts, symmetric_eigen};

    #[test]
    fn residuals_large_against_the_top_eigenvalue_are_doubted() {
        let pair = |value, residual| Eigenvalue { value, residual };
        // The MNIST MLP fixture's and a deep linear string's: measurements.
        assert!(doubts(&[pair(2.3716, 4e-4)]).is_empty());
        assert!(doubts(&[pair(3.77, 1e-4), pair(3.08, 0.17)]).is_empty());
        assert!(doubts(&[]).is_empty());
        // The MNIST convnet's along a string: not a measurement, and a NaN residual neither.
        let doubted = doubts(&[pair(81.3, 38.0), pair(77.4, 43.9)]);
        assert_eq!(doubted.len(), 1);
        assert!(
            doubted[0].contains("43.9") && doubted[0].contains("81.3"),
            "{doubted:?}"
        );
        assert_eq!(doubts(&[pair(1.0, f64::NAN)]).len(), 1);
    }

    #[test]
    fn jacobi_finds_the_eigenpairs_of_a_symmetric_matrix() {
        // [[2, 1, 0], [1, 2, 1], [0, 1, 2]]: eigenvalues 2 - sqrt 2, 2, 2 + sqrt 2.
        let a = vec![2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0];
        let (mut values, vectors) = symmetric_eigen(a.clone(), 3);
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * vectors[j * 3 + k]).sum();
                assert!((av - values[k] * vectors[i * 3 + k]).abs() < 1e-12);
            }
        }
        values.sort_by(f64::total_cmp);
        let r = 2f64.sqrt();
        for (v, e) in values.iter().zip([2.0 - r, 2.0, 2.0 + r]) {
            assert!((v - e).abs() < 1e-12, "{values:?}");
        }
    }
}
