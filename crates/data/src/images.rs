//! The in-memory form shared by the MNIST and CIFAR-10 loaders.

use std::path::Path;

use crate::error::{DataError, Result};

/// Number of classes in both MNIST and CIFAR-10.
pub const NUM_CLASSES: usize = 10;

/// Images stored as u8, each image channel-major (C,H,W) contiguous; `labels[i]` in 0..10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledImages {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// A training set and its held-out test set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: LabeledImages,
    pub test: LabeledImages,
}

impl LabeledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`, (C,H,W) row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels_per_image();
        &self.images[i * p..(i + 1) * p]
    }

    /// Images per class. Labels outside 0..10 (only possible for hand-built sets, the
    /// loaders reject them) are not counted, so the sum can then fall short of `len()`.
    pub fn label_histogram(&self) -> [usize; NUM_CLASSES] {
        let mut hist = [0; NUM_CLASSES];
        for &l in &self.labels {
            if let Some(count) = hist.get_mut(usize::from(l)) {
                *count += 1;
            }
        }
        hist
    }

    /// Keeps the first `n` images (all of them when there are fewer), for quick configs.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.pixels_per_image());
    }
}

/// Rejects labels outside 0..10, naming the file and the item; shared by both image loaders
/// so the two formats report bad labels identically.
pub(crate) fn check_label(path: &Path, index: usize, value: u8) -> Result<()> {
    if usize::from(value) < NUM_CLASSES {
        Ok(())
    } else {
        Err(DataError::Label {
            path: path.to_path_buf(),
            index,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_images() -> LabeledImages {
        LabeledImages {
            images: (0..3 * 2 * 2 * 2).collect(),
            labels: vec![4, 9, 4],
            channels: 2,
            height: 2,
            width: 2,
        }
    }

    #[test]
    fn image_slices_and_histogram() {
        let set = three_images();
        assert_eq!(set.len(), 3);
        assert_eq!(set.pixels_per_image(), 8);
        assert_eq!(set.image(1), &[8, 9, 10, 11, 12, 13, 14, 15]);
        let mut expected = [0; 10];
        expected[4] = 2;
        expected[9] = 1;
        assert_eq!(set.label_histogram(), expected);
    }

    #[test]
    fn truncate_keeps_prefix_and_tolerates_large_n() {
        let mut set = three_images();
        set.truncate(10);
        assert_eq!(set.len(), 3);
        set.truncate(1);
        assert_eq!(set.len(), 1);
        assert_eq!(set.images, (0..8).collect::<Vec<u8>>());
        set.truncate(0);
        assert!(set.is_empty() && set.images.is_empty());
    }
}
