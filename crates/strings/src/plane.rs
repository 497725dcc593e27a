//! The plane through three points of parameter space (Garipov et al. 2018, their `plane.py`):
//! an orthonormal basis by Gram–Schmidt, coordinates of points in it, the grid that covers
//! them, and the grid's points as flat vectors, one row of the grid per tensor so that a
//! landscape evaluates a whole row in one stacked pass.
//!
//! Coordinates are plain Euclidean distances in parameter space (not multiples of `|b - a|`):
//! `a` is the origin, `b` lies on the x axis at `(|b - a|, 0)`, and `c` at
//! `(<c - a, u>, |c - a - <c - a, u> u|)` with `y > 0`. A figure of the plane then shows
//! true lengths on both axes, and two planes of one landscape compare on the same scale.

use burn::prelude::*;

/// An orthonormal basis `u`, `v` of the plane through `a`, `b`, `c`, with `a` as its origin.
#[derive(Debug, Clone)]
pub struct Plane<B: Backend> {
    origin: Tensor<B, 1>,
    u: Tensor<B, 1>,
    v: Tensor<B, 1>,
    /// `|b - a|`: the length `u` was normalized by.
    pub u_norm: f64,
    /// The length of `c - a`'s component orthogonal to `u`, which `v` was normalized by.
    pub v_norm: f64,
}

fn dot<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>) -> f64 {
    (a.clone() * b.clone()).sum().into_scalar().elem::<f64>()
}

impl<B: Backend> Plane<B> {
    /// The plane through `a`, `b` and `c`: `u = (b - a) / |b - a|`, `v` the unit vector along
    /// `c - a` minus its projection on `u`. An error when the three points do not span a
    /// plane (`b = a`, or `c` on the line through them).
    pub fn through(a: &Tensor<B, 1>, b: &Tensor<B, 1>, c: &Tensor<B, 1>) -> Result<Self, String> {
        let u = b.clone() - a.clone();
        let u_norm = dot(&u, &u).sqrt();
        let scale = dot(a, a).sqrt().max(1.0);
        if u_norm.is_nan() || u_norm <= 1e-6 * scale {
            return Err(format!(
                "the first two models are {u_norm:e} apart: they do not span a line"
            ));
        }
        let u = u.div_scalar(u_norm);
        let w = c.clone() - a.clone();
        let v = w.clone() - u.clone().mul_scalar(dot(&w, &u));
        let v_norm = dot(&v, &v).sqrt();
        if v_norm.is_nan() || v_norm <= 1e-6 * scale {
            return Err(format!(
                "the third model lies {v_norm:e} from the line through the first two: the \
                 three do not span a plane"
            ));
        }
        Ok(Plane {
            origin: a.clone(),
            u,
            v: v.div_scalar(v_norm),
            u_norm,
            v_norm,
        })
    }

    /// The coordinates of `point`'s orthogonal projection onto the plane.
    pub fn coordinates(&self, point: &Tensor<B, 1>) -> (f64, f64) {
        let w = point.clone() - self.origin.clone();
        (dot(&w, &self.u), dot(&w, &self.v))
    }

    /// How far `point` lies from the plane (the length of what the projection drops).
    pub fn distance(&self, point: &Tensor<B, 1>) -> f64 {
        let (x, y) = self.coordinates(point);
        let w = point.clone() - self.point(x, y);
        dot(&w, &w).sqrt()
    }

    /// The point of the plane at `(x, y)`: `a + x u + y v`, summed as [`Plane::row`] sums it
    /// (the same bits).
    pub fn point(&self, x: f64, y: f64) -> Tensor<B, 1> {
        self.origin.clone() + self.v.clone().mul_scalar(y) + self.u.clone().mul_scalar(x)
    }

    /// The points `(x, y)` for every `x` of `xs`, one row each: [xs.len(), n], the rows of
    /// one stacked evaluation.
    pub fn row(&self, xs: &[f64], y: f64) -> Tensor<B, 2> {
        span_row(&self.origin, &self.u, Some(&self.v), xs, y)
    }
}

/// The points `origin + x u + y v` for every `x` of `xs` (`v` absent: `origin + x u`), one
/// row each: [xs.len(), n], the rows of one stacked evaluation.
pub fn span_row<B: Backend>(
    origin: &Tensor<B, 1>,
    u: &Tensor<B, 1>,
    v: Option<&Tensor<B, 1>>,
    xs: &[f64],
    y: f64,
) -> Tensor<B, 2> {
    let base = match v {
        Some(v) => origin.clone() + v.clone().mul_scalar(y),
        None => origin.clone(),
    };
    // Row by row and a copy, as `levelset_models::flat::lerps` (flex's broadcasts are slower
    // than its plain kernels).
    Tensor::stack(
        xs.iter()
            .map(|&x| base.clone() + u.clone().mul_scalar(x))
            .collect(),
        0,
    )
}

/// The rectangle `[x_lo, x_hi] x [y_lo, y_hi]` holding `points`, widened on each side by
/// `margin` times its extent along that axis (Garipov et al.'s margins).
pub fn bounds(points: &[(f64, f64)], margin: f64) -> [(f64, f64); 2] {
    let extent = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = margin * (hi - lo);
        (lo - pad, hi + pad)
    };
    [
        extent(points.iter().map(|p| p.0).collect()),
        extent(points.iter().map(|p| p.1).collect()),
    ]
}

/// `n` evenly spaced values from `lo` to `hi`, both included (`lo` alone when `n` is 1).
pub fn axis(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

/// The index of the point of `points` farthest from the straight line through `a` and `b`,
/// and that distance; `None` when `points` is empty or `a = b`.
pub fn farthest_from_line<B: Backend>(
    a: &Tensor<B, 1>,
    b: &Tensor<B, 1>,
    points: &[Tensor<B, 1>],
) -> Option<(usize, f64)> {
    let u = b.clone() - a.clone();
    let length = dot(&u, &u).sqrt();
    if length == 0.0 {
        return None;
    }
    let u = u.div_scalar(length);
    points
        .iter()
        .map(|p| {
            let w = p.clone() - a.clone();
            let off = w.clone() - u.clone().mul_scalar(dot(&w, &u));
            dot(&off, &off).sqrt()
        })
        .enumerate()
        .max_by(|x, y| x.1.total_cmp(&y.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_bounds() {
        assert_eq!(axis(-1.0, 1.0, 5), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(axis(2.0, 3.0, 1), vec![2.0]);
        let [x, y] = bounds(&[(0.0, 0.0), (2.0, 0.0), (1.0, 1.0)], 0.25);
        assert_eq!(x, (-0.5, 2.5));
        assert_eq!(y, (-0.25, 1.25));
    }
}
