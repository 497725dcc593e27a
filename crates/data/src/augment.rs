//! Image input pipelines: the TensorFlow CIFAR-10 tutorial's (24x24 crops, random with a
//! random horizontal flip for training and central for evaluation, normalized per channel),
//! the CIFAR ResNets' (random 32x32 crops of the image zero-padded by 4 pixels, flipped, and
//! whole images for evaluation), and whole images normalized without augmentation.

use rand::Rng;

use crate::error::{DataError, Result};
use crate::images::LabeledImages;

/// Per-channel mean/std in \[0,1\] pixel units, computed from a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Lower bound of a channel's std: one grey level. Keeps a constant channel (or an empty
/// set) from turning normalization into a division by zero.
const MIN_STD: f64 = 1.0 / 255.0;

impl ChannelStats {
    /// Exact per-channel statistics over every pixel of `set` (integer sums, so the result
    /// does not depend on the order of the images); an empty set gives mean 0.
    pub fn from_images(set: &LabeledImages) -> Self {
        let plane = set.height * set.width;
        let mut sum = vec![0u64; set.channels];
        let mut sum_sq = vec![0u64; set.channels];
        // chunks_exact(0) would panic, and a zero-sized image has no pixels to count anyway.
        if set.pixels_per_image() > 0 {
            for image in set.images.chunks_exact(set.pixels_per_image()) {
                for (c, channel) in image.chunks_exact(plane).enumerate() {
                    for &p in channel {
                        let p = u64::from(p);
                        sum[c] += p;
                        sum_sq[c] += p * p;
                    }
                }
            }
        }
        let count = (set.len() * plane).max(1) as f64;
        let (mean, std) = sum
            .iter()
            .zip(&sum_sq)
            .map(|(&s, &sq)| {
                let mean = s as f64 / count / 255.0;
                let var = sq as f64 / count / (255.0 * 255.0) - mean * mean;
                (mean as f32, var.max(0.0).sqrt().max(MIN_STD) as f32)
            })
            .unzip();
        ChannelStats { mean, std }
    }
}

/// Training crop: a `size`x`size` window at a uniformly random position, mirrored
/// left-right with probability 1/2; f32 (C,H,W) normalized as `(x/255 - mean)/std`.
/// [`random_padded_crop_flip`] with no padding.
pub fn random_crop_flip(
    set: &LabeledImages,
    i: usize,
    size: usize,
    stats: &ChannelStats,
    rng: &mut impl Rng,
) -> Result<Vec<f32>> {
    random_padded_crop_flip(set, i, size, 0, stats, rng)
}

/// Training crop of the image zero-padded by `pad` pixels on each side (torchvision's
/// `RandomCrop(size, padding=pad)` then `RandomHorizontalFlip()`, as CIFAR ResNets train):
/// a `size`x`size` window at a uniformly random position of the padded image, mirrored
/// left-right with probability 1/2, normalized as [`random_crop_flip`]. Padding is pixel
/// value 0 before normalization, so a padded pixel becomes `-mean/std`. The random draws
/// (top, left, flip, in that order) are those of [`random_crop_flip`], so `pad` 0 gives its
/// crops bit for bit.
pub fn random_padded_crop_flip(
    set: &LabeledImages,
    i: usize,
    size: usize,
    pad: usize,
    stats: &ChannelStats,
    rng: &mut impl Rng,
) -> Result<Vec<f32>> {
    check_crop(set, i, size, pad, stats)?;
    let top = rng.random_range(0..=set.height + 2 * pad - size);
    let left = rng.random_range(0..=set.width + 2 * pad - size);
    let flip = rng.random_bool(0.5);
    let window = Window {
        top,
        left,
        height: size,
        width: size,
        pad,
        flip,
    };
    Ok(window.normalized(set, i, stats))
}

/// Evaluation crop: the central `size`x`size` window (offset rounded down, as TensorFlow's
/// `resize_image_with_crop_or_pad`), normalized like [`random_crop_flip`]. Never padded:
/// evaluation sees the image itself, whole when `size` is its side.
pub fn center_crop(
    set: &LabeledImages,
    i: usize,
    size: usize,
    stats: &ChannelStats,
) -> Result<Vec<f32>> {
    check_crop(set, i, size, 0, stats)?;
    let window = Window {
        top: (set.height - size) / 2,
        left: (set.width - size) / 2,
        height: size,
        width: size,
        pad: 0,
        flip: false,
    };
    Ok(window.normalized(set, i, stats))
}

/// The whole image, scaled to [0, 1] and normalized per channel as `(x/255 - mean)/std`, with
/// no augmentation (MNIST with given statistics).
pub fn normalize_image(set: &LabeledImages, i: usize, stats: &ChannelStats) -> Result<Vec<f32>> {
    check_index_and_stats(set, i, stats)?;
    let window = Window {
        top: 0,
        left: 0,
        height: set.height,
        width: set.width,
        pad: 0,
        flip: false,
    };
    Ok(window.normalized(set, i, stats))
}

fn check_crop(
    set: &LabeledImages,
    i: usize,
    size: usize,
    pad: usize,
    stats: &ChannelStats,
) -> Result<()> {
    check_index_and_stats(set, i, stats)?;
    // A window larger than the padded image has no position; the padding is bounded so that
    // `side + 2 * pad` cannot overflow.
    let fits = |side: usize| pad <= side && size <= side + 2 * pad;
    if size == 0 || !fits(set.height) || !fits(set.width) {
        return Err(DataError::InvalidArgument(format!(
            "crop size {size} with padding {pad} does not fit {}x{} images",
            set.height, set.width
        )));
    }
    Ok(())
}

fn check_index_and_stats(set: &LabeledImages, i: usize, stats: &ChannelStats) -> Result<()> {
    let problem = if i >= set.len() {
        format!(
            "image index {i} out of range for a set of {} images",
            set.len()
        )
    } else if stats.mean.len() != set.channels || stats.std.len() != set.channels {
        format!(
            "channel stats for {}/{} channels (mean/std) applied to {}-channel images",
            stats.mean.len(),
            stats.std.len(),
            set.channels
        )
    } else {
        return Ok(());
    };
    Err(DataError::InvalidArgument(problem))
}

/// A `height`x`width` window at (`top`, `left`) of an image zero-padded by `pad` pixels on
/// each side, mirrored left-right when `flip`; its arguments were validated by
/// [`check_crop`] (or are the whole image).
struct Window {
    top: usize,
    left: usize,
    height: usize,
    width: usize,
    pad: usize,
    flip: bool,
}

impl Window {
    /// The one place pixels are cut out and normalized: f32 (C,H,W).
    fn normalized(&self, set: &LabeledImages, i: usize, stats: &ChannelStats) -> Vec<f32> {
        let image = set.image(i);
        let plane = set.height * set.width;
        // The window's columns in the padded image, split into padding on the left, image
        // columns, and padding on the right.
        let first = self.left.max(self.pad).min(self.pad + set.width);
        let end = (self.left + self.width)
            .min(self.pad + set.width)
            .max(first);
        let lead = (first - self.left.min(first)).min(self.width);
        let inside = end - first;
        let trail = self.width - lead - inside;
        let columns = first - self.pad..end - self.pad;
        let mut out = Vec::with_capacity(set.channels * self.height * self.width);
        for c in 0..set.channels {
            let (mean, std) = (stats.mean[c], stats.std[c]);
            // Padding is the pixel value 0, normalized by the same expression as the image.
            let normalize = |&p: &u8| (f32::from(p) / 255.0 - mean) / std;
            let padded = normalize(&0);
            for y in self.top..self.top + self.height {
                let start = out.len();
                match y.checked_sub(self.pad).filter(|&y| y < set.height) {
                    Some(y) => {
                        let row = &image[c * plane + y * set.width..][..set.width];
                        out.extend(std::iter::repeat_n(padded, lead));
                        out.extend(row[columns.clone()].iter().map(normalize));
                        out.extend(std::iter::repeat_n(padded, trail));
                    }
                    None => out.extend(std::iter::repeat_n(padded, self.width)),
                }
                if self.flip {
                    out[start..].reverse();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// One 1-channel image whose pixel value is its column index plus 10 x its row.
    fn gradient(height: usize, width: usize) -> LabeledImages {
        LabeledImages {
            images: (0..height)
                .flat_map(|y| (0..width).map(move |x| (10 * y + x) as u8))
                .collect(),
            labels: vec![0],
            channels: 1,
            height,
            width,
        }
    }

    /// Mean 0 and std 1 in [0,1] units, so outputs are pixel/255.
    fn identity_stats(channels: usize) -> ChannelStats {
        ChannelStats {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    fn as_pixels(v: &[f32]) -> Vec<u8> {
        v.iter().map(|x| (x * 255.0).round() as u8).collect()
    }

    #[test]
    fn center_crop_takes_the_middle_window() {
        let set = gradient(6, 6);
        let out = center_crop(&set, 0, 2, &identity_stats(1)).unwrap();
        assert_eq!(as_pixels(&out), vec![22, 23, 32, 33]);
        // Odd margins round the offset down, as TensorFlow does.
        let out = center_crop(&gradient(5, 5), 0, 2, &identity_stats(1)).unwrap();
        assert_eq!(as_pixels(&out), vec![11, 12, 21, 22]);
    }

    #[test]
    fn normalization_uses_mean_and_std_per_channel() {
        let set = LabeledImages {
            images: vec![0, 255, 51, 102],
            labels: vec![3],
            channels: 2,
            height: 1,
            width: 2,
        };
        let stats = ChannelStats {
            mean: vec![0.5, 0.2],
            std: vec![0.5, 0.1],
        };
        let out = center_crop(&set, 0, 1, &stats).unwrap();
        assert_eq!(out.len(), 2);
        assert!((out[0] - (0.0 - 0.5) / 0.5).abs() < 1e-6);
        assert!((out[1] - (0.2 - 0.2) / 0.1).abs() < 1e-6);
    }

    #[test]
    fn flip_mirrors_rows_and_both_outcomes_occur() {
        let set = gradient(4, 4);
        let plain: Vec<u8> = set.image(0).to_vec();
        let mirrored: Vec<u8> = plain
            .chunks(4)
            .flat_map(|r| r.iter().rev().copied())
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut seen_plain, mut seen_mirrored) = (false, false);
        for _ in 0..64 {
            let out =
                as_pixels(&random_crop_flip(&set, 0, 4, &identity_stats(1), &mut rng).unwrap());
            if out == plain {
                seen_plain = true;
            } else {
                assert_eq!(out, mirrored);
                seen_mirrored = true;
            }
        }
        assert!(seen_plain && seen_mirrored);
    }

    #[test]
    fn random_crop_is_a_window_of_the_image_and_seeded() {
        let set = gradient(8, 8);
        let crop = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            as_pixels(&random_crop_flip(&set, 0, 3, &identity_stats(1), &mut rng).unwrap())
        };
        assert_eq!(crop(3), crop(3));
        let mut offsets = std::collections::HashSet::new();
        for seed in 0..32 {
            let px = crop(seed);
            assert_eq!(px.len(), 9);
            // Every row of a window of the gradient is 3 consecutive values, either order.
            let (top, left) = (px[0] / 10, px[0].min(px[2]) % 10);
            assert!(top <= 5 && left <= 5);
            offsets.insert((top, left));
        }
        assert!(offsets.len() > 5, "crop positions should vary: {offsets:?}");
    }

    #[test]
    fn bad_crop_arguments_are_errors() {
        let set = gradient(4, 4);
        let stats = identity_stats(1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (i, size, stats) in [
            (0, 5, &stats),
            (0, 0, &stats),
            (1, 2, &stats),
            (0, 2, &identity_stats(3)),
        ] {
            assert!(matches!(
                center_crop(&set, i, size, stats),
                Err(DataError::InvalidArgument(_))
            ));
            assert!(matches!(
                random_crop_flip(&set, i, size, stats, &mut rng),
                Err(DataError::InvalidArgument(_))
            ));
        }
    }

    /// The crop and normalization as they were before padding existed, kept as the reference
    /// that `pad = 0` must reproduce bit for bit (the committed CIFAR-10 results).
    fn unpadded_reference(
        set: &LabeledImages,
        i: usize,
        size: usize,
        stats: &ChannelStats,
        rng: &mut impl Rng,
    ) -> Vec<f32> {
        let top = rng.random_range(0..=set.height - size);
        let left = rng.random_range(0..=set.width - size);
        let flip = rng.random_bool(0.5);
        let image = set.image(i);
        let plane = set.height * set.width;
        let mut out = Vec::new();
        for c in 0..set.channels {
            let (mean, std) = (stats.mean[c], stats.std[c]);
            for y in 0..size {
                let row = &image[c * plane + (top + y) * set.width + left..][..size];
                let normalize = |&p: &u8| (f32::from(p) / 255.0 - mean) / std;
                if flip {
                    out.extend(row.iter().rev().map(normalize));
                } else {
                    out.extend(row.iter().map(normalize));
                }
            }
        }
        out
    }

    /// Two 5x6 channels of distinct pixels and statistics that are not the identity.
    fn two_channels() -> (LabeledImages, ChannelStats) {
        let set = LabeledImages {
            images: (0..2 * 5 * 6).map(|p| (p * 7 % 251) as u8).collect(),
            labels: vec![1],
            channels: 2,
            height: 5,
            width: 6,
        };
        let stats = ChannelStats {
            mean: vec![0.4914, 0.4822],
            std: vec![0.2470, 0.2435],
        };
        (set, stats)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn no_padding_gives_the_unpadded_crops_bit_for_bit() {
        let (set, stats) = two_channels();
        for seed in 0..64 {
            for size in [1, 3, 5] {
                let mut ours = ChaCha8Rng::seed_from_u64(seed);
                let mut theirs = ours.clone();
                let got = random_padded_crop_flip(&set, 0, size, 0, &stats, &mut ours).unwrap();
                let want = unpadded_reference(&set, 0, size, &stats, &mut theirs);
                assert_eq!(bits(&got), bits(&want), "seed {seed}, size {size}");
                // The stream is left where the old crop left it: the next image's draws agree.
                assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn a_window_in_the_corner_of_the_padding_is_mostly_padding() {
        // 3x3 image of one channel, padded by 2: the top-left 3x3 window of the 7x7 padded
        // image holds one image pixel, at its bottom-right corner.
        let set = gradient(3, 3);
        let stats = ChannelStats {
            mean: vec![0.5],
            std: vec![0.25],
        };
        let window = |flip| Window {
            top: 0,
            left: 0,
            height: 3,
            width: 3,
            pad: 2,
            flip,
        };
        // Padding is pixel 0: (0 - 0.5) / 0.25 = -2; the image's pixel (0, 0) is 0 as well in
        // this gradient, so take the window one step right and down instead for a visible one.
        let pad = -2.0;
        assert_eq!(window(false).normalized(&set, 0, &stats), vec![pad; 9]);
        let shifted = |flip| Window {
            top: 1,
            left: 1,
            ..window(flip)
        };
        // Rows 1..4, columns 1..4 of the padded image: image rows 0..2, columns 0..2 from the
        // second row and column of the window on; pixel (y, x) is 10 y + x.
        let px = |p: f32| (p / 255.0 - 0.5) / 0.25;
        let want = vec![
            pad,
            pad,
            pad,
            pad,
            px(0.0),
            px(1.0),
            pad,
            px(10.0),
            px(11.0),
        ];
        assert_eq!(
            bits(&shifted(false).normalized(&set, 0, &stats)),
            bits(&want)
        );
        let mirrored = vec![
            pad,
            pad,
            pad,
            px(1.0),
            px(0.0),
            pad,
            px(11.0),
            px(10.0),
            pad,
        ];
        assert_eq!(
            bits(&shifted(true).normalized(&set, 0, &stats)),
            bits(&mirrored)
        );
        // Wholly beyond the bottom-right corner: padding only.
        let beyond = Window {
            top: 5,
            left: 5,
            height: 2,
            width: 2,
            ..window(false)
        };
        assert_eq!(beyond.normalized(&set, 0, &stats), vec![pad; 4]);
    }

    /// The padded crop of image 0 by hand: the padded image written out, the window cut out,
    /// mirrored and normalized, at the offsets and flip drawn as the crop draws them.
    fn padded_by_hand(
        set: &LabeledImages,
        size: usize,
        pad: usize,
        stats: &ChannelStats,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<f32>, (usize, usize, bool)) {
        let (h, w) = (set.height + 2 * pad, set.width + 2 * pad);
        let top = rng.random_range(0..=h - size);
        let left = rng.random_range(0..=w - size);
        let flip = rng.random_bool(0.5);
        let mut out = Vec::new();
        for c in 0..set.channels {
            let mut padded = vec![0u8; h * w];
            for y in 0..set.height {
                for x in 0..set.width {
                    padded[(y + pad) * w + x + pad] =
                        set.image(0)[c * set.height * set.width + y * set.width + x];
                }
            }
            for y in top..top + size {
                let mut row: Vec<u8> = padded[y * w + left..y * w + left + size].to_vec();
                if flip {
                    row.reverse();
                }
                out.extend(
                    row.iter()
                        .map(|&p| (f32::from(p) / 255.0 - stats.mean[c]) / stats.std[c]),
                );
            }
        }
        (out, (top, left, flip))
    }

    #[test]
    fn a_padded_crop_is_a_window_of_the_zero_padded_image() {
        let (set, stats) = two_channels();
        let pad = 2;
        let padding: Vec<u32> = (0..2)
            .map(|c| ((0.0 - stats.mean[c]) / stats.std[c]).to_bits())
            .collect();
        let mut offsets = std::collections::HashSet::new();
        let mut flips = std::collections::HashSet::new();
        for seed in 0..200 {
            let mut ours = ChaCha8Rng::seed_from_u64(seed);
            let mut theirs = ours.clone();
            let got = random_padded_crop_flip(&set, 0, 5, pad, &stats, &mut ours).unwrap();
            let (want, (top, left, flip)) = padded_by_hand(&set, 5, pad, &stats, &mut theirs);
            assert_eq!(bits(&got), bits(&want), "seed {seed}");
            offsets.insert((top, left));
            flips.insert(flip);
            // The window's first row lies in the padding when it starts above the image:
            // every value there is -mean/std of its channel.
            if top < pad {
                for c in 0..2 {
                    let row = &got[c * 25..c * 25 + 5];
                    assert!(row.iter().all(|v| v.to_bits() == padding[c]), "{row:?}");
                }
            }
        }
        // Every position of a 5x5 window in the 9x10 padded image, both flips.
        assert_eq!(offsets.len(), 5 * 6, "{offsets:?}");
        assert_eq!(flips.len(), 2);
    }

    #[test]
    fn padding_and_whole_images_are_checked_and_normalized() {
        let set = gradient(4, 4);
        let stats = identity_stats(1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // A window up to the padded side fits; one more, or padding beyond the side, does not.
        assert!(random_padded_crop_flip(&set, 0, 8, 2, &stats, &mut rng).is_ok());
        for (size, pad) in [(9, 2), (4, 5), (0, 1)] {
            let err = random_padded_crop_flip(&set, 0, size, pad, &stats, &mut rng).unwrap_err();
            assert!(
                matches!(&err, DataError::InvalidArgument(m) if m.contains("padding")),
                "{err}"
            );
        }
        let (set, stats) = two_channels();
        let whole = normalize_image(&set, 0, &stats).unwrap();
        let want: Vec<f32> = set
            .image(0)
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let c = k / 30;
                (f32::from(p) / 255.0 - stats.mean[c]) / stats.std[c]
            })
            .collect();
        assert_eq!(bits(&whole), bits(&want));
        assert!(normalize_image(&set, 1, &stats).is_err());
        assert!(normalize_image(&set, 0, &identity_stats(1)).is_err());
    }

    #[test]
    fn stats_are_exact_and_never_zero_std() {
        let set = LabeledImages {
            images: vec![0, 255, 7, 7, 255, 0, 7, 7],
            labels: vec![0, 1],
            channels: 2,
            height: 1,
            width: 2,
        };
        let stats = ChannelStats::from_images(&set);
        assert!((stats.mean[0] - 0.5).abs() < 1e-6);
        assert!((stats.std[0] - 0.5).abs() < 1e-6);
        assert!((stats.mean[1] - 7.0 / 255.0).abs() < 1e-6);
        assert!((stats.std[1] - 1.0 / 255.0).abs() < 1e-6);
    }
}
