//! The data-pipeline benchmark: decoding, start-up from the cache, and loader throughput.
//!
//! [`bench_report`] measures, on a CIFAR-10 source (the shared JPEG archive in practice):
//!
//! 1. the time to decode the whole source with no cache (archive streaming and image decoding
//!    on all cores);
//! 2. the time to write the cache file, and the start-up time of [`load`] when that cache is
//!    there (cache read, validation split, normaliser fit);
//! 3. the throughput of the augmenting training loader at batch size 128 over one epoch, with
//!    tensors created on `Device::flex()`, and the host-only batch-building rate for
//!    comparison.
//!
//! The `bench` example runs it: `cargo run --release -p sd-data --example bench`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use burn::data::dataloader::DataLoader;
use burn::tensor::Device;

use crate::augment::Augmentation;
use crate::cache::{self, CacheKey, CachePolicy};
use crate::dataset::{DatasetConfig, DatasetKind, load};
use crate::error::DataError;
use crate::{cifar, folder};

/// Runs the benchmark on the CIFAR-10 source `archive`, with its cache in `cache_dir`, and
/// returns the report as text (one measurement a line).
pub fn bench_report(archive: &Path, cache_dir: &Path) -> Result<String, DataError> {
    let mut out = String::new();
    let line = |out: &mut String, text: String| {
        log::info!("{text}");
        let _ = writeln!(out, "{text}");
    };
    line(&mut out, format!("source: {}", archive.display()));

    // 1. decode from scratch
    let start = Instant::now();
    let set = if cifar::looks_like_binary_release(archive, cifar::CifarVariant::Cifar10)? {
        cifar::read(archive, cifar::CifarVariant::Cifar10)?
    } else {
        folder::read(archive)?
    };
    let decode = start.elapsed().as_secs_f64();
    let images = set.train.len() + set.test.len();
    line(
        &mut out,
        format!(
            "decode without cache: {images} images in {decode:.2} s ({:.0} images/s)",
            images as f64 / decode
        ),
    );

    // 2. cache write, then start-up from the cache
    let key = CacheKey::new("cifar10", archive, "")?;
    let path = cache_dir.join(key.file_name());
    let start = Instant::now();
    cache::write(&path, &key, &set)?;
    let written = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    line(
        &mut out,
        format!("cache write: {:.1} MB in {written:.2} s", size as f64 / 1e6),
    );
    drop(set);

    let config = DatasetConfig::new(DatasetKind::Cifar10)
        .with_path(Some(archive.display().to_string()))
        .with_cache_dir(Some(cache_dir.display().to_string()))
        .with_cache(CachePolicy::ReadWrite);
    let start = Instant::now();
    let splits = load(&config)?;
    let startup = start.elapsed().as_secs_f64();
    line(
        &mut out,
        format!(
            "start-up from cache (load: read, split {}/{}/{}, fit normaliser): {startup:.2} s",
            splits.train.len(),
            splits.valid.len(),
            splits.test.len()
        ),
    );

    // 3. loader throughput
    let batch = 128;
    let device = Device::flex();
    let loader = splits
        .train_loader(batch, 0, Augmentation::TranslateFlip)
        .with_device(device.clone());
    let start = Instant::now();
    let mut batches = 0usize;
    for item in loader.iter() {
        let item = item.map_err(|e| DataError::format(archive, e.to_string()))?;
        std::hint::black_box(&item);
        batches += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    line(
        &mut out,
        format!(
            "train loader (batch {batch}, translate+flip, prefetch 2, Device::flex()): \
             {batches} batches in {secs:.2} s = {:.0} batches/s ({:.0} images/s)",
            batches as f64 / secs,
            splits.train.len() as f64 / secs
        ),
    );

    let host = splits
        .train_loader(batch, 0, Augmentation::TranslateFlip)
        .with_prefetch(0);
    let start = Instant::now();
    let mut iter = host.iter_epoch(1);
    let mut built = 0usize;
    while let Some(b) = iter.next_host() {
        std::hint::black_box(&b);
        built += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    line(
        &mut out,
        format!(
            "host batch building alone (one thread, no tensors): {:.0} batches/s",
            built as f64 / secs
        ),
    );
    Ok(out)
}
