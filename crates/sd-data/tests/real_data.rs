//! Integration tests on real CIFAR-10 images: the committed sample in `datasets/`, and the
//! shared JPEG archive of the full set when it is present beside the project.

use std::path::{Path, PathBuf};

use burn::data::dataloader::DataLoader;
use burn::tensor::Device;
use sd_data::{
    Augmentation, CachePolicy, DatasetConfig, DatasetKind, ImageStore, Splits, folder, load,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_cache(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sd-data-it-{tag}-{}", std::process::id()))
}

const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn sample() -> PathBuf {
    workspace().join("datasets/cifar10-sample")
}

#[test]
fn the_committed_sample_loads_in_the_cifar10_label_order() {
    let cache = temp_cache("sample");
    let config = DatasetConfig::new(DatasetKind::Cifar10)
        .with_path(Some(sample().display().to_string()))
        .with_cache_dir(Some(cache.display().to_string()));
    let splits = load(&config).unwrap();
    assert_eq!(splits.classes, CLASSES);
    // one tenth of the 500 training images is held out
    assert_eq!(
        (splits.train.len(), splits.valid.len(), splits.test.len()),
        (450, 50, 200)
    );
    let mut per_class = splits.train.class_counts();
    for (count, valid) in per_class.iter_mut().zip(splits.valid.class_counts()) {
        *count += valid;
    }
    assert_eq!(per_class, vec![50; 10]);
    assert_eq!(splits.test.class_counts(), vec![20; 10]);

    // the second load comes from the cache and is identical
    let again = load(&config).unwrap();
    assert_eq!(again.train, splits.train);
    assert_eq!(again.normalizer, splits.normalizer);
    let _ = std::fs::remove_dir_all(&cache);

    check_batches(&splits);
}

fn check_batches(splits: &Splits) {
    let train = splits
        .train_loader(64, 7, Augmentation::TranslateFlip)
        .with_device(Device::flex());
    let mut images = 0;
    for batch in train.iter() {
        let batch = batch.unwrap();
        let [b, c, h, w] = batch.images.dims();
        assert_eq!((c, h, w), (3, 32, 32));
        assert_eq!(batch.targets.dims(), [b]);
        images += b;
    }
    assert_eq!(images, 450);
    assert_eq!(train.epoch(), 1);

    // normalised training data: mean close to 0, one global std close to 1 (before
    // augmentation, which adds zeros and leaves the mean near 0)
    let eval = splits
        .eval_loader(&splits.train, 450)
        .with_device(Device::flex());
    let batch = eval.iter().next().unwrap().unwrap();
    let values = batch.images.into_data().try_to_vec_as::<f32>().unwrap();
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 1e-3, "mean {mean}");
    // the std of (x - mean image) is a little below the std of x, which is the divisor
    assert!(var.sqrt() > 0.8 && var.sqrt() <= 1.0, "std {}", var.sqrt());
}

/// The full shared archive: 60,000 JPEG files. Skipped (with a note) when the archive is not
/// beside the project.
#[test]
fn the_shared_archive_decodes_to_the_full_cifar10_and_agrees_with_the_sample() {
    let archive = workspace().join("../shared/datasets/cifar10-jpeg.tar.gz");
    if !archive.exists() {
        eprintln!("skipped: {} is not present", archive.display());
        return;
    }
    let full = folder::read(&archive).unwrap();
    assert_eq!((full.train.len(), full.test.len()), (50_000, 10_000));
    assert_eq!(full.train.classes(), CLASSES);
    assert_eq!(full.train.class_counts(), vec![5000; 10]);
    assert_eq!(full.test.class_counts(), vec![1000; 10]);

    // the sample holds the same bytes, so the same pixels: the first 50 of each class
    let sample = folder::read(&sample()).unwrap();
    let first = |store: &ImageStore, per_class: usize, total: usize| {
        let indices: Vec<usize> = (0..10)
            .flat_map(|c| (0..per_class).map(move |k| c * total + k))
            .collect();
        store.subset(&indices)
    };
    assert_eq!(first(&full.train, 50, 5000), sample.train);
    assert_eq!(first(&full.test, 20, 1000), sample.test);
}

#[test]
fn the_folder_kind_reads_the_sample_too() {
    let config = DatasetConfig::new(DatasetKind::Folder)
        .with_path(Some(sample().display().to_string()))
        .with_validation_size(Some(0))
        .with_cache(CachePolicy::Off);
    let splits = load(&config).unwrap();
    assert_eq!((splits.train.len(), splits.valid.len()), (500, 0));
}
