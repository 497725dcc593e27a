//! MNIST in LeCun's IDX format (big-endian header, u8 payload), gzipped or raw.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::files::{find_required, read_bytes};
use crate::images::{LabeledImages, Split, check_label};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

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
    let bytes = read_bytes(path)?;
    let ([count, rows, cols], payload_start) =
        parse_idx(path, &bytes, IMAGES_MAGIC, "IDX u8 images")?;
    Ok(IdxImages {
        pixels: bytes[payload_start..].to_vec(),
        count,
        rows,
        cols,
    })
}

/// Reads an IDX1 u8 label file (magic 0x00000801), gzipped or not; every label must be a
/// digit class in 0..10.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_bytes(path)?;
    let ([_], payload_start) = parse_idx(path, &bytes, LABELS_MAGIC, "IDX u8 labels")?;
    let labels = bytes[payload_start..].to_vec();
    for (index, &value) in labels.iter().enumerate() {
        check_label(path, index, value)?;
    }
    Ok(labels)
}

/// Validates the header of an IDX file with `N` dimensions whose magic must be `magic` and
/// whose payload must be exactly as long as the dimensions say (a truncated download and a
/// file with trailing junk are both rejected); returns the dimensions and where the payload
/// starts.
fn parse_idx<const N: usize>(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    what: &str,
) -> Result<([usize; N], usize)> {
    let header_len = 4 * (1 + N);
    let words: Vec<u32> = bytes[..header_len.min(bytes.len())]
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
    if words.len() < 1 + N {
        return Err(DataError::format(
            path,
            format!("an {what} header of {header_len} bytes"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let dims: [usize; N] = std::array::from_fn(|k| words[k + 1] as usize);
    let payload_len = bytes.len() - header_len;
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(payload_len) {
        let expected = match expected {
            Some(n) => format!("{n} payload bytes for dimensions {dims:?}"),
            None => format!("dimensions whose product fits in memory, not {dims:?}"),
        };
        return Err(DataError::format(
            path,
            expected,
            format!("{payload_len} bytes"),
        ));
    }
    Ok((dims, header_len))
}

/// Loads the four standard MNIST files from `dir`, each named with or without `.gz`.
pub fn load_mnist(dir: &Path) -> Result<Split> {
    let train = load_pair(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = load_pair(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    Ok(Split { train, test })
}

fn load_pair(dir: &Path, images_name: &str, labels_name: &str) -> Result<LabeledImages> {
    let images_path = find_required(dir, images_name)?;
    let labels_path = find_required(dir, labels_name)?;
    let images = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images: images_path,
            image_count: images.count,
            labels: labels_path,
            label_count: labels.len(),
        });
    }
    Ok(LabeledImages {
        images: images.pixels,
        labels,
        channels: 1,
        height: images.rows,
        width: images.cols,
    })
}
