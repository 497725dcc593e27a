//! Energies of points in parameter space: the bridge between flat vectors and a landscape.

use std::cell::Cell;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::flat::{lerp_rows, lerps, unflatten};
use levelset_models::landscape::{StackedPass, pointwise_energies};
use levelset_models::{EvalModel, Landscape};

use crate::path::SegmentCheck;

/// Evaluates the landscape's energy at flat parameter vectors, counting evaluations.
pub struct Evaluator<'a, B: AutodiffBackend, L: Landscape<B>> {
    pub landscape: &'a L,
    template: EvalModel<B, L>,
    /// Many points at once go through the landscape's stacked pass (one pass over the data
    /// for all of them); off, they are evaluated one by one; unset, whichever pays.
    stacked: Option<bool>,
    evaluations: Cell<usize>,
}

impl<'a, B: AutodiffBackend, L: Landscape<B>> Evaluator<'a, B, L> {
    /// Stacks points where the landscape's stacked pass measured faster on their backend
    /// ([`Landscape::stacked_pass`]).
    pub fn new(landscape: &'a L) -> Self {
        Self {
            template: landscape.init(0).valid(),
            landscape,
            stacked: None,
            evaluations: Cell::new(0),
        }
    }

    /// `stacked` chooses the landscape's stacked pass or one-by-one evaluation explicitly.
    pub fn with_stacking(landscape: &'a L, stacked: bool) -> Self {
        Self {
            stacked: Some(stacked),
            ..Self::new(landscape)
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

    /// The energies of the rows of `points` [k, num_params].
    pub fn energies(&self, points: Tensor<B::InnerBackend, 2>) -> Vec<f64> {
        let [k, _] = points.dims();
        self.evaluations.set(self.evaluations.get() + k);
        if self.stacks(&points.device()) {
            self.landscape.energies(&self.template, points)
        } else {
            pointwise_energies(self.landscape, &self.template, points)
        }
    }

    /// Whether many points go through the landscape's stacked pass on `device`.
    fn stacks(&self, device: &Device<B::InnerBackend>) -> bool {
        self.stacked
            .unwrap_or_else(|| self.landscape.stacked_pass(device) == StackedPass::Faster)
    }

    /// The energy profile of the straight segment `a -> b` at `t = k / grid` for
    /// `k = 1..grid` (the open interval; the endpoints' energies are known to the caller).
    pub fn segment(
        &self,
        a: &Tensor<B::InnerBackend, 1>,
        b: &Tensor<B::InnerBackend, 1>,
        grid: usize,
    ) -> Vec<(f64, f64)> {
        let ts: Vec<f64> = (1..grid).map(|k| k as f64 / grid as f64).collect();
        // One by one, only one point is built at a time: all of an MNIST convnet's 19 took
        // 250 MB, much of their cost in fresh pages.
        let energies = if self.stacks(&a.device()) {
            self.energies(lerps(a, b, &ts))
        } else {
            lerp_rows(a, b, &ts).map(|p| self.energy(&p)).collect()
        };
        ts.into_iter().zip(energies).collect()
    }

    /// Checks the straight segment `a -> b` on its grid: it passes when its highest energy
    /// is at most `limit`.
    pub fn check(
        &self,
        a: &Tensor<B::InnerBackend, 1>,
        b: &Tensor<B::InnerBackend, 1>,
        grid: usize,
        limit: f64,
        depth: usize,
    ) -> SegmentCheck {
        // NaN compares false: treat it as the worst energy so the segment fails.
        let (argmax_t, max_energy) = self
            .segment(a, b, grid)
            .into_iter()
            .map(|(t, e)| (t, if e.is_nan() { f64::INFINITY } else { e }))
            .fold((0.5, f64::NEG_INFINITY), |best, p| {
                if p.1 > best.1 { p } else { best }
            });
        SegmentCheck {
            max_energy,
            argmax_t,
            passed: max_energy <= limit,
            depth,
        }
    }

    pub fn evaluations(&self) -> usize {
        self.evaluations.get()
    }
}
