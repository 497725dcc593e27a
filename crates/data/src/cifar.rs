//! CIFAR-10, binary version: fixed-size records of one label byte followed by the 32x32
//! red, green and blue planes, which is already the (C,H,W) layout of [`LabeledImages`].

use std::path::Path;

use crate::error::{DataError, Result};
use crate::files::{all_candidates, find_optional, find_required, read_bytes};
use crate::images::{LabeledImages, Split, check_label};

pub const CIFAR_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const CHANNELS: usize = 3;
const SIDE: usize = 32;
const PIXELS: usize = CHANNELS * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;

const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// Loads whichever of `data_batch_{1..5}.bin[.gz]` exist in `dir` (at least one must, so a
/// reduced copy with a single batch works as well as the official five) as the training set,
/// and `test_batch.bin[.gz]` as the test set.
pub fn load_cifar10(dir: &Path) -> Result<Split> {
    let train_paths: Vec<_> = TRAIN_BATCHES
        .iter()
        .filter_map(|name| find_optional(dir, name))
        .collect();
    if train_paths.is_empty() {
        return Err(DataError::NotFound {
            tried: all_candidates(dir, TRAIN_BATCHES),
        });
    }
    let test_path = find_required(dir, "test_batch.bin")?;

    let mut train = empty_set();
    for path in &train_paths {
        append_batch(&mut train, path)?;
    }
    let mut test = empty_set();
    append_batch(&mut test, &test_path)?;
    Ok(Split { train, test })
}

fn empty_set() -> LabeledImages {
    LabeledImages {
        images: Vec::new(),
        labels: Vec::new(),
        channels: CHANNELS,
        height: SIDE,
        width: SIDE,
    }
}

fn append_batch(set: &mut LabeledImages, path: &Path) -> Result<()> {
    let bytes = read_bytes(path)?;
    if bytes.len() % RECORD != 0 {
        return Err(DataError::format(
            path,
            format!("a multiple of {RECORD} bytes (1 label + {PIXELS} pixels per record)"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let records = bytes.len() / RECORD;
    set.labels.reserve(records);
    set.images.reserve(records * PIXELS);
    for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
        check_label(path, index, record[0])?;
        set.labels.push(record[0]);
        set.images.extend_from_slice(&record[1..]);
    }
    Ok(())
}
