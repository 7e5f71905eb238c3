//! Batches for Burn: [`ImageBatch`] and the deterministic, prefetching [`EpochLoader`].
//!
//! # Determinism and resume
//!
//! What a loader yields in an epoch is a pure function of `(seed, epoch, position)`:
//!
//! - the order is a Fisher–Yates permutation drawn with [`random::permutation`] keyed by the
//!   epoch (or the store order, for evaluation);
//! - the crop and flip of store image `i` in epoch `e` is [`Crop::draw`]`(seed, e, i)`.
//!
//! Nothing else is random and no state is carried from one epoch to the next, so a run resumed
//! at epoch `k` replays exactly the batches of an uninterrupted run. Each call to
//! [`DataLoader::iter`] uses the loader's epoch counter and then advances it by one; the
//! counter starts at 0, or where [`EpochLoader::with_start_epoch`] / [`EpochLoader::set_epoch`]
//! put it. Epochs are counted from 0 here: to resume after `k` completed epochs, start at `k`.
//! (burn-train numbers epochs from 1 and, resuming from the checkpoint of epoch `k`, runs
//! epoch `k + 1` first; that is the loader's epoch `k`.)
//!
//! # Speed
//!
//! A batch is written straight from the `u8` store into one `Vec<f32>` with the normaliser's
//! per-pixel scale and offset tables and the augmentation fused into the same loop (see
//! [`crate::augment::write_image`]). While the trainer works on one batch, a worker thread
//! (`std::thread`) builds the next ones; the tensors themselves are created on the calling
//! thread, on the loader's device.
//!
//! # Caps and slices
//!
//! [`EpochLoader::with_max_items`] keeps `n` images for quick runs: the first `n` of a seeded
//! permutation of the store (the same images in every epoch, whatever the epoch), then
//! shuffled per epoch like the full set. [`DataLoader::slice`] keeps positions `start..end` of
//! every epoch's order, so the slices that burn-train gives to several devices together cover
//! exactly the batches of one epoch.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::augment::{Augmentation, Crop, write_image};
use crate::normalize::Normalizer;
use crate::random::{self, Stream};
use crate::split::seeded_subset;
use crate::store::{CHANNELS, IMAGE_BYTES, IMAGE_SIDE, ImageStore};

/// One batch: normalised images and their class indices.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// `[batch, 3, 32, 32]`, normalised (and augmented, for training).
    pub images: Tensor<4>,
    /// `[batch]`, the class index of each image.
    pub targets: Tensor<1, Int>,
}

/// The order in which a loader visits its images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Store order, every epoch (evaluation).
    Sequential,
    /// A fresh seeded permutation each epoch (training).
    Shuffled,
}

/// A batch still on the host: what the worker thread builds.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    /// `len * 3072` normalised values, CHW per image.
    pub images: Vec<f32>,
    /// `len` class indices.
    pub targets: Vec<i64>,
}

/// The loader: see the module documentation.
#[derive(Debug)]
pub struct EpochLoader {
    store: Arc<ImageStore>,
    scale: Arc<Vec<f32>>,
    offset: Arc<Vec<f32>>,
    batch_size: usize,
    seed: u64,
    order: Order,
    augmentation: Augmentation,
    /// Store indices this loader draws from (all, or those kept by a cap), ascending.
    items: Arc<Vec<usize>>,
    /// Positions of each epoch's order that this loader yields.
    range: Range<usize>,
    epoch: AtomicUsize,
    device: Device,
    prefetch: usize,
}

impl EpochLoader {
    /// A training loader: shuffled each epoch, with `augmentation` (use
    /// [`Augmentation::TranslateFlip`] for the paper's CIFAR runs, [`Augmentation::None`] for
    /// SVHN). Batches go to the default device until [`with_device`](Self::with_device) or
    /// [`DataLoader::to_device`].
    ///
    /// # Panics
    ///
    /// If `batch_size` is 0.
    pub fn train(
        store: Arc<ImageStore>,
        normalizer: &Normalizer,
        batch_size: usize,
        seed: u64,
        augmentation: Augmentation,
    ) -> Self {
        assert!(batch_size > 0, "batch_size must be at least 1, got 0");
        let (scale, offset) = normalizer.tables();
        let items: Vec<usize> = (0..store.len()).collect();
        Self {
            range: 0..items.len(),
            items: Arc::new(items),
            store,
            scale: Arc::new(scale),
            offset: Arc::new(offset),
            batch_size,
            seed,
            order: Order::Shuffled,
            augmentation,
            epoch: AtomicUsize::new(0),
            device: Device::default(),
            prefetch: 2,
        }
    }

    /// An evaluation loader: store order, no augmentation, the same batches every epoch.
    ///
    /// # Panics
    ///
    /// If `batch_size` is 0.
    pub fn eval(store: Arc<ImageStore>, normalizer: &Normalizer, batch_size: usize) -> Self {
        let mut loader = Self::train(store, normalizer, batch_size, 0, Augmentation::None);
        loader.order = Order::Sequential;
        loader
    }

    /// Sends batches to `device`.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Keeps `max` images: the first `max` of a permutation seeded by the loader's seed,
    /// the same in every epoch; `None` keeps all. Resets any slice.
    pub fn with_max_items(mut self, max: Option<usize>) -> Self {
        let n = self.store.len();
        let items = match max {
            Some(max) => seeded_subset(n, max, self.seed, 0),
            None => (0..n).collect(),
        };
        self.range = 0..items.len();
        self.items = Arc::new(items);
        self
    }

    /// The epoch the next [`DataLoader::iter`] call yields (0-based).
    pub fn with_start_epoch(self, epoch: usize) -> Self {
        self.set_epoch(epoch);
        self
    }

    /// How many batches the worker thread may build ahead (default 2); 0 builds each batch
    /// on the calling thread when it is asked for.
    pub fn with_prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// Sets the epoch the next [`DataLoader::iter`] call yields.
    pub fn set_epoch(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The epoch the next [`DataLoader::iter`] call yields.
    pub fn epoch(&self) -> usize {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches per epoch (the last one may be smaller).
    pub fn num_batches(&self) -> usize {
        self.range.len().div_ceil(self.batch_size)
    }

    /// The store indices visited in `epoch`, in order.
    pub fn epoch_indices(&self, epoch: usize) -> Vec<usize> {
        let n = self.items.len();
        let ordered: Vec<usize> = match self.order {
            Order::Sequential => self.items[self.range.clone()].to_vec(),
            Order::Shuffled => {
                let perm = random::permutation(n, self.seed, Stream::Shuffle, epoch as u64);
                perm[self.range.clone()]
                    .iter()
                    .map(|&p| self.items[p])
                    .collect()
            }
        };
        ordered
    }

    /// Iterates over `epoch` without touching the epoch counter.
    pub fn iter_epoch(&self, epoch: usize) -> EpochIter {
        let job = Arc::new(Job {
            store: self.store.clone(),
            scale: self.scale.clone(),
            offset: self.offset.clone(),
            indices: self.epoch_indices(epoch),
            batch_size: self.batch_size,
            seed: self.seed,
            epoch: epoch as u64,
            augmentation: self.augmentation,
        });
        EpochIter::new(job, self.device.clone(), self.prefetch)
    }

    fn copy_with(&self, device: &Device, range: Range<usize>) -> Self {
        Self {
            store: self.store.clone(),
            scale: self.scale.clone(),
            offset: self.offset.clone(),
            batch_size: self.batch_size,
            seed: self.seed,
            order: self.order,
            augmentation: self.augmentation,
            items: self.items.clone(),
            range,
            epoch: AtomicUsize::new(self.epoch()),
            device: device.clone(),
            prefetch: self.prefetch,
        }
    }
}

impl DataLoader<ImageBatch> for EpochLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<ImageBatch> + 'a> {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        Box::new(self.iter_epoch(epoch))
    }

    fn num_items(&self) -> usize {
        self.range.len()
    }

    /// A copy on `device`; its epoch counter starts where this one is and then runs on its
    /// own.
    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<ImageBatch>> {
        Arc::new(self.copy_with(device, self.range.clone()))
    }

    /// Positions `start..end` (clamped to [`num_items`](Self::num_items)) of every epoch's
    /// order; the epoch counter is copied as in `to_device`.
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<ImageBatch>> {
        let len = self.range.len();
        let (start, end) = (start.min(len), end.min(len).max(start.min(len)));
        let range = self.range.start + start..self.range.start + end;
        Arc::new(self.copy_with(&self.device, range))
    }
}

/// Everything needed to build the batches of one epoch, shared with the worker thread.
struct Job {
    store: Arc<ImageStore>,
    scale: Arc<Vec<f32>>,
    offset: Arc<Vec<f32>>,
    indices: Vec<usize>,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    augmentation: Augmentation,
}

impl Job {
    fn batches(&self) -> usize {
        self.indices.len().div_ceil(self.batch_size)
    }

    fn build(&self, batch: usize) -> HostBatch {
        let start = batch * self.batch_size;
        let end = (start + self.batch_size).min(self.indices.len());
        let indices = &self.indices[start..end];
        let mut images = vec![0f32; indices.len() * IMAGE_BYTES];
        let mut targets = Vec::with_capacity(indices.len());
        for (&index, out) in indices.iter().zip(images.chunks_exact_mut(IMAGE_BYTES)) {
            let crop = match self.augmentation {
                Augmentation::None => Crop::IDENTITY,
                Augmentation::TranslateFlip => Crop::draw(self.seed, self.epoch, index as u64),
            };
            write_image(
                self.store.image(index),
                &self.scale,
                &self.offset,
                crop,
                out,
            );
            targets.push(self.store.label(index) as i64);
        }
        HostBatch { images, targets }
    }
}

/// The iterator over one epoch; a worker thread builds batches ahead unless prefetch is 0.
pub struct EpochIter {
    job: Arc<Job>,
    device: Device,
    next: usize,
    processed: usize,
    receiver: Option<Receiver<HostBatch>>,
    worker: Option<JoinHandle<()>>,
}

impl EpochIter {
    fn new(job: Arc<Job>, device: Device, prefetch: usize) -> Self {
        let mut iter = Self {
            job,
            device,
            next: 0,
            processed: 0,
            receiver: None,
            worker: None,
        };
        if prefetch > 0 && iter.job.batches() > 1 {
            let (sender, receiver) = sync_channel(prefetch);
            let job = iter.job.clone();
            let spawned = std::thread::Builder::new()
                .name("sd-data-prefetch".into())
                .spawn(move || produce(&job, &sender));
            match spawned {
                Ok(handle) => {
                    iter.receiver = Some(receiver);
                    iter.worker = Some(handle);
                }
                Err(err) => log::warn!("no prefetch thread ({err}); building batches inline"),
            }
        }
        iter
    }

    /// The next batch on the host, without making tensors.
    pub fn next_host(&mut self) -> Option<HostBatch> {
        if self.next >= self.job.batches() {
            return None;
        }
        let batch = match &self.receiver {
            Some(receiver) => receiver
                .recv()
                .expect("the prefetch thread sends every batch of the epoch"),
            None => self.job.build(self.next),
        };
        self.next += 1;
        self.processed += batch.targets.len();
        Some(batch)
    }
}

fn produce(job: &Job, sender: &SyncSender<HostBatch>) {
    for batch in 0..job.batches() {
        if sender.send(job.build(batch)).is_err() {
            // the iterator was dropped
            return;
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<ImageBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let host = self.next_host()?;
        let n = host.targets.len();
        let shape = [n, CHANNELS, IMAGE_SIDE, IMAGE_SIDE];
        let images = Tensor::<4>::from_data(TensorData::new(host.images, shape), &self.device);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(host.targets, [n]), &self.device);
        Some(Ok(ImageBatch { images, targets }))
    }
}

impl DataLoaderIterator<ImageBatch> for EpochIter {
    fn progress(&self) -> Progress {
        Progress {
            items_processed: self.processed,
            items_total: self.job.indices.len(),
            unit: Some("images".to_string()),
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // dropping the receiver makes a blocked send fail, so the worker ends promptly
        self.receiver = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Normalization;
    use crate::testutil::test_image;

    fn store(n: usize) -> Arc<ImageStore> {
        let pixels: Vec<u8> = (0..n).flat_map(|i| test_image(i as u8)).collect();
        let labels = (0..n).map(|i| (i % 3) as u16).collect();
        let classes = vec!["a".into(), "b".into(), "c".into()];
        Arc::new(ImageStore::new(pixels, labels, classes))
    }

    fn host_epoch(loader: &EpochLoader, epoch: usize) -> Vec<HostBatch> {
        let mut iter = loader.iter_epoch(epoch);
        std::iter::from_fn(|| iter.next_host()).collect()
    }

    #[test]
    fn a_resumed_loader_replays_the_uninterrupted_run() {
        let store = store(50);
        let norm = Normalizer::fit(&store, Normalization::MeanImageGlobalStd).unwrap();
        let make = || EpochLoader::train(store.clone(), &norm, 8, 42, Augmentation::TranslateFlip);

        let full = make();
        let mut epochs = Vec::new();
        for _ in 0..4 {
            let mut batches = Vec::new();
            for batch in full.iter() {
                let batch = batch.unwrap();
                batches.push(batch.targets.into_data().try_to_vec_as::<i64>().unwrap());
            }
            epochs.push(batches);
        }
        assert_eq!(full.epoch(), 4);
        assert_ne!(epochs[0], epochs[1], "each epoch has its own order");

        let resumed = make().with_start_epoch(2);
        for epoch in &epochs[2..] {
            let mut iter = resumed.iter();
            let got: Vec<Vec<i64>> = std::iter::from_fn(|| iter.next())
                .map(|b| {
                    b.unwrap()
                        .targets
                        .into_data()
                        .try_to_vec_as::<i64>()
                        .unwrap()
                })
                .collect();
            assert_eq!(&got, epoch);
        }
        // host batches (images included) are identical too, with or without prefetch
        let inline = make().with_prefetch(0);
        assert_eq!(host_epoch(&full, 3), host_epoch(&inline, 3));
    }

    #[test]
    fn a_training_epoch_visits_every_image_once() {
        let store = store(50);
        let loader = EpochLoader::train(store, &Normalizer::identity(), 8, 1, Augmentation::None);
        let mut seen = loader.epoch_indices(5);
        assert_ne!(seen, (0..50).collect::<Vec<_>>());
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        let batches = host_epoch(&loader, 5);
        assert_eq!(batches.len(), 7);
        assert_eq!(batches[6].targets.len(), 2);
        assert_eq!(loader.num_batches(), 7);
    }

    #[test]
    fn evaluation_is_in_store_order_and_unaugmented() {
        let store = store(10);
        let norm = Normalizer::fit(&store, Normalization::PerChannel).unwrap();
        let loader = EpochLoader::eval(store.clone(), &norm, 4);
        let batches = host_epoch(&loader, 0);
        assert_eq!(batches, host_epoch(&loader, 9));
        let targets: Vec<i64> = batches.iter().flat_map(|b| b.targets.clone()).collect();
        assert_eq!(targets, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
        let mut expected = vec![0.0; IMAGE_BYTES];
        norm.normalize_into(store.image(5), &mut expected);
        let got = &batches[1].images[IMAGE_BYTES..2 * IMAGE_BYTES];
        for (a, b) in got.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn augmentation_matches_the_drawn_crop() {
        let store = store(6);
        let norm = Normalizer::fit(&store, Normalization::MeanImageGlobalStd).unwrap();
        let loader = EpochLoader::train(store.clone(), &norm, 6, 11, Augmentation::TranslateFlip);
        let order = loader.epoch_indices(3);
        let batch = &host_epoch(&loader, 3)[0];
        let (scale, offset) = norm.tables();
        for (slot, &index) in order.iter().enumerate() {
            let mut expected = vec![0.0; IMAGE_BYTES];
            let crop = Crop::draw(11, 3, index as u64);
            write_image(store.image(index), &scale, &offset, crop, &mut expected);
            assert_eq!(
                &batch.images[slot * IMAGE_BYTES..(slot + 1) * IMAGE_BYTES],
                &expected
            );
        }
    }

    #[test]
    fn slices_partition_each_epoch_and_caps_are_seeded() {
        let store = store(30);
        let loader = EpochLoader::train(
            store.clone(),
            &Normalizer::identity(),
            4,
            3,
            Augmentation::None,
        )
        .with_start_epoch(2);
        let whole = loader.epoch_indices(2);
        let a = loader.slice(0, 10);
        let b = loader.slice(10, 30);
        assert_eq!((a.num_items(), b.num_items()), (10, 20));
        let mut joined = Vec::new();
        for part in [a, b] {
            for batch in part.iter() {
                joined.extend(
                    batch
                        .unwrap()
                        .targets
                        .into_data()
                        .try_to_vec_as::<i64>()
                        .unwrap(),
                );
            }
        }
        let expected: Vec<i64> = whole.iter().map(|&i| store.label(i) as i64).collect();
        assert_eq!(joined, expected);

        let capped = EpochLoader::train(store, &Normalizer::identity(), 4, 3, Augmentation::None)
            .with_max_items(Some(7));
        assert_eq!(capped.num_items(), 7);
        let mut first = capped.epoch_indices(0);
        let mut later = capped.epoch_indices(1);
        first.sort_unstable();
        later.sort_unstable();
        assert_eq!(first, later, "a cap keeps the same images in every epoch");
    }

    #[test]
    fn tensors_have_the_batch_shape_and_progress_counts_images() {
        let store = store(5);
        let loader =
            EpochLoader::eval(store, &Normalizer::identity(), 2).with_device(Device::flex());
        let moved = loader.to_device(&Device::flex());
        assert_eq!(moved.num_items(), 5);
        let mut iter = moved.iter();
        let batch = iter.next().unwrap().unwrap();
        assert_eq!(batch.images.dims(), [2, 3, 32, 32]);
        assert_eq!(batch.targets.dims(), [2]);
        assert_eq!(iter.progress().items_processed, 2);
        assert_eq!(iter.progress().items_total, 5);
        // dropping a half-read iterator stops its worker
        drop(iter);
    }
}
