//! The loaders the learner iterates, built on `sd-data`'s epoch loaders.
//!
//! Each training batch carries its global step, `epoch * batches_per_epoch +
//! batch_index`, from which the model draws its gates: the data order, the
//! augmentation and the gates of a step are all functions of the seed and the
//! epoch, so a run resumed at epoch `k` replays exactly what an uninterrupted
//! run would have done.
//!
//! The evaluation loader yields the validation batches, then (when asked) the
//! test batches, each tagged with its [`Part`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::prelude::*;
use sd_data::{EpochLoader, ImageBatch, Splits};

use crate::config::TrainingConfig;
use crate::error::TrainError;
use crate::metrics::Part;
use crate::step::{EvalBatch, TrainBatch};

/// Images per evaluation batch: evaluation keeps no activations, so larger is faster.
const EVAL_BATCH: usize = 500;

/// The loaded data of a run.
pub struct Data {
    splits: Splits,
}

/// Loads the data a config names.
pub fn load_data(config: &TrainingConfig) -> Result<Data, TrainError> {
    Ok(Data {
        splits: sd_data::load(&config.data)?,
    })
}

/// What the learner iterates.
pub struct Loaders {
    /// Training batches with their steps.
    pub train: Arc<dyn DataLoader<TrainBatch>>,
    /// Validation then test batches.
    pub eval: Arc<dyn DataLoader<EvalBatch>>,
    /// Batches per training epoch.
    pub iterations_per_epoch: usize,
}

/// Which evaluation part to iterate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalPart {
    /// The validation split.
    Valid,
    /// The test set.
    Test,
}

impl Data {
    /// Class names in label order.
    pub fn classes(&self) -> &[String] {
        &self.splits.classes
    }

    /// The loaded splits.
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// The learner's loaders, the training one positioned after `epochs_done` epochs.
    pub fn loaders(&self, config: &TrainingConfig, epochs_done: usize) -> Loaders {
        let augmentation = config.data.kind.paper_augmentation();
        let train = self
            .splits
            .train_loader(config.batch_size, config.seed, augmentation)
            .with_start_epoch(epochs_done);
        let iterations_per_epoch = train.num_batches();
        let valid = self.splits.eval_loader(&self.splits.valid, EVAL_BATCH);
        let test = config
            .test_every_epoch
            .then(|| self.splits.eval_loader(&self.splits.test, EVAL_BATCH));
        Loaders {
            train: Arc::new(StepLoader {
                inner: Arc::new(train),
                epoch: AtomicUsize::new(epochs_done),
                batches: iterations_per_epoch,
            }),
            eval: Arc::new(PartsLoader {
                valid: Arc::new(valid),
                test: test.map(|t| Arc::new(t) as Arc<dyn DataLoader<ImageBatch>>),
            }),
            iterations_per_epoch,
        }
    }

    /// Evaluation batches of one part on `device`: images and their labels.
    pub fn eval_batches(
        &self,
        part: EvalPart,
        device: &Device,
    ) -> impl Iterator<Item = (Tensor<4>, Vec<usize>)> + use<> {
        let store = match part {
            EvalPart::Valid => &self.splits.valid,
            EvalPart::Test => &self.splits.test,
        };
        let loader: EpochLoader = self
            .splits
            .eval_loader(store, EVAL_BATCH)
            .with_device(device.clone());
        let labels: Vec<usize> = (0..store.len()).map(|i| store.label(i)).collect();
        let mut offset = 0;
        loader.iter_epoch(0).map(move |batch| {
            let batch = batch.expect("an in-memory evaluation loader does not fail");
            let n = batch.images.dims()[0];
            let chunk = labels[offset..offset + n].to_vec();
            offset += n;
            (batch.images, chunk)
        })
    }
}

/// Tags each training batch with its global step.
struct StepLoader {
    inner: Arc<dyn DataLoader<ImageBatch>>,
    epoch: AtomicUsize,
    batches: usize,
}

struct StepIter<'a> {
    inner: Box<dyn DataLoaderIterator<ImageBatch> + 'a>,
    next_step: u64,
}

impl Iterator for StepIter<'_> {
    type Item = Result<TrainBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.inner.next()?;
        let step = self.next_step;
        self.next_step += 1;
        Some(batch.map(|b| TrainBatch {
            images: b.images,
            targets: b.targets,
            step,
        }))
    }
}

impl DataLoaderIterator<TrainBatch> for StepIter<'_> {
    fn progress(&self) -> Progress {
        self.inner.progress()
    }
}

impl DataLoader<TrainBatch> for StepLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TrainBatch> + 'a> {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        Box::new(StepIter {
            inner: self.inner.iter(),
            next_step: (epoch * self.batches) as u64,
        })
    }

    fn num_items(&self) -> usize {
        self.inner.num_items()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<TrainBatch>> {
        Arc::new(StepLoader {
            inner: self.inner.to_device(device),
            epoch: AtomicUsize::new(self.epoch.load(Ordering::SeqCst)),
            batches: self.batches,
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<TrainBatch>> {
        Arc::new(StepLoader {
            inner: self.inner.slice(start, end),
            epoch: AtomicUsize::new(self.epoch.load(Ordering::SeqCst)),
            batches: self.batches,
        })
    }
}

/// Validation batches, then test batches, tagged.
struct PartsLoader {
    valid: Arc<dyn DataLoader<ImageBatch>>,
    test: Option<Arc<dyn DataLoader<ImageBatch>>>,
}

struct PartsIter<'a> {
    valid: Box<dyn DataLoaderIterator<ImageBatch> + 'a>,
    test: Option<Box<dyn DataLoaderIterator<ImageBatch> + 'a>>,
    valid_total: usize,
    test_total: usize,
}

impl Iterator for PartsIter<'_> {
    type Item = Result<EvalBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let tag = |part: Part| {
            move |b: Result<ImageBatch, DatasetError>| {
                b.map(|b| EvalBatch {
                    images: b.images,
                    targets: b.targets,
                    part,
                })
            }
        };
        if let Some(batch) = self.valid.next() {
            return Some(tag(Part::Valid)(batch));
        }
        self.test.as_mut()?.next().map(tag(Part::Test))
    }
}

impl DataLoaderIterator<EvalBatch> for PartsIter<'_> {
    fn progress(&self) -> Progress {
        let valid = self.valid.progress().items_processed;
        let test = self
            .test
            .as_ref()
            .map_or(0, |t| t.progress().items_processed);
        Progress::new(valid + test, self.valid_total + self.test_total, None)
    }
}

impl DataLoader<EvalBatch> for PartsLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<EvalBatch> + 'a> {
        Box::new(PartsIter {
            valid: self.valid.iter(),
            test: self.test.as_ref().map(|t| t.iter()),
            valid_total: self.valid.num_items(),
            test_total: self.test.as_ref().map_or(0, |t| t.num_items()),
        })
    }

    fn num_items(&self) -> usize {
        self.valid.num_items() + self.test.as_ref().map_or(0, |t| t.num_items())
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<EvalBatch>> {
        Arc::new(PartsLoader {
            valid: self.valid.to_device(device),
            test: self.test.as_ref().map(|t| t.to_device(device)),
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<EvalBatch>> {
        let n = self.valid.num_items();
        Arc::new(PartsLoader {
            valid: self.valid.slice(start.min(n), end.min(n)),
            test: self
                .test
                .as_ref()
                .map(|t| t.slice(start.saturating_sub(n), end.saturating_sub(n))),
        })
    }
}
