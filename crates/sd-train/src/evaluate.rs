//! The paper's evaluation protocol: the test error of the checkpoint with the
//! best validation error, with the validation error and per-class accuracy.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use sd_model::StochasticResNet;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::data::{EvalPart, load_data};
use crate::error::TrainError;
use crate::run::{AtomicCheckpointer, RunTable, write_atomic};
use crate::step::Classifier;
use crate::train::load_run_config;

/// What `eval.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// The checkpoint evaluated: the epoch with the lowest validation error.
    pub epoch: usize,
    /// Test error, percent.
    pub test_error: f64,
    /// Validation error, percent (absent when the validation split is empty).
    pub valid_error: Option<f64>,
    /// Test images evaluated.
    pub test_images: usize,
    /// Per class: name, test images, accuracy in percent.
    pub per_class: Vec<ClassAccuracy>,
    /// Backend used.
    pub backend: String,
}

/// Accuracy on one class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassAccuracy {
    /// Class name.
    pub class: String,
    /// Test images of the class.
    pub images: usize,
    /// Accuracy, percent.
    pub accuracy: f64,
}

/// Options of `cargo xtask eval`.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The run folder.
    pub run: PathBuf,
    /// Where to compute.
    pub backend: Backend,
    /// Which of the backend's devices.
    pub device_index: usize,
    /// Another data location than the run's (same data set).
    pub data: Option<String>,
    /// Cap on the images evaluated per split.
    pub max_eval: Option<usize>,
}

/// Evaluates the best-validation checkpoint of a run and writes `eval.json`.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport, TrainError> {
    let mut config = load_run_config(&opts.run)?;
    if let Some(path) = &opts.data {
        config.data.path = Some(path.clone());
    }
    if opts.max_eval == Some(0) {
        return Err(TrainError::setting("max-eval", 0, "at least 1 (or no cap)"));
    }
    if opts.max_eval.is_some() {
        config.data.max_eval = opts.max_eval;
    }
    let metrics = opts.run.join("metrics.csv");
    if !metrics.is_file() {
        return Err(TrainError::Run {
            path: opts.run.clone(),
            problem: "no epoch of this run has finished yet (no metrics.csv)".into(),
        });
    }
    let table = RunTable::read(&metrics)?;
    let best = table.best().ok_or_else(|| TrainError::Run {
        path: opts.run.clone(),
        problem: "metrics.csv has no finished epoch yet".into(),
    })?;
    let path = AtomicCheckpointer::path(&opts.run.join("checkpoint"), "model", best.epoch);
    if !path.is_file() {
        return Err(TrainError::Run {
            path: opts.run.clone(),
            problem: format!(
                "the best epoch is {} but {} is missing",
                best.epoch,
                path.display()
            ),
        });
    }

    let device = opts.backend.device(opts.device_index)?;
    let net = config.model.init(&device);
    let model = Classifier::new(net, config.seed, config.optimizer.dropped_blocks)
        .try_load_file(&path)
        .map_err(|e| TrainError::Corrupt {
            path: path.clone(),
            problem: format!("{e}"),
        })?
        .valid();

    let data = load_data(&config)?;
    let classes = data.classes().to_vec();
    if classes.len() != config.model.num_classes {
        return Err(TrainError::Run {
            path: opts.run.clone(),
            problem: format!(
                "the run was trained on {} classes but the data has {}",
                config.model.num_classes,
                classes.len()
            ),
        });
    }
    let test = confusion(
        &model,
        data.eval_batches(EvalPart::Test, &device),
        classes.len(),
    );
    let valid = confusion(
        &model,
        data.eval_batches(EvalPart::Valid, &device),
        classes.len(),
    );

    let error = |(correct, total): (usize, usize)| 100.0 * (1.0 - correct as f64 / total as f64);
    let test_totals = totals(&test);
    let report = EvalReport {
        epoch: best.epoch,
        test_error: error(test_totals),
        valid_error: Some(totals(&valid)).filter(|t| t.1 > 0).map(error),
        test_images: test_totals.1,
        per_class: classes
            .iter()
            .zip(&test)
            .map(|(class, &(correct, images))| ClassAccuracy {
                class: class.clone(),
                images,
                accuracy: 100.0 * correct as f64 / images.max(1) as f64,
            })
            .collect(),
        backend: opts.backend.to_string(),
    };
    let out = opts.run.join("eval.json");
    let json = serde_json::to_string_pretty(&report).expect("a report serialises");
    write_atomic(&out, json.as_bytes()).map_err(|e| TrainError::io(&out, "write", e))?;
    Ok(report)
}

fn totals(per_class: &[(usize, usize)]) -> (usize, usize) {
    per_class
        .iter()
        .fold((0, 0), |(c, t), &(ci, ti)| (c + ci, t + ti))
}

/// Per class: (correct, total).
fn confusion(
    model: &Classifier,
    batches: impl Iterator<Item = (Tensor<4>, Vec<usize>)>,
    classes: usize,
) -> Vec<(usize, usize)> {
    let mut counts = vec![(0usize, 0usize); classes];
    for (images, labels) in batches {
        let predicted = model.net.forward(images).argmax(1).into_data();
        let predicted: Vec<i64> = predicted
            .convert::<i64>()
            .try_to_vec()
            .expect("argmax gives integers");
        for (&label, &guess) in labels.iter().zip(&predicted) {
            counts[label].1 += 1;
            counts[label].0 += usize::from(guess as usize == label);
        }
    }
    counts
}

/// The path of the checkpoint `eval` would read, for messages.
pub fn best_checkpoint(run: &Path) -> Result<PathBuf, TrainError> {
    let table = RunTable::read(&run.join("metrics.csv"))?;
    let best = table.best().ok_or_else(|| TrainError::Run {
        path: run.to_path_buf(),
        problem: "no finished epoch".into(),
    })?;
    Ok(AtomicCheckpointer::path(
        &run.join("checkpoint"),
        "model",
        best.epoch,
    ))
}
