//! Input normalisation, fitted on the training split only.
//!
//! The paper's Torch code (`cifar-dataset.lua` and `svhn-dataset.lua`, `preprocess`) computes
//! `mean = data:mean(1)`, the per-pixel mean image of the training split, and
//! `std = data:std()`, ONE standard deviation over every value of the raw training data, and
//! then maps each image `x` to `(x - mean) / std`. That is
//! [`Normalization::MeanImageGlobalStd`], the default. [`Normalization::PerChannel`] is the
//! common alternative: one mean and one standard deviation per colour channel.
//!
//! Both standard deviations are the unbiased ones (divisor `n - 1`), as Torch's `std()`.
//! Sums are accumulated exactly in integers, so the fitted values do not depend on the order of
//! the images. Pixel values stay on the 0..255 scale; the division by the standard deviation
//! makes the scale irrelevant.
//!
//! A [`Normalizer`] keeps, for every one of the 3072 pixel positions, a scale and an offset so
//! that `normalised = value * scale + offset`; building a batch is then one multiply-add per
//! pixel.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::store::{IMAGE_BYTES, IMAGE_SIDE, ImageStore};

/// How inputs are normalised. Default: [`MeanImageGlobalStd`](Self::MeanImageGlobalStd).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// Subtract the per-pixel mean image, divide by one global standard deviation (the
    /// paper's code).
    MeanImageGlobalStd,
    /// Subtract the per-channel mean, divide by the per-channel standard deviation.
    PerChannel,
}

/// The fitted statistics: for each of the 3072 CHW positions a mean and a standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    normalization: Normalization,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalizer {
    /// Fits the statistics on `train`, which must hold at least one image.
    ///
    /// A standard deviation of zero (a single image, or all images constant) is replaced by 1
    /// so that normalisation stays finite.
    pub fn fit(train: &ImageStore, normalization: Normalization) -> Result<Self, DataError> {
        if train.is_empty() {
            return Err(DataError::config(
                "validation_size",
                "(all of the training split)",
                "the training split is empty; normalisation needs at least one image",
            ));
        }
        let n = train.len() as u64;
        let plane = IMAGE_SIDE * IMAGE_SIDE;

        // exact sums
        let mut sum = vec![0u64; IMAGE_BYTES];
        let mut sum_sq = [0u128; 3];
        let mut channel_sum = [0u64; 3];
        for image in train.pixels().chunks_exact(IMAGE_BYTES) {
            for (p, &v) in image.iter().enumerate() {
                sum[p] += u64::from(v);
            }
            for c in 0..3 {
                let s: u64 = image[c * plane..(c + 1) * plane]
                    .iter()
                    .map(|&v| u64::from(v) * u64::from(v))
                    .sum();
                sum_sq[c] += u128::from(s);
            }
        }
        for (p, &s) in sum.iter().enumerate() {
            channel_sum[p / plane] += s;
        }

        // unbiased standard deviation from exact sums over `count` values
        let std_of = |total: u64, total_sq: u128, count: u64| -> f32 {
            if count < 2 {
                return 1.0;
            }
            let count_f = count as f64;
            let var =
                (total_sq as f64 - (total as f64) * (total as f64) / count_f) / (count_f - 1.0);
            let std = var.max(0.0).sqrt() as f32;
            if std > 0.0 { std } else { 1.0 }
        };

        let mut mean = vec![0f32; IMAGE_BYTES];
        let mut std = vec![0f32; IMAGE_BYTES];
        match normalization {
            Normalization::MeanImageGlobalStd => {
                for (m, &s) in mean.iter_mut().zip(&sum) {
                    *m = (s as f64 / n as f64) as f32;
                }
                let total: u64 = channel_sum.iter().sum();
                let total_sq: u128 = sum_sq.iter().sum();
                let global = std_of(total, total_sq, n * IMAGE_BYTES as u64);
                std.fill(global);
            }
            Normalization::PerChannel => {
                let count = n * plane as u64;
                for c in 0..3 {
                    let m = (channel_sum[c] as f64 / count as f64) as f32;
                    let s = std_of(channel_sum[c], sum_sq[c], count);
                    mean[c * plane..(c + 1) * plane].fill(m);
                    std[c * plane..(c + 1) * plane].fill(s);
                }
            }
        }
        Ok(Self {
            normalization,
            mean,
            std,
        })
    }

    /// The normaliser that maps `v` to `v` (mean 0, standard deviation 1), for tests and for
    /// looking at raw pixels.
    pub fn identity() -> Self {
        Self {
            normalization: Normalization::MeanImageGlobalStd,
            mean: vec![0.0; IMAGE_BYTES],
            std: vec![1.0; IMAGE_BYTES],
        }
    }

    /// Which rule was fitted.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// The mean of each CHW position (3072 values).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The standard deviation used at each CHW position (3072 values).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// The tables `(scale, offset)` with `normalised = value * scale + offset`, 3072 each.
    pub fn tables(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let offset = self.mean.iter().zip(&scale).map(|(m, k)| -m * k).collect();
        (scale, offset)
    }

    /// Normalises one 3072-byte CHW image into `out`.
    ///
    /// # Panics
    ///
    /// If either slice is not 3072 long.
    pub fn normalize_into(&self, image: &[u8], out: &mut [f32]) {
        assert_eq!(image.len(), IMAGE_BYTES, "an image is 3072 bytes");
        assert_eq!(out.len(), IMAGE_BYTES, "an output image is 3072 values");
        for p in 0..IMAGE_BYTES {
            out[p] = (f32::from(image[p]) - self.mean[p]) / self.std[p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(images: &[[u8; 3]]) -> ImageStore {
        // image k: each channel constant at images[k][c]
        let plane = IMAGE_SIDE * IMAGE_SIDE;
        let mut pixels = Vec::new();
        for colours in images {
            for &v in colours {
                pixels.extend(std::iter::repeat_n(v, plane));
            }
        }
        let labels = vec![0; images.len()];
        ImageStore::new(pixels, labels, vec!["only".into()])
    }

    #[test]
    fn mean_image_and_global_std_follow_the_torch_code() {
        // Two images: channels (0, 10, 20) and (2, 10, 30).
        // Mean image: red 1, green 10, blue 25 at every position.
        // All 6144 values: 1024 each of 0, 2, 10, 10, 20, 30; mean 12;
        // squared deviations per 1024: 144 + 100 + 4 + 4 + 64 + 324 = 640;
        // unbiased variance 640 * 1024 / 6143 = 106.684..., std 10.3288...
        let train = store(&[[0, 10, 20], [2, 10, 30]]);
        let norm = Normalizer::fit(&train, Normalization::MeanImageGlobalStd).unwrap();
        assert_eq!(norm.mean()[0], 1.0);
        assert_eq!(norm.mean()[1024 + 5], 10.0);
        assert_eq!(norm.mean()[3071], 25.0);
        let expected = (640.0f64 * 1024.0 / 6143.0).sqrt() as f32;
        assert!(
            (norm.std()[17] - expected).abs() < 1e-5,
            "{}",
            norm.std()[17]
        );
        assert!(norm.std().iter().all(|&s| s == norm.std()[0]));
    }

    #[test]
    fn per_channel_statistics_use_each_channel_alone() {
        // Red: 1024 zeros and 1024 twos: mean 1, unbiased variance 2048 / 2047.
        // Green: constant 10, std 0 replaced by 1.
        let train = store(&[[0, 10, 20], [2, 10, 30]]);
        let norm = Normalizer::fit(&train, Normalization::PerChannel).unwrap();
        assert_eq!(norm.mean()[3], 1.0);
        assert_eq!(norm.mean()[2048], 25.0);
        let red = (2048.0f64 / 2047.0).sqrt() as f32;
        assert!((norm.std()[0] - red).abs() < 1e-6);
        assert_eq!(norm.std()[1024], 1.0);
    }

    #[test]
    fn tables_and_normalize_into_agree() {
        let train = store(&[[0, 10, 20], [2, 10, 30], [7, 200, 3]]);
        let norm = Normalizer::fit(&train, Normalization::MeanImageGlobalStd).unwrap();
        let (scale, offset) = norm.tables();
        let mut out = vec![0.0; IMAGE_BYTES];
        norm.normalize_into(train.image(2), &mut out);
        for p in [0, 1500, 3071] {
            let by_table = f32::from(train.image(2)[p]) * scale[p] + offset[p];
            assert!((by_table - out[p]).abs() < 1e-5);
        }
    }

    #[test]
    fn an_empty_training_split_is_an_error() {
        let err = Normalizer::fit(&ImageStore::empty(vec![]), Normalization::PerChannel);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("training split is empty")
        );
    }
}
