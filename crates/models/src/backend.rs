//! The one place where levelset's concrete backend is chosen, by cargo feature.
//!
//! Everything else is generic over `B: Backend` / `B: AutodiffBackend`. When several backend
//! features are on (e.g. `--features cuda` on top of the default `flex`), the GPU wins: a user
//! who asks for a GPU backend must get it without also having to disable the CPU default.

#[cfg(feature = "cuda")]
mod chosen {
    pub type Compute = burn::backend::Cuda;
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    pub type Compute = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
}

#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    pub type Compute = burn::backend::NdArray;
    pub const NAME: &str = "ndarray";
}

#[cfg(all(
    feature = "flex",
    not(any(feature = "cuda", feature = "wgpu", feature = "ndarray"))
))]
mod chosen {
    pub type Compute = burn::backend::Flex;
    pub const NAME: &str = "flex";
}

/// Backend for evaluation (no autodiff graph).
pub type Compute = chosen::Compute;
/// Backend for training.
pub type Train = burn::backend::Autodiff<Compute>;
/// Name of the compiled backend, recorded in checkpoints and reports.
pub const BACKEND_NAME: &str = chosen::NAME;

/// The device every command runs on: the first (default) device of the chosen backend.
pub fn device() -> burn::prelude::Device<Compute> {
    Default::default()
}
