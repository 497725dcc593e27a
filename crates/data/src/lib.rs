//! Offline readers for the real data sets of Freeman & Bruna (MNIST, CIFAR-10, Penn Treebank)
//! and generators for their synthetic tasks. Pure Rust, independent of any tensor library:
//! images come out as u8 (C,H,W) buffers, text as token ids, synthetic tasks as f32 rows.

pub mod atomic;
mod augment;
pub mod catalog;
mod cifar;
mod error;
pub mod fetch;
mod files;
mod images;
pub mod locate;
mod mnist;
mod ptb;
mod streams;
mod synthetic;
pub mod testing;

pub use augment::{
    ChannelStats, center_crop, normalize_image, random_crop_flip, random_padded_crop_flip,
};
pub use cifar::{CIFAR_CLASSES, count_cifar10, load_cifar10};
pub use error::{DataError, Result};
pub use images::{LabeledImages, NUM_CLASSES, Split};
pub use mnist::{IdxImages, count_mnist, load_mnist, read_idx_images, read_idx_labels};
pub use ptb::{Corpus, EOS, MAX_TEXT_BYTES, UNK, Vocab, load_ptb};
pub use streams::{Streams, batchify};
pub use synthetic::{
    MIXTURE_SPREAD, Polynomial, Regression, gaussian_mixture, linear_regression, polynomial,
    standard_normal, three_point_cycle,
};
