//! Counter-based randomness: every draw is a pure function of `(seed, stream, a, b)`.
//!
//! Nothing here keeps state. A shuffle for epoch `e` or the crop of image `i` in epoch `e` is
//! recomputed from those numbers alone, so a run resumed at epoch `k` sees exactly the batches
//! of an uninterrupted run, whatever happened before, and no RNG state has to be saved.
//!
//! The mixing function is the SplitMix64 finaliser (Steele, Lea and Flood, 2014), a bijection on
//! `u64` with full avalanche. A draw chains it over the inputs, each stream offset by a distinct
//! odd constant so that, say, the shuffle and the augmentation of the same epoch are unrelated.

/// The purpose of a draw; keeps the draws of different uses independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// The order of the items in an epoch.
    Shuffle = 1,
    /// The crop offsets and flip of an image in an epoch.
    Augment = 2,
    /// The train/validation split.
    Split = 3,
    /// The subset kept by a `max_items` cap.
    Subset = 4,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function applied to `x + golden ratio`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit draw for `(seed, stream, a, b)`.
pub fn draw(seed: u64, stream: Stream, a: u64, b: u64) -> u64 {
    let h = splitmix64(seed ^ (stream as u64).wrapping_mul(GOLDEN));
    let h = splitmix64(h ^ a);
    splitmix64(h ^ b.rotate_left(32))
}

/// Maps a 64-bit draw to `0..n` by a widening multiply (Lemire's method without rejection;
/// the bias is below `n / 2^64`, irrelevant for data-set sizes).
pub fn below(draw: u64, n: usize) -> usize {
    ((u128::from(draw) * n as u128) >> 64) as usize
}

/// A Fisher–Yates permutation of `0..n`, a pure function of `(seed, stream, key)`.
///
/// Step `i` (from `n - 1` down to 1) swaps position `i` with position
/// `below(draw(seed, stream, key, i), i + 1)`.
pub fn permutation(n: usize, seed: u64, stream: Stream, key: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(draw(seed, stream, key, i as u64), i + 1);
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Reference: the first outputs of Vigna's splitmix64.c seeded with 1234567, as listed
        // in Rosetta Code's "Pseudo-random numbers/Splitmix64" task. That generator adds the
        // golden ratio to its state before mixing, as `splitmix64` does, so output `k` is
        // `splitmix64(seed + k * GOLDEN)`.
        let expected = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
        ];
        for (k, &value) in expected.iter().enumerate() {
            let state = 1234567u64.wrapping_add(GOLDEN.wrapping_mul(k as u64));
            assert_eq!(splitmix64(state), value, "output {k}");
        }
    }

    #[test]
    fn a_permutation_holds_every_index_once_and_depends_on_the_key() {
        let p = permutation(1000, 7, Stream::Shuffle, 3);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 7, Stream::Shuffle, 3));
        assert_ne!(p, permutation(1000, 7, Stream::Shuffle, 4));
        assert_ne!(p, permutation(1000, 8, Stream::Shuffle, 3));
        assert_ne!(p, permutation(1000, 7, Stream::Split, 3));
        assert!(permutation(0, 1, Stream::Shuffle, 0).is_empty());
    }

    #[test]
    fn below_is_roughly_uniform() {
        // 90,000 draws into 9 bins: each count is Binomial(90000, 1/9), standard deviation
        // sqrt(90000 * 1/9 * 8/9) = 94.3; 6 standard deviations is 566.
        let mut bins = [0usize; 9];
        for i in 0..90_000u64 {
            bins[below(draw(1, Stream::Augment, i, 0), 9)] += 1;
        }
        for count in bins {
            assert!((count as i64 - 10_000).abs() < 566, "{bins:?}");
        }
    }
}
