//! String sampling in parameter space: find a path of networks between two endpoints that
//! stays inside a level set of the energy, and measure how curved it is.
//!
//! Every method ([`Method`], run by [`connect_with`]) produces the same [`ModelPath`]; metrics are
//! computed on it alone.
//!
//! Where to start reading: [`connect_with`], the one entry point; then [`dss`] (Dynamic String
//! Sampling, Freeman & Bruna's Algorithm 1, with the authors' breadth-first variant),
//! [`curve`] (Bezier curves and polychains trained by autodiff, Garipov et al. 2018), [`neb`]
//! (nudged elastic band with AutoNEB's pivot insertion) and [`align`](mod@align) (weight matching,
//! Ainsworth et al. 2022). [`path`] holds the path and its report; every energy is measured
//! through an [`Evaluator`] over a `levelset_models::Landscape`.
//! [`plane`](mod@plane) and [`directions`] give the pictures of the landscape around
//! models (Garipov et al.'s planes, Li et al.'s filter-normalized directions).

pub mod align;
mod batches;
pub mod curve;
pub mod directions;
pub mod dss;
mod endpoints;
pub mod evaluator;
pub mod graph;
pub mod hessian;
pub mod json_float;
mod knots;
mod method;
pub mod neb;
pub mod path;
pub mod plane;
mod recertify;
mod report;
pub mod schedule;
mod seeds;
pub mod sizes;

pub use align::{
    AlignConfig, AlignReport, Aligned, align, permutable_units, permute, random_orders,
};
pub use curve::{Curve, CurveConfig, CurveKind, connect_curve};
pub use dss::{DssConfig, InsertAt, Order, connect_dss};
pub use endpoints::ConnectError;
pub use evaluator::Evaluator;
pub use graph::{Derived, GraphEdge, Merge, MinimaGraph, TreeEdge, line_barrier};
pub use hessian::{HessianConfig, HessianReport, hessian};
pub use knots::Knots;
pub use method::{Method, connect_with};
pub use neb::{NebConfig, NebCycle, connect_neb};
pub use path::{LengthOver, ModelPath, Outcome, PathReport, SegmentCheck, Status};
pub use plane::Plane;
pub use recertify::{consistent, recertify};
pub use schedule::LrSchedule;
