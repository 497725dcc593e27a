//! The one place that decides, per backend, how the nets compute their convolutions and LSTM
//! layers: with Burn's layers, or in the matmul-shaped forms of [`super::matmul_conv`] and
//! [`super::matmul_lstm`].

use std::sync::atomic::{AtomicU8, Ordering};

use burn::prelude::*;

use crate::landscape::cpu_backend;

/// How the nets compute their convolutions and LSTM layers on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerRule {
    /// Burn's `Conv2d` and `Lstm` layers and their autodiff rules (flex's own kernels, where
    /// they apply, come first under either rule).
    Burn,
    /// Matmul-shaped forms whose backward autodiff derives as matmuls:
    /// [`super::matmul_conv::conv2d`] and [`super::matmul_lstm::lstm`].
    Matmul,
}

impl LayerRule {
    pub const NAMES: [&'static str; 2] = ["burn", "matmul"];

    pub fn name(self) -> &'static str {
        match self {
            LayerRule::Burn => "burn",
            LayerRule::Matmul => "matmul",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "burn" => Ok(LayerRule::Burn),
            "matmul" => Ok(LayerRule::Matmul),
            other => Err(format!(
                "unknown layer rule '{other}' (expected one of: {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// 0: no override; otherwise `LayerRule as u8 + 1`.
static OVERRIDE: AtomicU8 = AtomicU8::new(0);

/// Makes every later convolution and LSTM layer of this process use `rule` (`None`: the backend's default),
/// so that a benchmark can time both rules in one run.
pub fn override_layer_rule(rule: Option<LayerRule>) {
    let code = match rule {
        None => 0,
        Some(LayerRule::Burn) => 1,
        Some(LayerRule::Matmul) => 2,
    };
    OVERRIDE.store(code, Ordering::Relaxed);
}

/// The rule the nets use on the backend of `device`: the override if one is set, else the CPU
/// backends keep Burn's (flex runs its own kernels there), and the GPU backends use the matmul
/// forms. There Burn's rule computes a convolution's weight gradient as a convolution whose
/// kernel is as large as the image, the one GPU workload that ran far below PyTorch, while
/// matmuls run near the GPU's peak (experiments/bench/README.md, section GPU, which also says
/// how far this choice has been measured on a GPU).
pub fn layer_rule<B: Backend>(device: &B::Device) -> LayerRule {
    match OVERRIDE.load(Ordering::Relaxed) {
        1 => LayerRule::Burn,
        2 => LayerRule::Matmul,
        _ if cpu_backend::<B>(device) => LayerRule::Burn,
        _ => LayerRule::Matmul,
    }
}
