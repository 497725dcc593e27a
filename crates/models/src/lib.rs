//! levelset's networks, flat parameter vectors, energies and training to a level.
//!
//! On the flex backend the nets' layers and optimizer steps run levelset-flex's kernels,
//! called from one module, `kernels`; everything else is Burn.

#![forbid(unsafe_code)]

/// Atomic file writes live in the bottom crate, which also writes downloads through them.
pub use levelset_data::atomic;
/// Present only when a backend feature (flex, ndarray, wgpu, cuda) is on: library code is
/// backend-generic, only binaries and tests pick one.
#[cfg(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
))]
pub mod backend;
pub mod checkpoint;
mod checkpoint_fields;
pub mod flat;
pub mod heartbeat;
pub mod init;
mod kernels;
pub mod landscape;
pub mod launches;
pub mod nets;
pub mod optim;
pub mod outdir;
pub mod prefetch;
pub mod statistics;
pub mod tasks;
pub mod train;

pub use landscape::{Architecture, Energy, EvalModel, Landscape};
