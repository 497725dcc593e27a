//! Offline readers for the real data sets of Freeman & Bruna (MNIST, CIFAR-10, Penn Treebank)
//! and generators for their synthetic tasks. Pure Rust, independent of any tensor library:
//! images come out as u8 (C,H,W) buffers, text as token ids, synthetic tasks as f32 rows.

mod augment;
mod cifar;
mod error;
mod files;
mod images;
mod mnist;
mod ptb;
mod streams;
mod synthetic;

use std::path::PathBuf;

pub use augment::{ChannelStats, center_crop, random_crop_flip};
pub use cifar::{CIFAR_CLASSES, load_cifar10};
pub use error::{DataError, Result};
pub use images::{LabeledImages, NUM_CLASSES, Split};
pub use mnist::{IdxImages, load_mnist, read_idx_images, read_idx_labels};
pub use ptb::{Corpus, EOS, UNK, Vocab, load_ptb};
pub use streams::{Streams, batchify};
pub use synthetic::{
    MIXTURE_SPREAD, Polynomial, Regression, gaussian_mixture, linear_regression, polynomial,
    standard_normal, three_point_cycle,
};

/// The default data location: `$LEVELSET_DATA_DIR` when set, otherwise the offline copies in
/// the checkout's `shared/data` (with `mnist/`, `cifar10/` and `ptb/` inside). Tests of every
/// crate find the real data through this one function.
pub fn shared_data_dir() -> PathBuf {
    std::env::var_os("LEVELSET_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        })
}
