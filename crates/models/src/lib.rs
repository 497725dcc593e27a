//! levelset's networks, flat parameter vectors, energies and training to a level: the loss
//! landscape that the path methods of `levelset-strings` walk.
//!
//! Where to start reading: [`Landscape`] is the interface everything above this crate uses (a
//! task's energy and training loss over one network architecture, evaluated one point or
//! many stacked points at a time); [`tasks`] holds the paper's tasks that implement it and
//! [`nets`] their networks, the paper's and the ones described layer by layer in a config.
//! [`flat`] turns a network into one parameter vector and back, which is how paths between
//! networks are written; [`train::train_to_level`] trains a network until its energy is at
//! most a level; [`checkpoint`] saves and loads trained networks with their `model.json`.
//! The backend is chosen in one place, `backend` (present when a backend feature is on).
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
pub mod pattern;
pub mod prefetch;
pub mod statistics;
pub mod tasks;
pub mod train;

pub use landscape::{Architecture, CurvatureLoss, DataSplit, Energy, EvalModel, Landscape};
