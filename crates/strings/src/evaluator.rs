//! Energies of points in parameter space: the bridge between flat vectors and a landscape.

use std::cell::Cell;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::flat::{lerp, unflatten};
use levelset_models::{EvalModel, Landscape};

/// Evaluates the landscape's energy at flat parameter vectors, counting evaluations.
pub struct Evaluator<'a, B: AutodiffBackend, L: Landscape<B>> {
    pub landscape: &'a L,
    template: EvalModel<B, L>,
    evaluations: Cell<usize>,
}

impl<'a, B: AutodiffBackend, L: Landscape<B>> Evaluator<'a, B, L> {
    pub fn new(landscape: &'a L) -> Self {
        Self {
            template: landscape.init(0).valid(),
            landscape,
            evaluations: Cell::new(0),
        }
    }

    /// A module shaped like the landscape's model (parameter values are arbitrary).
    pub fn template(&self) -> &EvalModel<B, L> {
        &self.template
    }

    pub fn energy(&self, flat: &Tensor<B::InnerBackend, 1>) -> f64 {
        self.evaluations.set(self.evaluations.get() + 1);
        self.landscape
            .energy(&unflatten(self.template.clone(), flat.clone()))
    }

    /// The energy profile of the straight segment `a -> b` at `t = k / grid` for
    /// `k = 1..grid` (the open interval; the endpoints' energies are known to the caller).
    pub fn segment(
        &self,
        a: &Tensor<B::InnerBackend, 1>,
        b: &Tensor<B::InnerBackend, 1>,
        grid: usize,
    ) -> Vec<(f64, f64)> {
        (1..grid)
            .map(|k| {
                let t = k as f64 / grid as f64;
                (t, self.energy(&lerp(a, b, t)))
            })
            .collect()
    }

    pub fn evaluations(&self) -> usize {
        self.evaluations.get()
    }
}
