//! Training-time augmentation: translation by up to 4 pixels with zero fill, then a horizontal
//! flip with probability 0.5.
//!
//! This is what the paper's Torch code does in `CIFAR:sampleIndices`: the batch image is zeroed,
//! the normalised source image is copied in shifted by `(dx, dy)`, each drawn uniformly from
//! `-4..=4`, and the result is mirrored when a fair coin says so. Because the data were
//! normalised beforehand, the fill is zero *in the normalised space*, not black pixels.
//!
//! A draw is a pure function of `(seed, epoch, image index)` (see [`crate::random`]), so the
//! same image in the same epoch is always cropped and flipped the same way.
//!
//! The loop below writes the output directly: output pixel `(c, y, x)` reads source pixel
//! `(c, y - dy, x' - dx)` with `x' = 31 - x` when flipped and `x' = x` otherwise, or is zero
//! when that falls outside the image.

use burn::config::Config;

use crate::random::{self, Stream};
use crate::store::{CHANNELS, IMAGE_BYTES, IMAGE_SIDE};

/// Largest translation, in pixels, in each direction (the paper's 4).
pub const MAX_SHIFT: i32 = 4;

/// Which augmentation a training loader applies.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Augmentation {
    /// None: images are only normalised (the paper's SVHN runs).
    None,
    /// Translation by `-4..=4` pixels in x and y with zero fill, then a horizontal flip with
    /// probability 0.5 (the paper's CIFAR runs).
    TranslateFlip,
}

/// The augmentation drawn for one image in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Crop {
    /// Shift to the right, in pixels (`-4..=4`).
    pub dx: i32,
    /// Shift down, in pixels (`-4..=4`).
    pub dy: i32,
    /// Mirror left to right after shifting.
    pub flip: bool,
}

impl Crop {
    /// No shift, no flip.
    pub const IDENTITY: Crop = Crop {
        dx: 0,
        dy: 0,
        flip: false,
    };

    /// The crop of store image `index` in `epoch`, for `seed`.
    pub fn draw(seed: u64, epoch: u64, index: u64) -> Self {
        let bits = random::draw(seed, Stream::Augment, epoch, index);
        let span = (2 * MAX_SHIFT + 1) as usize;
        // dx from the high half of the draw, dy from the low half, flip from a re-mix
        let dx = random::below(bits & 0xFFFF_FFFF_0000_0000, span) as i32 - MAX_SHIFT;
        let dy = random::below(bits << 32, span) as i32 - MAX_SHIFT;
        let flip = random::splitmix64(bits) & 1 == 1;
        Crop { dx, dy, flip }
    }
}

/// Writes `image` (3072 CHW bytes), normalised with the `(scale, offset)` tables of a
/// [`Normalizer`](crate::Normalizer) and transformed by `crop`, into `out` (3072 floats).
///
/// # Panics
///
/// If a slice is not 3072 long.
pub fn write_image(image: &[u8], scale: &[f32], offset: &[f32], crop: Crop, out: &mut [f32]) {
    assert_eq!(image.len(), IMAGE_BYTES, "an image is 3072 bytes");
    assert_eq!(out.len(), IMAGE_BYTES, "an output image is 3072 values");
    assert!(scale.len() == IMAGE_BYTES && offset.len() == IMAGE_BYTES);

    if crop == Crop::IDENTITY {
        for p in 0..IMAGE_BYTES {
            out[p] = f32::from(image[p]) * scale[p] + offset[p];
        }
        return;
    }

    let side = IMAGE_SIDE as i32;
    for c in 0..CHANNELS {
        for y in 0..side {
            let row = (c * IMAGE_SIDE + y as usize) * IMAGE_SIDE;
            let out_row = &mut out[row..row + IMAGE_SIDE];
            let sy = y - crop.dy;
            if !(0..side).contains(&sy) {
                out_row.fill(0.0);
                continue;
            }
            let src = (c * IMAGE_SIDE + sy as usize) * IMAGE_SIDE;
            for (x, value) in out_row.iter_mut().enumerate() {
                let x = x as i32;
                let sx = if crop.flip { side - 1 - x } else { x } - crop.dx;
                *value = if (0..side).contains(&sx) {
                    let p = src + sx as usize;
                    f32::from(image[p]) * scale[p] + offset[p]
                } else {
                    0.0
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image whose value at (c, y, x) is `c * 64 + y + x` (no wrap below 256 as y, x < 32).
    fn ramp() -> Vec<u8> {
        let mut image = vec![0u8; IMAGE_BYTES];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    image[(c * 32 + y) * 32 + x] = (c * 64 + y + x) as u8;
                }
            }
        }
        image
    }

    fn apply(crop: Crop) -> Vec<f32> {
        let (scale, offset) = (vec![1.0; IMAGE_BYTES], vec![0.0; IMAGE_BYTES]);
        let mut out = vec![f32::NAN; IMAGE_BYTES];
        write_image(&ramp(), &scale, &offset, crop, &mut out);
        out
    }

    fn at(image: &[f32], c: usize, y: usize, x: usize) -> f32 {
        image[(c * 32 + y) * 32 + x]
    }

    #[test]
    fn identity_copies_the_normalised_image() {
        let (scale, offset) = (vec![0.5; IMAGE_BYTES], vec![-1.0; IMAGE_BYTES]);
        let mut out = vec![0.0; IMAGE_BYTES];
        write_image(&ramp(), &scale, &offset, Crop::IDENTITY, &mut out);
        assert_eq!(at(&out, 1, 3, 4), (64.0 + 7.0) * 0.5 - 1.0);
    }

    #[test]
    fn a_shift_moves_pixels_and_fills_zeros() {
        let out = apply(Crop {
            dx: 2,
            dy: -3,
            flip: false,
        });
        // output (y, x) reads source (y + 3, x - 2)
        assert_eq!(at(&out, 0, 0, 2), 3.0);
        assert_eq!(at(&out, 2, 10, 31), 128.0 + 13.0 + 29.0);
        // columns 0 and 1 and rows 29..32 are zero fill
        assert_eq!(at(&out, 1, 5, 1), 0.0);
        assert_eq!(at(&out, 1, 29, 10), 0.0);
        assert!(out.iter().all(|v| !v.is_nan()));
    }

    #[test]
    fn flip_mirrors_after_the_shift() {
        let out = apply(Crop {
            dx: 1,
            dy: 0,
            flip: true,
        });
        // shifted image T(y, x) = src(y, x - 1), zero at x = 0; flipped F(y, x) = T(y, 31 - x)
        assert_eq!(at(&out, 0, 4, 0), 4.0 + 30.0);
        assert_eq!(at(&out, 0, 4, 30), 4.0 + 0.0);
        assert_eq!(at(&out, 0, 4, 31), 0.0);
    }

    #[test]
    fn draws_cover_the_shift_range_and_flip_half_the_time() {
        // 9,000 draws: each of the 9 shifts is Binomial(9000, 1/9), sd 29.8, so within 200 of
        // 1000; flips are Binomial(9000, 1/2), sd 47.4, so within 300 of 4500.
        let mut dx = [0usize; 9];
        let mut dy = [0usize; 9];
        let mut flips = 0;
        for i in 0..9000 {
            let crop = Crop::draw(5, 2, i);
            dx[(crop.dx + 4) as usize] += 1;
            dy[(crop.dy + 4) as usize] += 1;
            flips += usize::from(crop.flip);
        }
        for count in dx.iter().chain(&dy) {
            assert!(count.abs_diff(1000) < 200, "{dx:?} {dy:?}");
        }
        assert!(flips.abs_diff(4500) < 300, "{flips}");
        assert_eq!(Crop::draw(5, 2, 17), Crop::draw(5, 2, 17));
    }
}
