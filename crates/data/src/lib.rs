//! levelset's data: readers for the real data sets of Freeman & Bruna (MNIST, CIFAR-10, Penn
//! Treebank), their download and checksums, and generators for the paper's synthetic tasks.
//!
//! It is the bottom crate of the workspace: pure Rust, independent of any tensor library.
//! Images come out as u8 (C,H,W) buffers ([`LabeledImages`]), text as token ids ([`Corpus`]),
//! synthetic tasks as f32 rows ([`Regression`]).
//!
//! Where to start reading: [`locate`] resolves the data folder every command reads (flag,
//! environment, config, per-user default); [`load_mnist`], [`load_cifar10`] and [`load_ptb`]
//! read the official formats; [`catalog`] pins every file's size and SHA-256 and [`fetch`]
//! downloads against those pins; [`atomic`] is the checked, atomic file write the whole
//! workspace writes its outputs through. The book's data page (`docs/src/guide/data.md`) says
//! what each loader accepts.

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
