//! The run folder: what a training run leaves on disk, and how it resumes.
//!
//! ```text
//! RUN/
//!   config.json           the full resolved TrainingConfig, written before training
//!   metrics.csv           one row per finished epoch
//!   summary.json          best validation epoch, its errors, total time
//!   checkpoint/           model-E.bpk, optim-E.bpk, scheduler-E.bpk for the last
//!                         epoch and the best one on validation
//!   experiment.log        burn-train's log; train/ and valid/: its metric logs
//! ```
//!
//! Every file is written to a temporary name and renamed into place, so a
//! file on disk is never half written. An epoch counts as saved when its row
//! is in `metrics.csv` and its three checkpoint files exist; `--resume` picks
//! the last such epoch.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::checkpoint::{
    Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, EventStoreClient, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training error, percent.
    pub train_error: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Validation error, percent.
    pub valid_error: f64,
    /// Test error, percent, when the test set is evaluated every epoch.
    pub test_error: Option<f64>,
    /// Wall time of the epoch's training split, seconds.
    pub epoch_seconds: f64,
    /// Mean number of residual blocks run per training step.
    pub mean_blocks_run: f64,
    /// Mean absolute gradient of the first convolution's weights.
    pub first_layer_grad: f64,
}

/// The column names of `metrics.csv`.
pub const CSV_HEADER: &str = "epoch,lr,train_loss,train_error,valid_loss,valid_error,test_error,\
epoch_seconds,mean_blocks_run,first_layer_grad";

impl EpochRow {
    fn to_csv(&self) -> String {
        let test = self
            .test_error
            .map(|t| format!("{t:.4}"))
            .unwrap_or_default();
        format!(
            "{},{:.6e},{:.6},{:.4},{:.6},{:.4},{},{:.3},{:.3},{:.6e}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_error,
            self.valid_loss,
            self.valid_error,
            test,
            self.epoch_seconds,
            self.mean_blocks_run,
            self.first_layer_grad
        )
    }

    fn from_csv(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() != 10 {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        Some(Self {
            epoch: f[0].parse().ok()?,
            lr: num(1)?,
            train_loss: num(2)?,
            train_error: num(3)?,
            valid_loss: num(4)?,
            valid_error: num(5)?,
            test_error: if f[6].is_empty() { None } else { Some(num(6)?) },
            epoch_seconds: num(7)?,
            mean_blocks_run: num(8)?,
            first_layer_grad: num(9)?,
        })
    }
}

/// The epochs of a run so far, shared by the CSV logger and the checkpoint strategy.
///
/// The logger offers an epoch's row when its validation ends; the checkpoint
/// strategy marks the epoch saved. The row reaches `metrics.csv` once both
/// happened (burn-train's metric events arrive on another thread, so either
/// may come first), so an epoch interrupted during validation, which Burn does
/// not checkpoint, leaves no row behind.
#[derive(Debug, Default, Clone)]
pub struct RunTable {
    /// Finished (checkpointed) epochs, in order.
    pub rows: Vec<EpochRow>,
    /// Rows whose epoch is not marked saved yet.
    pub pending: Vec<EpochRow>,
    /// Epochs marked saved whose row has not arrived yet.
    pub saved: Vec<usize>,
    /// Where the rows are written; `None` keeps them in memory.
    pub path: Option<PathBuf>,
}

impl RunTable {
    /// Reads `metrics.csv`.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text =
            fs::read_to_string(path).map_err(|e| TrainError::io(path, "read the metrics", e))?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(CSV_HEADER) {
            return Err(TrainError::Corrupt {
                path: path.to_path_buf(),
                problem: format!("the first line is not the header `{CSV_HEADER}`"),
            });
        }
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row = EpochRow::from_csv(line).ok_or_else(|| TrainError::Corrupt {
                path: path.to_path_buf(),
                problem: format!("line {} is not a row of {} numbers: `{line}`", i + 2, 10),
            })?;
            rows.push(row);
        }
        Ok(Self {
            rows,
            pending: vec![],
            saved: vec![],
            path: Some(path.to_path_buf()),
        })
    }

    /// Writes `metrics.csv` atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = String::from(CSV_HEADER);
        text.push('\n');
        for row in &self.rows {
            text.push_str(&row.to_csv());
            text.push('\n');
        }
        write_atomic(path, text.as_bytes())
    }

    /// The epoch with the lowest validation error (the earliest among ties);
    /// without a validation split (no finite error), the last epoch.
    pub fn best(&self) -> Option<&EpochRow> {
        let finite = self.rows.iter().filter(|r| r.valid_error.is_finite());
        let best = finite.fold(None, |best: Option<&EpochRow>, row| match best {
            Some(b) if b.valid_error <= row.valid_error => Some(b),
            _ => Some(row),
        });
        best.or(self.rows.last())
    }

    /// The row of an epoch whose validation has ended.
    pub fn offer_row(&mut self, row: EpochRow) {
        self.pending.retain(|r| r.epoch != row.epoch);
        self.pending.push(row);
        self.settle();
    }

    /// An epoch whose checkpoint is being saved.
    pub fn mark_saved(&mut self, epoch: usize) {
        self.saved.push(epoch);
        self.settle();
    }

    /// Commits the rows of saved epochs and writes `metrics.csv` if any was.
    fn settle(&mut self) {
        let mut committed = false;
        while let Some(i) = self
            .pending
            .iter()
            .position(|r| self.saved.contains(&r.epoch))
        {
            let row = self.pending.remove(i);
            self.saved.retain(|&e| e != row.epoch);
            self.rows.retain(|r| r.epoch < row.epoch);
            self.rows.push(row);
            committed = true;
        }
        if let (true, Some(path)) = (committed, &self.path)
            && let Err(e) = self.write(path)
        {
            log::error!("cannot write {}: {e}", path.display());
        }
    }
}

/// A burn-train metric logger that records an epoch's row after its
/// validation split (see [`RunTable`] for when it reaches `metrics.csv`).
pub struct CsvLogger {
    table: Arc<Mutex<RunTable>>,
    names: HashMap<MetricId, String>,
    values: HashMap<(bool, String), f64>,
    train_start: Option<Instant>,
    train_seconds: f64,
    with_test: bool,
}

impl CsvLogger {
    /// Records rows into `table`.
    pub fn new(table: Arc<Mutex<RunTable>>, with_test: bool) -> Self {
        Self {
            table,
            names: HashMap::new(),
            values: HashMap::new(),
            train_start: None,
            train_seconds: 0.0,
            with_test,
        }
    }

    fn value(&self, train: bool, name: &str) -> f64 {
        self.values
            .get(&(train, name.to_string()))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

fn numeric(entry: &NumericEntry) -> f64 {
    match entry {
        NumericEntry::Value(v) | NumericEntry::Final(v) => *v,
        NumericEntry::Aggregated {
            aggregated_value, ..
        } => *aggregated_value,
    }
}

impl MetricLogger for CsvLogger {
    fn log(&mut self, update: MetricsUpdate, _epoch: usize, split: &Split) {
        let train = matches!(split, Split::Train);
        if train && self.train_start.is_none() {
            self.train_start = Some(Instant::now());
        }
        for entry in &update.entries_numeric {
            let Some(name) = self.names.get(&entry.entry.metric_id) else {
                continue;
            };
            if let Some(value) = &entry.numeric_entry {
                self.values.insert((train, name.clone()), numeric(value));
            }
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<burn::train::metric::NumericEntry>, String> {
        Err(format!(
            "the CSV logger keeps epoch summaries only, not `{name}` entries"
        ))
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        match summary.split {
            Split::Train => {
                self.train_seconds = self
                    .train_start
                    .take()
                    .map(|s| s.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
            }
            Split::Valid => {
                let row = EpochRow {
                    epoch: summary.epoch_number,
                    lr: self.value(true, "Learning Rate"),
                    train_loss: self.value(true, "Loss"),
                    train_error: self.value(true, "Error"),
                    valid_loss: self.value(false, "Loss"),
                    valid_error: self.value(false, "Error"),
                    test_error: self.with_test.then(|| self.value(false, "Test error")),
                    epoch_seconds: self.train_seconds,
                    mean_blocks_run: self.value(true, "Blocks run"),
                    first_layer_grad: self.value(true, "First-layer gradient"),
                };
                let mut table = self.table.lock().expect("the run table is never poisoned");
                table.offer_row(row);
                self.values.clear();
            }
            Split::Test(_) => {}
        }
    }
}

/// Marks each checkpointed epoch saved in the [`RunTable`], and keeps the
/// checkpoints of the last epoch and of the best epoch on validation.
///
/// Best is judged on the rows present: a row that arrives after its epoch's
/// checkpoint only counts from the next epoch on, so at most one extra
/// checkpoint is kept for one epoch, never one too few.
pub struct KeepLastAndBest {
    table: Arc<Mutex<RunTable>>,
    kept: Vec<usize>,
}

impl KeepLastAndBest {
    /// `kept`: epochs whose checkpoints are already on disk (on resume).
    pub fn new(table: Arc<Mutex<RunTable>>, kept: Vec<usize>) -> Self {
        Self { table, kept }
    }
}

impl KeepLastAndBest {
    /// The actions after `epoch`: save it, delete what is neither it nor the best.
    fn plan(&mut self, epoch: usize) -> Vec<CheckpointingAction> {
        let best = {
            let mut table = self.table.lock().expect("the run table is never poisoned");
            table.mark_saved(epoch);
            table.best().map(|r| r.epoch)
        };
        let mut actions = vec![CheckpointingAction::Save];
        let keep = |e: usize| e == epoch || Some(e) == best;
        for &old in self.kept.iter().filter(|&&e| !keep(e)) {
            actions.push(CheckpointingAction::Delete(old));
        }
        self.kept.retain(|&e| keep(e));
        self.kept.push(epoch);
        self.kept.sort_unstable();
        self.kept.dedup();
        actions
    }
}

impl CheckpointingStrategy for KeepLastAndBest {
    fn checkpointing(
        &mut self,
        epoch: usize,
        _store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        self.plan(epoch)
    }
}

/// burn-train's file checkpointer, but never leaving a half-written file.
pub struct AtomicCheckpointer {
    directory: PathBuf,
    name: &'static str,
}

impl AtomicCheckpointer {
    /// Checkpoints named `NAME-EPOCH.bpk` in `directory`.
    pub fn new(directory: &Path, name: &'static str) -> Self {
        Self {
            directory: directory.to_path_buf(),
            name,
        }
    }

    /// Path of the checkpoint of `epoch`.
    pub fn path(directory: &Path, name: &str, epoch: usize) -> PathBuf {
        directory.join(format!("{name}-{epoch}.bpk"))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        fs::create_dir_all(&self.directory).map_err(CheckpointerError::IOError)?;
        let path = Self::path(&self.directory, self.name, epoch);
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        write_atomic(&path, &bytes).map_err(CheckpointerError::IOError)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = Self::path(&self.directory, self.name, epoch);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(e))
            }
            _ => Ok(()),
        }
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(Self::path(&self.directory, self.name, epoch))
    }
}

/// The files of a saved epoch.
pub const CHECKPOINT_PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// The epochs whose three checkpoint files all exist in `dir`.
pub fn complete_checkpoints(dir: &Path) -> Vec<usize> {
    let mut epochs: Vec<usize> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .filter(|&e| {
            CHECKPOINT_PARTS
                .iter()
                .all(|p| AtomicCheckpointer::path(dir, p, e).is_file())
        })
        .collect();
    epochs.sort_unstable();
    epochs
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Epoch with the lowest validation error.
    pub best_epoch: usize,
    /// Its validation error, percent (none without a validation split).
    pub best_valid_error: Option<f64>,
    /// Its test error, percent, when the test set was evaluated every epoch.
    pub test_error_at_best: Option<f64>,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Epochs configured.
    pub epochs_planned: usize,
    /// Sum of the training-split wall times, seconds.
    pub train_seconds: f64,
    /// Wall time of all invocations of the run (training, evaluation, start-up), seconds.
    pub wall_seconds: f64,
    /// `completed`, `interrupted` or the reason the run stopped.
    pub status: String,
}

impl Summary {
    /// The summary of the rows so far.
    pub fn from_table(table: &RunTable, planned: usize, wall: f64, status: String) -> Option<Self> {
        let best = table.best()?;
        Some(Self {
            best_epoch: best.epoch,
            best_valid_error: Some(best.valid_error).filter(|e| e.is_finite()),
            test_error_at_best: best.test_error,
            epochs_done: table.rows.last().map_or(0, |r| r.epoch),
            epochs_planned: planned,
            train_seconds: table.rows.iter().map(|r| r.epoch_seconds).sum(),
            wall_seconds: wall,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, valid_error: f64) -> EpochRow {
        EpochRow {
            epoch,
            lr: 0.1,
            train_loss: 1.5,
            train_error: 40.0,
            valid_loss: 1.4,
            valid_error,
            test_error: Some(valid_error + 1.0),
            epoch_seconds: 12.5,
            mean_blocks_run: 6.75,
            first_layer_grad: 1e-3,
        }
    }

    #[test]
    fn metrics_csv_round_trips_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("sd-train-csv-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.csv");
        let table = RunTable {
            rows: vec![row(1, 50.0), row(2, 40.0)],
            ..Default::default()
        };
        table.write(&path).unwrap();
        assert_eq!(RunTable::read(&path).unwrap().rows, table.rows);

        fs::write(&path, format!("{CSV_HEADER}\n1,2,3\n")).unwrap();
        let err = RunTable::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("metrics.csv"),
            "{err}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keeps_the_last_and_the_best_checkpoint() {
        let table = Arc::new(Mutex::new(RunTable::default()));
        let dir = std::env::temp_dir().join(format!("sd-train-keep-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.csv");
        table.lock().unwrap().path = Some(path.clone());
        let mut strategy = KeepLastAndBest::new(table.clone(), vec![]);
        let mut run = |epoch: usize, err: f64| {
            table.lock().unwrap().offer_row(row(epoch, err));
            let actions = strategy.plan(epoch);
            actions
                .iter()
                .filter_map(|a| match a {
                    CheckpointingAction::Delete(e) => Some(*e),
                    CheckpointingAction::Save => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1, 50.0), Vec::<usize>::new());
        assert_eq!(run(2, 40.0), vec![1]);
        assert_eq!(run(3, 45.0), Vec::<usize>::new(), "2 is best, 3 is last");
        assert_eq!(run(4, 44.0), vec![3]);
        assert_eq!(run(5, 30.0), vec![2, 4]);
        assert_eq!(
            RunTable::read(&path).unwrap().rows.len(),
            5,
            "each saved epoch has its row"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn without_validation_errors_the_last_epoch_is_best() {
        let best = |rows: Vec<EpochRow>| {
            let table = RunTable {
                rows,
                ..Default::default()
            };
            table.best().unwrap().epoch
        };
        assert_eq!(best(vec![row(1, f64::NAN), row(2, f64::NAN)]), 2);
        assert_eq!(best(vec![row(1, 30.0), row(2, f64::NAN), row(3, 40.0)]), 1);
    }

    #[test]
    fn a_row_is_committed_once_its_epoch_is_saved_in_either_order() {
        let mut table = RunTable::default();
        table.offer_row(row(1, 50.0));
        assert!(table.rows.is_empty(), "not saved yet");
        table.mark_saved(1);
        assert_eq!(table.rows.len(), 1);
        table.mark_saved(2);
        assert_eq!(table.rows.len(), 1, "no row yet");
        table.offer_row(row(2, 40.0));
        assert_eq!(
            table.rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            [1, 2]
        );
        // An epoch interrupted during validation: a row, never saved.
        table.offer_row(row(3, 10.0));
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.best().unwrap().epoch, 2);
    }
}
