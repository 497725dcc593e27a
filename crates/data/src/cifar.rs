//! CIFAR-10, binary version: fixed-size records of one label byte followed by the 32x32
//! red, green and blue planes, which is already the (C,H,W) layout of [`LabeledImages`].

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::files::{DataStream, all_candidates, empty, find_optional, find_required};
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

/// No batch of the official set holds more; a longer file is refused there, so that a gzipped
/// batch, which has no header to say how long it is, is never inflated without end.
const MAX_RECORDS: usize = 10_000;

/// Loads whichever of `data_batch_{1..5}.bin[.gz]` exist in `dir` (at least one must, so a
/// reduced copy with a single batch works as well as the official five) as the training set,
/// and `test_batch.bin[.gz]` as the test set.
pub fn load_cifar10(dir: &Path) -> Result<Split> {
    let (train_paths, test_path) = batch_paths(dir)?;
    let mut train = empty_set();
    for path in &train_paths {
        append_batch(&mut train, path)?;
    }
    let mut test = empty_set();
    append_batch(&mut test, &test_path)?;
    Ok(Split { train, test })
}

/// The training and test record counts of the CIFAR-10 batches in `dir`, every batch checked
/// as [`load_cifar10`] checks it (whole records, labels) but streamed in bounded memory,
/// without keeping the images: what `levelset data check` reports.
pub fn count_cifar10(dir: &Path) -> Result<(usize, usize)> {
    let (train_paths, test_path) = batch_paths(dir)?;
    let mut train = 0;
    for path in &train_paths {
        train += stream_batch(path, |_| {})?;
    }
    Ok((train, stream_batch(&test_path, |_| {})?))
}

/// The training batches present in `dir` (at least one) and the test batch.
fn batch_paths(dir: &Path) -> Result<(Vec<PathBuf>, PathBuf)> {
    let train_paths: Vec<_> = TRAIN_BATCHES
        .iter()
        .filter_map(|name| find_optional(dir, name))
        .collect();
    if train_paths.is_empty() {
        return Err(DataError::NotFound {
            tried: all_candidates(dir, TRAIN_BATCHES),
        });
    }
    Ok((train_paths, find_required(dir, "test_batch.bin")?))
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
    stream_batch(path, |record| {
        set.labels.push(record[0]);
        set.images.extend_from_slice(&record[1..]);
    })?;
    Ok(())
}

/// Streams the records of one batch to `sink`, each with its label checked; the number of
/// records. The batch must hold whole records, at least one and at most [`MAX_RECORDS`].
fn stream_batch(path: &Path, mut sink: impl FnMut(&[u8])) -> Result<usize> {
    let mut stream = DataStream::open(path)?;
    let mut record = vec![0u8; RECORD];
    let mut count = 0;
    loop {
        let got = stream.fill(&mut record)?;
        if got == 0 {
            break;
        }
        if got < RECORD {
            return Err(DataError::format(
                path,
                format!("a multiple of {RECORD} bytes (1 label + {PIXELS} pixels per record)"),
                format!("{} bytes", count * RECORD + got),
            ));
        }
        if count == MAX_RECORDS {
            return Err(DataError::format(
                path,
                format!("at most {MAX_RECORDS} records, as CIFAR-10's batches hold"),
                "more",
            ));
        }
        check_label(path, count, record[0])?;
        sink(&record);
        count += 1;
    }
    if count == 0 {
        return Err(empty(path));
    }
    Ok(count)
}
