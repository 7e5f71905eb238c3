//! Seeded train/validation splits and seeded caps.
//!
//! The paper holds out a validation set from the training images: 5,000 of CIFAR's 50,000
//! (the Torch code shuffles the 50,000 with `randperm` and keeps the last 5,000), and for SVHN
//! 400 images per class from `train` plus 200 per class from `extra` (the first ones of each
//! class after a shuffle). Here every split is a pure function of the seed:
//!
//! - [`SplitStrategy::Random`] takes the first `k` positions of a seeded permutation of all
//!   training images, like the paper's CIFAR split;
//! - [`SplitStrategy::Stratified`] gives each class `k * n_c / n` of them (largest remainders
//!   round up, ties to the lower label), drawn by a seeded permutation within the class;
//! - [`per_class`] takes a fixed number per class, like the paper's SVHN split.
//!
//! Both parts come back as store indices in ascending order, so each part keeps the store's
//! order; shuffling is the loader's business.

use burn::config::Config;

use crate::error::DataError;
use crate::random::{Stream, permutation};
use crate::store::ImageStore;

/// How a validation set is drawn from the training images.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SplitStrategy {
    /// A seeded random subset (the paper's CIFAR protocol).
    Random,
    /// Each class contributes in proportion to its size.
    Stratified,
}

/// Splits the indices of `store` into `(train, validation)` with `valid` validation images.
pub fn split_indices(
    store: &ImageStore,
    valid: usize,
    seed: u64,
    strategy: SplitStrategy,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let n = store.len();
    if valid > n {
        return Err(DataError::config(
            "validation_size",
            valid,
            format!("larger than the {n} training images"),
        ));
    }
    let mut chosen = vec![false; n];
    match strategy {
        SplitStrategy::Random => {
            for &i in &permutation(n, seed, Stream::Split, 0)[..valid] {
                chosen[i] = true;
            }
        }
        SplitStrategy::Stratified => {
            let by_class = store.indices_by_class();
            let quotas = quotas(valid, by_class.values().map(Vec::len).collect());
            for ((label, members), quota) in by_class.iter().zip(quotas) {
                let order = permutation(members.len(), seed, Stream::Split, *label as u64 + 1);
                for &p in &order[..quota] {
                    chosen[members[p]] = true;
                }
            }
        }
    }
    Ok(partition(&chosen))
}

/// Splits the indices of `store` into `(rest, validation)` with `per_class` validation images
/// from every class, drawn by a seeded permutation within the class; `key` keeps the draws
/// for different stores (SVHN's `train` and `extra`) apart.
pub fn per_class(
    store: &ImageStore,
    per_class: usize,
    seed: u64,
    key: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let mut chosen = vec![false; store.len()];
    let by_class = store.indices_by_class();
    for (label, members) in &by_class {
        if members.len() < per_class {
            return Err(DataError::config(
                "validation_size",
                format!("{per_class} per class"),
                format!(
                    "class {:?} has only {} images",
                    store.classes()[*label],
                    members.len()
                ),
            ));
        }
        let order = permutation(
            members.len(),
            seed,
            Stream::Split,
            (key << 32) + *label as u64,
        );
        for &p in &order[..per_class] {
            chosen[members[p]] = true;
        }
    }
    if by_class.len() < store.classes().len() && per_class > 0 {
        let empty = (0..store.classes().len())
            .find(|l| !by_class.contains_key(l))
            .expect("a class is missing");
        return Err(DataError::config(
            "validation_size",
            format!("{per_class} per class"),
            format!("class {:?} has no image", store.classes()[empty]),
        ));
    }
    Ok(partition(&chosen))
}

/// The `keep` indices of `0..n` kept by a seeded cap: the first `keep` of a seeded
/// permutation, in ascending order. `key` separates caps on different stores.
pub fn seeded_subset(n: usize, keep: usize, seed: u64, key: u64) -> Vec<usize> {
    if keep >= n {
        return (0..n).collect();
    }
    let mut kept = permutation(n, seed, Stream::Subset, key)[..keep].to_vec();
    kept.sort_unstable();
    kept
}

/// Largest-remainder apportionment of `total` over classes of the given sizes.
fn quotas(total: usize, sizes: Vec<usize>) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    if n == 0 {
        return vec![0; sizes.len()];
    }
    let mut quotas: Vec<usize> = sizes.iter().map(|&s| total * s / n).collect();
    let mut left = total - quotas.iter().sum::<usize>();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    // larger remainder first; the stable sort keeps lower labels first on ties
    by_remainder.sort_by_key(|&c| std::cmp::Reverse(total * sizes[c] % n));
    for c in by_remainder {
        if left == 0 {
            break;
        }
        if quotas[c] < sizes[c] {
            quotas[c] += 1;
            left -= 1;
        }
    }
    quotas
}

fn partition(chosen: &[bool]) -> (Vec<usize>, Vec<usize>) {
    let mut rest = Vec::new();
    let mut picked = Vec::new();
    for (i, &c) in chosen.iter().enumerate() {
        if c { picked.push(i) } else { rest.push(i) }
    }
    (rest, picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IMAGE_BYTES;

    /// `counts[c]` images of class c, in class order.
    fn store(counts: &[usize]) -> ImageStore {
        let labels: Vec<u16> = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &k)| std::iter::repeat_n(c as u16, k))
            .collect();
        let classes = (0..counts.len()).map(|c| format!("c{c}")).collect();
        ImageStore::new(vec![0; labels.len() * IMAGE_BYTES], labels, classes)
    }

    #[test]
    fn a_random_split_is_seeded_disjoint_and_complete() {
        let s = store(&[50, 30, 20]);
        let (train, valid) = split_indices(&s, 10, 1, SplitStrategy::Random).unwrap();
        assert_eq!((train.len(), valid.len()), (90, 10));
        let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(valid.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            split_indices(&s, 10, 1, SplitStrategy::Random).unwrap().1,
            valid
        );
        assert_ne!(
            split_indices(&s, 10, 2, SplitStrategy::Random).unwrap().1,
            valid
        );
        let (train, valid) = split_indices(&s, 0, 1, SplitStrategy::Random).unwrap();
        assert_eq!((train.len(), valid.len()), (100, 0));
    }

    #[test]
    fn a_stratified_split_follows_class_proportions() {
        // 11 of 100 over classes of 50, 30, 20: exact shares 5.5, 3.3, 2.2, floors 5, 3, 2,
        // one left for the largest remainder (class 0).
        let s = store(&[50, 30, 20]);
        let (_, valid) = split_indices(&s, 11, 3, SplitStrategy::Stratified).unwrap();
        let per_class = s.subset(&valid).class_counts();
        assert_eq!(per_class, vec![6, 3, 2]);
    }

    #[test]
    fn per_class_takes_the_same_number_from_every_class() {
        let s = store(&[5, 7, 4]);
        let (rest, valid) = per_class(&s, 3, 9, 0).unwrap();
        assert_eq!(s.subset(&valid).class_counts(), vec![3, 3, 3]);
        assert_eq!(rest.len(), 16 - 9);
        let err = per_class(&s, 5, 9, 0).unwrap_err();
        assert!(err.to_string().contains("has only 4 images"), "{err}");
    }

    #[test]
    fn a_validation_set_larger_than_the_training_set_is_refused() {
        let err = split_indices(&store(&[3]), 4, 0, SplitStrategy::Random).unwrap_err();
        assert!(err.to_string().contains("validation_size` = 4"), "{err}");
    }

    #[test]
    fn caps_keep_a_seeded_ascending_subset() {
        let kept = seeded_subset(100, 10, 4, 0);
        assert_eq!(kept.len(), 10);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(kept, seeded_subset(100, 10, 4, 0));
        assert_ne!(kept, seeded_subset(100, 10, 4, 1));
        assert_eq!(seeded_subset(5, 10, 4, 0), vec![0, 1, 2, 3, 4]);
    }
}
