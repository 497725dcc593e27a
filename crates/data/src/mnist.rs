//! MNIST in LeCun's IDX format (big-endian header, u8 payload), gzipped or raw.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::files::{DataStream, empty, find_required};
use crate::images::{LabeledImages, Split, check_label};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
const IMAGES: &str = "IDX u8 images";
const LABELS: &str = "IDX u8 labels";

/// The content of an IDX image file: `count` images of `rows x cols` u8 pixels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub pixels: Vec<u8>,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

/// Reads an IDX3 u8 image file (magic 0x00000803), gzipped or not.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let mut pixels = Vec::new();
    let [count, rows, cols] = stream_idx(path, IMAGES_MAGIC, IMAGES, |_, chunk| {
        pixels.extend_from_slice(chunk);
        Ok(())
    })?;
    Ok(IdxImages {
        pixels,
        count,
        rows,
        cols,
    })
}

/// Reads an IDX1 u8 label file (magic 0x00000801), gzipped or not; every label must be a
/// digit class in 0..10.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let mut labels = Vec::new();
    stream_idx::<1>(path, LABELS_MAGIC, LABELS, |offset, chunk| {
        check_labels(path, offset, chunk)?;
        labels.extend_from_slice(chunk);
        Ok(())
    })?;
    Ok(labels)
}

/// Checks the labels of `chunk`, the first of which is item `offset` of the file.
fn check_labels(path: &Path, offset: u64, chunk: &[u8]) -> Result<()> {
    chunk
        .iter()
        .zip(offset as usize..)
        .try_for_each(|(&value, index)| check_label(path, index, value))
}

/// Reads the header of an IDX file with `N` dimensions whose magic must be `magic`, then
/// streams its payload to `sink` (chunks with their offsets), which must be exactly as long as
/// the dimensions say: a truncated download and a file with trailing junk are both rejected.
/// Reading stops one byte past the declared length, so a gzip bomb behind a small header is
/// never inflated, and nothing is reserved for the declared length before the bytes arrive.
/// Returns the dimensions.
fn stream_idx<const N: usize>(
    path: &Path,
    magic: u32,
    what: &str,
    sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<[usize; N]> {
    let mut stream = DataStream::open(path)?;
    let header_len = 4 * (1 + N);
    let mut header = vec![0u8; header_len];
    let got = stream.fill(&mut header)?;
    if got == 0 {
        return Err(empty(path));
    }
    let words: Vec<u32> = header[..got]
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    // The magic is checked before the header length so that a file of the wrong kind is
    // reported as such even when it is too short for this kind's header.
    if let Some(&found) = words.first()
        && found != magic
    {
        return Err(DataError::format(
            path,
            format!("magic {magic:#010x} ({what})"),
            format!("{found:#010x}"),
        ));
    }
    if got < header_len {
        return Err(DataError::format(
            path,
            format!("an {what} header of {header_len} bytes"),
            format!("{got} bytes"),
        ));
    }
    let dims: [usize; N] = std::array::from_fn(|k| words[k + 1] as usize);
    let Some(declared) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(DataError::format(
            path,
            "dimensions whose product fits in memory",
            format!("{dims:?}"),
        ));
    };
    let expected = format!("{declared} payload bytes for dimensions {dims:?}");
    let present = stream.feed(declared as u64, sink)?;
    if present < declared as u64 {
        return Err(DataError::format(
            path,
            expected,
            format!("{present} bytes"),
        ));
    }
    if !stream.at_end()? {
        return Err(DataError::format(
            path,
            expected,
            "more: the file is longer than its header declares",
        ));
    }
    Ok(dims)
}
/// Loads the four standard MNIST files from `dir`, each named with or without `.gz`.
pub fn load_mnist(dir: &Path) -> Result<Split> {
    let load = |images_name, labels_name| {
        let (_, images, labels) = read_pair(
            dir,
            images_name,
            labels_name,
            |path| read_idx_images(path).map(|images| (images.count, images)),
            |path| read_idx_labels(path).map(|labels| (labels.len(), labels)),
        )?;
        Ok(LabeledImages {
            images: images.pixels,
            labels,
            channels: 1,
            height: images.rows,
            width: images.cols,
        })
    };
    Ok(Split {
        train: load(TRAIN.0, TRAIN.1)?,
        test: load(TEST.0, TEST.1)?,
    })
}

/// The training and test image counts of the four MNIST files in `dir`, every file checked as
/// [`load_mnist`] checks it (header, length, labels, image and label counts agreeing) but
/// streamed in bounded memory, without keeping the images: what `levelset data check` reports.
pub fn count_mnist(dir: &Path) -> Result<(usize, usize)> {
    let count = |images_name, labels_name| {
        let (count, (), ()) = read_pair(
            dir,
            images_name,
            labels_name,
            |path| {
                let [count, _, _] = stream_idx(path, IMAGES_MAGIC, IMAGES, |_, _| Ok(()))?;
                Ok((count, ()))
            },
            |path| {
                let [count] = stream_idx(path, LABELS_MAGIC, LABELS, |offset, chunk| {
                    check_labels(path, offset, chunk)
                })?;
                Ok((count, ()))
            },
        )?;
        Ok(count)
    };
    Ok((count(TRAIN.0, TRAIN.1)?, count(TEST.0, TEST.1)?))
}

/// The images and labels files of the two splits.
const TRAIN: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
const TEST: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

/// Finds one split's images and labels files in `dir` and reads each with its function, which
/// returns the file's item count and what it keeps; the counts must agree. The count and both
/// kept values.
fn read_pair<I, L>(
    dir: &Path,
    images_name: &str,
    labels_name: &str,
    images: impl FnOnce(&Path) -> Result<(usize, I)>,
    labels: impl FnOnce(&Path) -> Result<(usize, L)>,
) -> Result<(usize, I, L)> {
    let images_path = find_required(dir, images_name)?;
    let labels_path = find_required(dir, labels_name)?;
    let (image_count, images) = images(&images_path)?;
    let (label_count, labels) = labels(&labels_path)?;
    if image_count != label_count {
        return Err(DataError::CountMismatch {
            images: images_path,
            image_count,
            labels: labels_path,
            label_count,
        });
    }
    Ok((image_count, images, labels))
}
