//! Data sets for the stochastic-depth experiments: CIFAR-10, CIFAR-100, SVHN and image
//! folders, decoded once, cached, split and normalised as in the paper, and batched for Burn.
//!
//! Paper: G. Huang, Y. Sun, Z. Liu, D. Sedra and K. Weinberger, *Deep Networks with Stochastic
//! Depth*, ECCV 2016, <https://arxiv.org/abs/1603.09382>. The protocol followed here is that
//! of the paper's Torch code (`cifar-dataset.lua`, `svhn-dataset.lua`): a held-out validation
//! set, normalisation by the training split's mean image and one global standard deviation,
//! and for CIFAR translation by up to 4 pixels with zero fill plus a random horizontal flip.
//!
//! # The API the trainer uses
//!
//! - [`DatasetConfig`] (a Burn `Config`) → [`load`] → [`Splits`] `{ train, valid, test,
//!   classes, normalizer }`. The stores are `Arc<ImageStore>`.
//! - [`EpochLoader::train`]`(store, &normalizer, batch_size, seed, augmentation)` and
//!   [`EpochLoader::eval`]`(store, &normalizer, batch_size)`, or the shortcuts
//!   [`Splits::train_loader`] and [`Splits::eval_loader`]. An `EpochLoader` is a Burn
//!   [`DataLoader`](burn::data::dataloader::DataLoader)`<`[`ImageBatch`]`>`; its batches are a
//!   pure function of `(seed, epoch, position)`, and
//!   [`with_start_epoch`](EpochLoader::with_start_epoch) resumes a run exactly.
//! - [`DatasetKind::paper_augmentation`] says which augmentation the paper used.
//! - [`bench_report`] measures decoding, cache start-up and loader throughput.
//!
//! ```no_run
//! use sd_data::{DataError, DatasetConfig, DatasetKind, load};
//! use burn::data::dataloader::DataLoader;
//!
//! # fn main() -> Result<(), DataError> {
//! let config = DatasetConfig::new(DatasetKind::Cifar10)
//!     .with_path(Some("../shared/datasets/cifar10-jpeg.tar.gz".into()));
//! let splits = load(&config)?;
//! let train = splits.train_loader(128, 0, DatasetKind::Cifar10.paper_augmentation());
//! let valid = splits.eval_loader(&splits.valid, 500);
//! for batch in train.iter() {
//!     let batch = batch.expect("the loader never fails");
//!     assert_eq!(batch.images.dims()[1..], [3, 32, 32]);
//! }
//! assert_eq!(valid.num_items(), 5000);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! | module | what it holds |
//! |---|---|
//! | [`dataset`] | [`DatasetConfig`], [`load`], [`Splits`]: the protocol and its defaults |
//! | [`store`] | [`ImageStore`]: N images of 3x32x32 `u8` (CHW), labels, class names |
//! | [`cifar`] | the CIFAR-10/100 binary releases, from archive or folder |
//! | [`folder`] | image folders `root/{train,test}/<class>/*.png|jpg`, from folder or archive |
//! | [`svhn`], [`mat`] | SVHN's `.mat` files and a MATLAB level-5 reader |
//! | [`archive`] | streamed `.tar`/`.tar.gz` reading and safe extraction |
//! | [`download`] | HTTP download with progress bar, resume and checksum |
//! | [`cache`] | the versioned, checksummed on-disk cache of decoded sets |
//! | [`split`] | seeded validation splits (random, stratified, per class) and caps |
//! | [`normalize`] | [`Normalizer`]: mean image + global std (paper) or per channel |
//! | [`augment`] | translation with zero fill and horizontal flip |
//! | [`random`] | counter-based draws (SplitMix64) and Fisher–Yates permutations |
//! | [`loader`] | [`ImageBatch`] and [`EpochLoader`] with its prefetch thread |
//! | [`bench`] | [`bench_report`] |
//! | [`error`] | [`DataError`] |
//!
//! # Decisions
//!
//! - **Images are 32x32 RGB, always.** Any other size is an error naming the file (nothing is
//!   resized). Grey-scale, alpha and 16-bit images are converted to 8-bit RGB.
//! - **Defaults live in [`DatasetConfig`]**: validation = one tenth of the training images for
//!   CIFAR (the paper's 5,000) and folders, 400 + 200 per class for SVHN; paths default to
//!   `datasets/downloads` and `datasets/cache` under the working directory.
//! - **Errors**: everything a file or a user can get wrong is a [`DataError`] naming the path
//!   or value; panics are kept for programmer misuse (a batch size of 0) and say so.
//!
//! # Feature flags
//!
//! None. The crate enables Burn's `dataset` feature (for `DataLoader`) and `flex` (the CPU
//! device [`bench_report`] measures on).
//!
//! # Benchmark
//!
//! Measured figures and the command are in the crate's `README.md`.

#![warn(missing_docs)]

pub mod archive;
pub mod augment;
pub mod bench;
pub mod cache;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod error;
pub mod folder;
pub mod loader;
pub mod mat;
pub mod normalize;
pub mod random;
pub mod split;
pub mod store;
pub mod svhn;

#[cfg(test)]
mod testutil;

pub use augment::{Augmentation, Crop};
pub use bench::bench_report;
pub use cache::CachePolicy;
pub use cifar::Cifar100Labels;
pub use dataset::{DatasetConfig, DatasetKind, Splits, load};
pub use download::Checksum;
pub use error::DataError;
pub use loader::{EpochIter, EpochLoader, HostBatch, ImageBatch, Order};
pub use normalize::{Normalization, Normalizer};
pub use split::SplitStrategy;
pub use store::{CHANNELS, DecodedSet, IMAGE_BYTES, IMAGE_SIDE, ImageStore};
