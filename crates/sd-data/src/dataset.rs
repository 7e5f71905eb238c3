//! The entry point: [`DatasetConfig`] in, [`Splits`] out, following the paper's protocol.
//!
//! [`load`] finds (or downloads) the source, decodes it through the cache, holds out the
//! validation set, applies the quick-run caps and fits the normaliser on what is left for
//! training:
//!
//! | data set | source when `path` is `None` | default validation set |
//! |---|---|---|
//! | CIFAR-10 | `cifar-10-binary.tar.gz`, downloaded | 5,000 of 50,000 (one tenth), random |
//! | CIFAR-100 | `cifar-100-binary.tar.gz`, downloaded | 5,000 of 50,000 (one tenth), random |
//! | SVHN | the three `.mat` files, downloaded | 400 per class from train + 200 per class from extra |
//! | Folder | (a path is required) | one tenth of the training images, random |
//!
//! The CIFAR defaults are "one tenth of the training images", which is the paper's 5,000 for
//! the full sets and keeps small sets such as the committed sample usable. SVHN trains on
//! `train` and `extra` minus the validation images (598,388 images), as the paper does.
//!
//! A CIFAR `path` may name the official binary archive, its extracted folder, or an image
//! folder in the CIFAR layout (such as the shared JPEG archive or Burn's PNG download); which
//! one is decided by looking for `data_batch_1.bin` (`train.bin` for CIFAR-100).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::config::Config;

use crate::augment::Augmentation;
use crate::cache::{self, CacheKey, CachePolicy};
use crate::cifar::{self, Cifar100Labels, CifarVariant};
use crate::download::{self, Checksum};
use crate::error::DataError;
use crate::folder;
use crate::loader::EpochLoader;
use crate::normalize::{Normalization, Normalizer};
use crate::split::{self, SplitStrategy};
use crate::store::{DecodedSet, ImageStore};
use crate::svhn;

/// The data sets of the paper, plus any image folder.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// CIFAR-10: 10 classes, 50,000 training and 10,000 test images.
    Cifar10,
    /// CIFAR-100: 100 fine (or 20 coarse) classes, 50,000 + 10,000 images.
    Cifar100,
    /// SVHN cropped digits: 73,257 train, 531,131 extra and 26,032 test images.
    Svhn,
    /// An image folder `root/{train,test}/<class>/*.png|jpg`.
    Folder,
}

impl DatasetKind {
    /// The augmentation the paper trains with: translation and flip for CIFAR (and image
    /// folders), none for SVHN.
    pub fn paper_augmentation(self) -> Augmentation {
        match self {
            DatasetKind::Svhn => Augmentation::None,
            _ => Augmentation::TranslateFlip,
        }
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = DataError;

    /// `cifar10`, `cifar100`, `svhn` or `folder`, in any case, with or without `-`/`_`.
    fn from_str(name: &str) -> Result<Self, DataError> {
        Ok(DatasetConfig::parse_kind(name)?.kind)
    }
}

/// Which data set to load and how to split and normalise it.
#[derive(Config, Debug)]
pub struct DatasetConfig {
    /// The data set.
    pub kind: DatasetKind,
    /// An archive or folder to read. `None` downloads the official release into
    /// `download_dir` (CIFAR, SVHN); a folder data set needs a path.
    pub path: Option<String>,
    /// Validation images held out of the training set; `None` is the default of the table in
    /// the module docs; 0 holds out none. For SVHN a number is drawn from `train` and `extra`
    /// together with `split`.
    pub validation_size: Option<usize>,
    /// Seed of the validation split and of the caps. Default 0.
    #[config(default = 0)]
    pub seed: u64,
    /// How a validation set of a given size is drawn. Default: `Random`, as the paper.
    #[config(default = "SplitStrategy::Random")]
    pub split: SplitStrategy,
    /// Input normalisation. Default: `MeanImageGlobalStd`, as the paper's code.
    #[config(default = "Normalization::MeanImageGlobalStd")]
    pub normalization: Normalization,
    /// CIFAR-100 targets. Default: `Fine`.
    #[config(default = "Cifar100Labels::Fine")]
    pub cifar100_labels: Cifar100Labels,
    /// Folder of the decoded-data cache; `None` is `datasets/cache` under the working
    /// directory.
    pub cache_dir: Option<String>,
    /// Whether the cache is read and written. Default: `ReadWrite`.
    #[config(default = "CachePolicy::ReadWrite")]
    pub cache: CachePolicy,
    /// Folder downloads go to; `None` is `datasets/downloads` under the working directory.
    pub download_dir: Option<String>,
    /// Keep at most this many training images (a seeded subset, after the split), for quick
    /// runs. The normaliser is fitted on what is kept.
    pub max_train: Option<usize>,
    /// Keep at most this many validation and this many test images (seeded subsets).
    pub max_eval: Option<usize>,
}

impl DatasetConfig {
    /// The default config for a data set named on a command line: `cifar10`, `cifar100`,
    /// `cifar100-coarse` (coarse labels), `svhn` or `folder`; case, `-` and `_` are ignored.
    pub fn parse_kind(name: &str) -> Result<Self, DataError> {
        let key: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        let config = match key.as_str() {
            "cifar10" => Self::new(DatasetKind::Cifar10),
            "cifar100" => Self::new(DatasetKind::Cifar100),
            "cifar100coarse" => {
                Self::new(DatasetKind::Cifar100).with_cifar100_labels(Cifar100Labels::Coarse)
            }
            "svhn" => Self::new(DatasetKind::Svhn),
            "folder" => Self::new(DatasetKind::Folder),
            _ => {
                return Err(DataError::config(
                    "kind",
                    format!("{name:?}"),
                    "expected cifar10, cifar100, cifar100-coarse, svhn or folder",
                ));
            }
        };
        Ok(config)
    }
}

/// A loaded data set: the three parts, the class names and the normaliser fitted on `train`.
///
/// The stores are behind [`Arc`] so that loaders share them without copying.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training images (after the validation split and any cap).
    pub train: Arc<ImageStore>,
    /// The held-out validation images (possibly empty).
    pub valid: Arc<ImageStore>,
    /// The test images.
    pub test: Arc<ImageStore>,
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// The normalisation fitted on `train`.
    pub normalizer: Normalizer,
}

impl Splits {
    /// A training loader over `train`, shuffled and augmented with `augmentation`.
    pub fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        augmentation: Augmentation,
    ) -> EpochLoader {
        EpochLoader::train(
            self.train.clone(),
            &self.normalizer,
            batch_size,
            seed,
            augmentation,
        )
    }

    /// An evaluation loader over `store` (`valid` or `test`), in order, not augmented.
    pub fn eval_loader(&self, store: &Arc<ImageStore>, batch_size: usize) -> EpochLoader {
        EpochLoader::eval(store.clone(), &self.normalizer, batch_size)
    }
}

/// Loads the data set described by `config`; see the module documentation.
pub fn load(config: &DatasetConfig) -> Result<Splits, DataError> {
    let set = decode(config)?;
    split_set(config, set)
}

/// Finds, downloads if needed, and decodes the source of `config` through the cache.
pub fn decode(config: &DatasetConfig) -> Result<DecodedSet, DataError> {
    let cache_dir = config
        .cache_dir
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(cache::default_dir);
    let download_dir = config
        .download_dir
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("datasets/downloads"));
    let given = config.path.as_ref().map(PathBuf::from);
    if let Some(path) = &given
        && !path.exists()
    {
        return Err(DataError::Missing {
            path: path.clone(),
            what: format!("{:?} data set given as `path`", config.kind),
        });
    }

    match config.kind {
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
            let (variant, url, md5, tag, options) = match config.kind {
                DatasetKind::Cifar10 => (
                    CifarVariant::Cifar10,
                    download::CIFAR10_URL,
                    download::CIFAR10_MD5,
                    "cifar10",
                    String::new(),
                ),
                _ => (
                    CifarVariant::Cifar100(config.cifar100_labels),
                    download::CIFAR100_URL,
                    download::CIFAR100_MD5,
                    "cifar100",
                    format!("labels={:?}", config.cifar100_labels),
                ),
            };
            let source = match given {
                Some(path) => path,
                None => {
                    let file = url.rsplit('/').next().expect("URL has a file name");
                    let dest = download_dir.join(file);
                    download::download(url, &dest, &Checksum::Md5(md5.into()))?;
                    dest
                }
            };
            let key = CacheKey::new(tag, &source, &options)?;
            cache::load_or_decode(&cache_dir, config.cache, &key, || {
                decode_cifar(&source, variant)
            })
        }
        DatasetKind::Svhn => {
            let source = match given {
                Some(path) => path,
                None => {
                    let dir = download_dir.join("svhn");
                    for (file, md5) in download::SVHN_FILES {
                        let url = format!("{}{file}", download::SVHN_BASE_URL);
                        download::download(&url, &dir.join(file), &Checksum::Md5(md5.into()))?;
                    }
                    dir
                }
            };
            let key = CacheKey::new("svhn", &source, "")?;
            cache::load_or_decode(&cache_dir, config.cache, &key, || svhn::read(&source))
        }
        DatasetKind::Folder => {
            let source = given.ok_or_else(|| {
                DataError::config("path", "None", "a folder data set needs a path")
            })?;
            let key = CacheKey::new("folder", &source, "")?;
            cache::load_or_decode(&cache_dir, config.cache, &key, || folder::read(&source))
        }
    }
}

/// Reads the binary release, or an image folder in CIFAR layout.
fn decode_cifar(source: &Path, variant: CifarVariant) -> Result<DecodedSet, DataError> {
    if cifar::looks_like_binary_release(source, variant)? {
        return cifar::read(source, variant);
    }
    let set = folder::read(source)?;
    let expected = match variant {
        CifarVariant::Cifar10 => 10,
        CifarVariant::Cifar100(Cifar100Labels::Fine) => 100,
        CifarVariant::Cifar100(Cifar100Labels::Coarse) => {
            return Err(DataError::format(
                source,
                "an image folder has no CIFAR-100 coarse labels; use the binary release",
            ));
        }
    };
    if set.train.classes().len() != expected {
        return Err(DataError::format(
            source,
            format!(
                "image folder has {} classes, expected {expected}",
                set.train.classes().len()
            ),
        ));
    }
    Ok(set)
}

/// Holds out the validation set, applies the caps and fits the normaliser.
pub fn split_set(config: &DatasetConfig, set: DecodedSet) -> Result<Splits, DataError> {
    let DecodedSet { train, test, extra } = set;
    let seed = config.seed;
    let (mut train, mut valid) = match (config.kind, config.validation_size, extra) {
        (DatasetKind::Svhn, None, extra) => {
            // the paper: 400 per class from train, 200 per class from extra
            let (rest, held) = split::per_class(&train, 400, seed, 0)?;
            let mut valid = train.subset(&held);
            let mut kept = train.subset(&rest);
            drop(train);
            match extra {
                Some(extra) => {
                    let (rest, held) = split::per_class(&extra, 200, seed, 1)?;
                    valid = valid.concat(&extra.subset(&held));
                    kept = kept.concat(&extra.subset(&rest));
                }
                None => log::warn!("SVHN without extra: the validation set is 400 per class"),
            }
            (kept, valid)
        }
        (kind, size, extra) => {
            let pool = match extra {
                Some(extra) => train.concat(&extra),
                None => train,
            };
            let size = size.unwrap_or(if kind == DatasetKind::Svhn {
                6000
            } else {
                pool.len() / 10
            });
            let (rest, held) = split::split_indices(&pool, size, seed, config.split)?;
            (pool.subset(&rest), pool.subset(&held))
        }
    };
    let mut test = test;
    if let Some(max) = config.max_train {
        train = train.subset(&split::seeded_subset(train.len(), max, seed, 1));
    }
    if let Some(max) = config.max_eval {
        valid = valid.subset(&split::seeded_subset(valid.len(), max, seed, 2));
        test = test.subset(&split::seeded_subset(test.len(), max, seed, 3));
    }
    let normalizer = Normalizer::fit(&train, config.normalization)?;
    let classes = train.classes().to_vec();
    Ok(Splits {
        train: Arc::new(train),
        valid: Arc::new(valid),
        test: Arc::new(test),
        classes,
        normalizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::tests::write_cifar10_archive;
    use crate::svhn::tests::write_svhn;
    use crate::testutil::{TempDir, test_image};

    fn config(kind: DatasetKind, path: &Path, cache: &Path) -> DatasetConfig {
        DatasetConfig::new(kind)
            .with_path(Some(path.display().to_string()))
            .with_cache_dir(Some(cache.display().to_string()))
    }

    #[test]
    fn cifar10_loads_end_to_end_and_the_second_run_uses_the_cache() {
        let dir = TempDir::new("load-cifar");
        let archive = dir.path().join("cifar-10-binary.tar.gz");
        write_cifar10_archive(&archive, 20, true);
        let cache_dir = dir.path().join("cache");
        let cfg = config(DatasetKind::Cifar10, &archive, &cache_dir);

        let first = load(&cfg).unwrap();
        assert_eq!(
            (first.train.len(), first.valid.len(), first.test.len()),
            (90, 10, 20)
        );
        assert_eq!(first.classes[0], "airplane");
        assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 1);

        let second = load(&cfg).unwrap();
        assert_eq!(second.train, first.train);
        assert_eq!(second.normalizer, first.normalizer);

        // a different seed gives a different validation set
        let other = load(&cfg.clone().with_seed(1)).unwrap();
        assert_ne!(other.valid, first.valid);

        // caps and an explicit size
        let capped = load(
            &cfg.clone()
                .with_validation_size(Some(0))
                .with_max_train(Some(30))
                .with_max_eval(Some(5)),
        )
        .unwrap();
        assert_eq!(
            (capped.train.len(), capped.valid.len(), capped.test.len()),
            (30, 0, 5)
        );
    }

    #[test]
    fn svhn_uses_the_papers_per_class_validation_split() {
        let dir = TempDir::new("load-svhn");
        // 410 train images per digit and 205 extra per digit is more than the paper's
        // 400 + 200; the images themselves do not matter here
        let digits: Vec<u8> = (0..4100).map(|i| (i % 10) as u8).collect();
        let images: Vec<Vec<u8>> = (0..4100).map(|i| test_image(i as u8)).collect();
        write_svhn(&dir.path().join(svhn::TRAIN_FILE), &images, &digits, true);
        write_svhn(
            &dir.path().join(svhn::TEST_FILE),
            &images[..20],
            &digits[..20],
            true,
        );
        write_svhn(
            &dir.path().join(svhn::EXTRA_FILE),
            &images[..2050],
            &digits[..2050],
            true,
        );
        let cfg = config(DatasetKind::Svhn, dir.path(), &dir.path().join("cache"))
            .with_cache(CachePolicy::Off);
        let splits = load(&cfg).unwrap();
        assert_eq!(splits.valid.len(), 6000);
        assert_eq!(splits.valid.class_counts(), vec![600; 10]);
        assert_eq!(splits.train.len(), 4100 + 2050 - 6000);
        assert_eq!(splits.test.len(), 20);
        assert_eq!(splits.classes[0], "0");
        assert_eq!(DatasetKind::Svhn.paper_augmentation(), Augmentation::None);
    }

    #[test]
    fn data_set_names_parse() {
        assert_eq!(
            DatasetConfig::parse_kind("CIFAR-10").unwrap().kind,
            DatasetKind::Cifar10
        );
        let coarse = DatasetConfig::parse_kind("cifar100_coarse").unwrap();
        assert_eq!(coarse.kind, DatasetKind::Cifar100);
        assert_eq!(coarse.cifar100_labels, Cifar100Labels::Coarse);
        assert_eq!("svhn".parse::<DatasetKind>().unwrap(), DatasetKind::Svhn);
        let err = "imagenet".parse::<DatasetKind>().unwrap_err();
        assert!(err.to_string().contains("\"imagenet\""), "{err}");
    }

    #[test]
    fn bad_configurations_are_named() {
        let dir = TempDir::new("load-bad");
        let cfg = DatasetConfig::new(DatasetKind::Folder);
        let err = load(&cfg).unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");

        let cfg = config(
            DatasetKind::Cifar10,
            &dir.path().join("nope.tar.gz"),
            dir.path(),
        );
        let err = load(&cfg).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("nope.tar.gz"), "{err}");

        let archive = dir.path().join("c.tar");
        write_cifar10_archive(&archive, 2, false);
        let cfg = config(DatasetKind::Cifar10, &archive, &dir.path().join("cache"))
            .with_validation_size(Some(11));
        let err = load(&cfg).unwrap_err();
        assert!(err.to_string().contains("validation_size` = 11"), "{err}");
    }
}
