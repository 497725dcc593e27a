//! String sampling in parameter space: find a path of networks between two endpoints that
//! stays inside a level set of the energy, and measure how curved it is.
//!
//! Every method produces the same [`Path`]; metrics are computed on it alone.

pub mod dss;
pub mod evaluator;
pub mod path;

pub use dss::{DssConfig, DssError, InsertAt, Order, connect};
pub use evaluator::Evaluator;
pub use path::{LengthOver, Path, PathReport, SegmentCheck, Status};
