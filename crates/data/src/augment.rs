//! Input pipeline of the TensorFlow CIFAR-10 tutorial: 24x24 crops, random with a random
//! horizontal flip for training and central for evaluation, normalized per channel.

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
pub fn random_crop_flip(
    set: &LabeledImages,
    i: usize,
    size: usize,
    stats: &ChannelStats,
    rng: &mut impl Rng,
) -> Result<Vec<f32>> {
    check_crop(set, i, size, stats)?;
    let top = rng.random_range(0..=set.height - size);
    let left = rng.random_range(0..=set.width - size);
    let flip = rng.random_bool(0.5);
    Ok(crop_normalize(set, i, size, stats, top, left, flip))
}

/// Evaluation crop: the central `size`x`size` window (offset rounded down, as TensorFlow's
/// `resize_image_with_crop_or_pad`), normalized like [`random_crop_flip`].
pub fn center_crop(
    set: &LabeledImages,
    i: usize,
    size: usize,
    stats: &ChannelStats,
) -> Result<Vec<f32>> {
    check_crop(set, i, size, stats)?;
    let top = (set.height - size) / 2;
    let left = (set.width - size) / 2;
    Ok(crop_normalize(set, i, size, stats, top, left, false))
}

fn check_crop(set: &LabeledImages, i: usize, size: usize, stats: &ChannelStats) -> Result<()> {
    let problem = if i >= set.len() {
        format!(
            "image index {i} out of range for a set of {} images",
            set.len()
        )
    } else if size == 0 || size > set.height || size > set.width {
        format!(
            "crop size {size} does not fit {}x{} images",
            set.height, set.width
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

/// The one place pixels are cut out and normalized; arguments were validated by
/// [`check_crop`].
fn crop_normalize(
    set: &LabeledImages,
    i: usize,
    size: usize,
    stats: &ChannelStats,
    top: usize,
    left: usize,
    flip: bool,
) -> Vec<f32> {
    let image = set.image(i);
    let plane = set.height * set.width;
    let mut out = Vec::with_capacity(set.channels * size * size);
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
