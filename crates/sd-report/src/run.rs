//! One training run, read back from the folder `cargo xtask train --out RUN` wrote.
//!
//! ```text
//! RUN/config.json    the training config: the depth and survival rule are read from it
//! RUN/metrics.csv    one row per finished epoch (required)
//! RUN/summary.json   best validation epoch, total training time (optional: a run
//!                    that has not finished its first invocation has none yet)
//! ```
//!
//! Only the fields the figures need are read, by name, so that a config with
//! more settings than this crate knows still loads. Every problem is an
//! [`ReportError`] naming the file and, for `metrics.csv`, the line.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ReportError, read_text};

/// The columns of `metrics.csv`, as the training run writes them.
pub const METRICS_COLUMNS: [&str; 10] = [
    "epoch",
    "lr",
    "train_loss",
    "train_error",
    "valid_loss",
    "valid_error",
    "test_error",
    "epoch_seconds",
    "mean_blocks_run",
    "first_layer_grad",
];

/// The survival rule of a run, as its `config.json` records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Every block always runs: a plain ResNet of constant depth.
    Constant,
    /// Linear decay from 1 to `p_last` (the paper's rule).
    Linear {
        /// `p_L`, the survival probability of the last block.
        p_last: f64,
    },
    /// Every block survives with probability `p`.
    Uniform {
        /// The survival probability of every block.
        p: f64,
    },
    /// One probability per block, given as a list.
    Explicit {
        /// `p_1, ..., p_L`.
        probabilities: Vec<f64>,
    },
}

impl Rule {
    /// True when every block always runs: the constant rule, or a linear or
    /// uniform rule with `p_L = 1`.
    pub fn is_constant_depth(&self) -> bool {
        match self {
            Self::Constant => true,
            Self::Linear { p_last: p } | Self::Uniform { p } => *p >= 1.0,
            Self::Explicit { probabilities } => probabilities.iter().all(|&p| p >= 1.0),
        }
    }

    /// `p_L`: the survival probability of the last block.
    pub fn p_last(&self) -> f64 {
        match self {
            Self::Constant => 1.0,
            Self::Linear { p_last: p } | Self::Uniform { p } => *p,
            Self::Explicit { probabilities } => probabilities.last().copied().unwrap_or(1.0),
        }
    }

    /// Reads the `model.survival` value of a config: `"Constant"`,
    /// `{"LinearDecay": {"p_last": x}}`, `{"Uniform": {"p": x}}` or
    /// `{"Explicit": {"probabilities": [...]}}`.
    fn from_json(value: &Value) -> Option<Self> {
        if value.as_str() == Some("Constant") {
            return Some(Self::Constant);
        }
        let (name, fields) = value.as_object()?.iter().next()?;
        match name.as_str() {
            "LinearDecay" => Some(Self::Linear {
                p_last: fields.get("p_last")?.as_f64()?,
            }),
            "Uniform" => Some(Self::Uniform {
                p: fields.get("p")?.as_f64()?,
            }),
            "Explicit" => Some(Self::Explicit {
                probabilities: fields
                    .get("probabilities")?
                    .as_array()?
                    .iter()
                    .map(Value::as_f64)
                    .collect::<Option<_>>()?,
            }),
            "Constant" => Some(Self::Constant),
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Constant => write!(f, "constant depth"),
            Self::Linear { p_last } if *p_last >= 1.0 => write!(f, "constant depth (p_L = 1)"),
            Self::Uniform { p } if *p >= 1.0 => write!(f, "constant depth (p = 1)"),
            Self::Linear { p_last } => write!(f, "linear decay, p_L = {p_last}"),
            Self::Uniform { p } => write!(f, "uniform, p = {p}"),
            Self::Explicit { probabilities } => {
                write!(
                    f,
                    "explicit, p_L = {}",
                    probabilities.last().unwrap_or(&1.0)
                )
            }
        }
    }
}

/// The settings of a run that the figures and tables name.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Network depth (6n+2 for the CIFAR ResNets).
    pub depth: usize,
    /// The survival rule.
    pub rule: Rule,
    /// Epochs configured.
    pub epochs: usize,
    /// Mini-batch size, when recorded.
    pub batch_size: Option<usize>,
    /// The data set's kind (`Cifar10`, `Folder`, ...), when recorded.
    pub dataset: Option<String>,
    /// The cap on training images, when one was set.
    pub max_train: Option<usize>,
}

impl RunSettings {
    /// Residual blocks of a CIFAR ResNet of this depth: `(depth - 2) / 2`.
    pub fn blocks(&self) -> usize {
        self.depth.saturating_sub(2) / 2
    }

    /// Reads the settings from the text of `config.json` at `path`.
    fn parse(path: &Path, text: &str) -> Result<Self, ReportError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| ReportError::input(path, format!("not valid JSON: {e}")))?;
        let missing = |key: &str, expected: &str| {
            ReportError::input(
                path,
                format!("no `{key}` ({expected}): not the config.json of a training run"),
            )
        };
        let usize_at = |pointer: &str| {
            json.pointer(pointer)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
        };
        let depth = usize_at("/model/depth").ok_or_else(|| missing("model.depth", "an integer"))?;
        let rule = json
            .pointer("/model/survival")
            .and_then(Rule::from_json)
            .ok_or_else(|| missing("model.survival", "a survival rule"))?;
        let epochs = usize_at("/epochs").ok_or_else(|| missing("epochs", "an integer"))?;
        Ok(Self {
            depth,
            rule,
            epochs,
            batch_size: usize_at("/batch_size"),
            dataset: json
                .pointer("/data/kind")
                .and_then(Value::as_str)
                .map(str::to_string),
            max_train: usize_at("/data/max_train"),
        })
    }
}

/// One row of `metrics.csv`. Errors are in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training error.
    pub train_error: f64,
    /// Validation loss (NaN without a validation split).
    pub valid_loss: f64,
    /// Validation error; `None` without a validation split.
    pub valid_error: Option<f64>,
    /// Test error; `None` when the test set was not evaluated that epoch.
    pub test_error: Option<f64>,
    /// Wall time of the epoch's training split, seconds.
    pub epoch_seconds: f64,
    /// Mean number of residual blocks run per training step.
    pub mean_blocks_run: f64,
    /// Mean absolute gradient of the first convolution's weights.
    pub first_layer_grad: f64,
}

/// Reads the rows of `metrics.csv` from its text; `path` is for messages.
///
/// The columns are found by name in the header, so their order does not
/// matter; an empty or NaN `valid_error` or `test_error` means "not measured".
pub fn parse_metrics(path: &Path, text: &str) -> Result<Vec<EpochRow>, ReportError> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ReportError::input(
                path,
                format!(
                    "empty file (expected the header `{}`)",
                    METRICS_COLUMNS.join(",")
                ),
            )
        })?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut index = [0usize; METRICS_COLUMNS.len()];
    for (slot, column) in index.iter_mut().zip(METRICS_COLUMNS) {
        *slot = names.iter().position(|n| *n == column).ok_or_else(|| {
            ReportError::input(
                path,
                format!(
                    "line 1: the header has no `{column}` column (expected `{}`)",
                    METRICS_COLUMNS.join(",")
                ),
            )
        })?;
    }

    let mut rows: Vec<EpochRow> = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let line_no = i + 1;
        let bad = |what: String| ReportError::input(path, format!("line {line_no}: {what}"));
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(bad(format!(
                "{} fields where the header has {}: `{line}`",
                cells.len(),
                names.len()
            )));
        }
        let cell = |c: usize| cells[index[c]];
        let number = |c: usize| {
            cell(c).parse::<f64>().map_err(|_| {
                bad(format!(
                    "`{}` is not a number (column {})",
                    cell(c),
                    METRICS_COLUMNS[c]
                ))
            })
        };
        let measured = |c: usize| match cell(c) {
            "" => Ok(None),
            _ => number(c).map(|v| Some(v).filter(|v| v.is_finite())),
        };
        let epoch: usize = cell(0)
            .parse()
            .ok()
            .filter(|&e| e > 0)
            .ok_or_else(|| bad(format!("epoch `{}` is not a positive integer", cell(0))))?;
        if let Some(last) = rows.last().filter(|r| r.epoch >= epoch) {
            return Err(bad(format!(
                "epoch {epoch} comes after epoch {}",
                last.epoch
            )));
        }
        rows.push(EpochRow {
            epoch,
            lr: number(1)?,
            train_loss: number(2)?,
            train_error: number(3)?,
            valid_loss: number(4)?,
            valid_error: measured(5)?,
            test_error: measured(6)?,
            epoch_seconds: number(7)?,
            mean_blocks_run: number(8)?,
            first_layer_grad: number(9)?,
        });
    }
    Ok(rows)
}

/// `summary.json`, as the training run writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunSummary {
    /// Epoch with the lowest validation error (the last one without a validation split).
    pub best_epoch: usize,
    /// Its validation error, percent.
    pub best_valid_error: Option<f64>,
    /// Its test error, percent.
    pub test_error_at_best: Option<f64>,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Epochs configured.
    pub epochs_planned: usize,
    /// Sum of the training-split wall times, seconds.
    pub train_seconds: f64,
    /// Wall time of all invocations, seconds.
    pub wall_seconds: f64,
    /// `completed`, `interrupted` or the reason the run stopped.
    pub status: String,
}

impl RunSummary {
    /// `summary.json` of the run folder `dir`; `None` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<Self>, ReportError> {
        let path = dir.join("summary.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = read_text(&path, "a run's summary.json")?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ReportError::input(&path, format!("not a run summary: {e}")))
    }

    /// True when the run finished every epoch it planned.
    pub fn is_complete(&self) -> bool {
        self.status == "completed" && self.epochs_done >= self.epochs_planned
    }
}

/// Which error a curve or a number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Error on the test set (what the paper plots).
    Test,
    /// Error on the validation split: the fallback when the test set was not
    /// evaluated every epoch.
    Validation,
}

impl ErrorKind {
    /// "test error" or "validation error".
    pub fn name(self) -> &'static str {
        match self {
            Self::Test => "test error",
            Self::Validation => "validation error",
        }
    }
}

/// A run folder, read.
#[derive(Debug, Clone)]
pub struct Run {
    /// The folder.
    pub path: PathBuf,
    /// The folder's name, used as the run's label.
    pub name: String,
    /// Depth, rule and length from `config.json`.
    pub settings: RunSettings,
    /// The rows of `metrics.csv`, in epoch order.
    pub epochs: Vec<EpochRow>,
    /// `summary.json`, when the run has written one.
    pub summary: Option<RunSummary>,
}

impl Run {
    /// Reads the run folder at `path`.
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        if !path.is_dir() {
            let found = match path.exists() {
                true => "a file, not a folder",
                false => "no such folder",
            };
            return Err(ReportError::input(
                path,
                &format!("{found} (expected a run folder written by `cargo xtask train --out`)"),
            ));
        }
        let config = path.join("config.json");
        let settings = RunSettings::parse(&config, &read_text(&config, "a run's config.json")?)?;
        let metrics = path.join("metrics.csv");
        let epochs = parse_metrics(&metrics, &read_text(&metrics, "a run's metrics.csv")?)?;
        let summary = RunSummary::load(path)?;
        let name = path
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self {
            path: path.to_path_buf(),
            name,
            settings,
            epochs,
            summary,
        })
    }

    /// "ResNet-20, linear decay, p_L = 0.5".
    pub fn describe(&self) -> String {
        format!("ResNet-{}, {}", self.settings.depth, self.settings.rule)
    }

    /// The epoch with the lowest validation error, the earliest among ties;
    /// without validation errors, the last epoch. The summary's choice when
    /// it covers every row, else recomputed from the rows.
    pub fn best_epoch(&self) -> Option<usize> {
        let last = self.epochs.last()?.epoch;
        if let Some(s) = self.summary.as_ref().filter(|s| s.epochs_done == last) {
            return Some(s.best_epoch);
        }
        let best = self
            .epochs
            .iter()
            .filter_map(|r| Some((r.epoch, r.valid_error?)))
            .fold(None, |best: Option<(usize, f64)>, (e, v)| match best {
                Some((_, b)) if b <= v => best,
                _ => Some((e, v)),
            });
        Some(best.map_or(last, |(e, _)| e))
    }

    /// The row of epoch `epoch`.
    pub fn row(&self, epoch: usize) -> Option<&EpochRow> {
        self.epochs.iter().find(|r| r.epoch == epoch)
    }

    /// Which error the run's curve shows: test error when every epoch has
    /// one, else validation error.
    pub fn curve_kind(&self) -> ErrorKind {
        match self.epochs.iter().all(|r| r.test_error.is_some()) {
            true => ErrorKind::Test,
            false => ErrorKind::Validation,
        }
    }

    /// The error per epoch, of the kind [`curve_kind`](Self::curve_kind) says.
    pub fn error_curve(&self) -> Vec<(usize, f64)> {
        let kind = self.curve_kind();
        self.epochs
            .iter()
            .filter_map(|r| {
                let value = match kind {
                    ErrorKind::Test => r.test_error,
                    ErrorKind::Validation => r.valid_error,
                };
                Some((r.epoch, value?))
            })
            .collect()
    }

    /// The error at the best validation epoch, test error when it was
    /// measured there, else validation error.
    pub fn error_at_best(&self) -> Option<(ErrorKind, f64)> {
        let row = self.row(self.best_epoch()?)?;
        match (row.test_error, row.valid_error) {
            (Some(t), _) => Some((ErrorKind::Test, t)),
            (None, Some(v)) => Some((ErrorKind::Validation, v)),
            (None, None) => None,
        }
    }

    /// Training time over the finished epochs, seconds: the sum of the
    /// training-split times in `metrics.csv` (what `summary.json` reports too).
    pub fn train_seconds(&self) -> f64 {
        self.epochs.iter().map(|r| r.epoch_seconds).sum()
    }

    /// Mean residual blocks run per step, over the finished epochs.
    pub fn mean_blocks_run(&self) -> Option<f64> {
        let values: Vec<f64> = self
            .epochs
            .iter()
            .map(|r| r.mean_blocks_run)
            .filter(|v| v.is_finite())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Epochs finished, and epochs configured.
    pub fn progress(&self) -> (usize, usize) {
        let done = self.epochs.last().map_or(0, |r| r.epoch);
        (done, self.settings.epochs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RunSpec, scratch};

    #[test]
    fn reads_a_run_folder() {
        let dir = scratch("read");
        let path = RunSpec::new(20, "linear", 0.5)
            .errors(&[40.0, 30.0, 32.0])
            .write(&dir, "sd20");
        let run = Run::load(&path).unwrap();
        assert_eq!(run.name, "sd20");
        assert_eq!(run.settings.depth, 20);
        assert_eq!(run.settings.rule, Rule::Linear { p_last: 0.5 });
        assert_eq!(run.settings.blocks(), 9);
        assert_eq!(run.epochs.len(), 3);
        assert_eq!(run.best_epoch(), Some(2));
        assert_eq!(run.curve_kind(), ErrorKind::Test);
        // The synthetic test error is the validation error plus 1.
        assert_eq!(run.error_at_best(), Some((ErrorKind::Test, 31.0)));
        assert_eq!(run.describe(), "ResNet-20, linear decay, p_L = 0.5");
    }

    #[test]
    fn falls_back_to_validation_error_without_a_test_column() {
        let dir = scratch("novalid");
        let path = RunSpec::new(8, "constant", 1.0)
            .errors(&[50.0, 45.0])
            .without_test()
            .write(&dir, "c8");
        let run = Run::load(&path).unwrap();
        assert_eq!(run.curve_kind(), ErrorKind::Validation);
        assert_eq!(run.error_curve(), vec![(1, 50.0), (2, 45.0)]);
        assert_eq!(run.error_at_best(), Some((ErrorKind::Validation, 45.0)));
        assert!(run.settings.rule.is_constant_depth());
    }

    #[test]
    fn without_a_summary_the_best_epoch_is_recomputed() {
        let dir = scratch("nosummary");
        let path = RunSpec::new(8, "uniform", 0.8)
            .errors(&[50.0, 41.0, 41.0, 44.0])
            .write(&dir, "u8");
        std::fs::remove_file(path.join("summary.json")).unwrap();
        let run = Run::load(&path).unwrap();
        assert!(run.summary.is_none());
        assert_eq!(
            run.best_epoch(),
            Some(2),
            "the earliest of two equal errors"
        );
        assert_eq!(run.settings.rule, Rule::Uniform { p: 0.8 });
    }

    #[test]
    fn names_the_missing_or_broken_file() {
        let dir = scratch("broken");
        let err = Run::load(&dir.join("nowhere")).unwrap_err().to_string();
        assert!(
            err.contains("nowhere") && err.contains("no such folder"),
            "{err}"
        );
        std::fs::write(dir.join("a-file"), "not a run").unwrap();
        let err = Run::load(&dir.join("a-file")).unwrap_err().to_string();
        assert!(err.contains("a-file: a file, not a folder"), "{err}");

        let path = RunSpec::new(8, "linear", 0.5)
            .errors(&[50.0])
            .write(&dir, "run");
        std::fs::remove_file(path.join("metrics.csv")).unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("run/metrics.csv") && err.contains("no such file"),
            "{err}"
        );

        std::fs::write(path.join("metrics.csv"), "").unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("metrics.csv") && err.contains("empty file"),
            "{err}"
        );

        let header = METRICS_COLUMNS.join(",");
        let text =
            format!("{header}\n1,0.1,2,50,2,50,51,3,4,1e-3\n2,0.1,2,oops,2,50,51,3,4,1e-3\n");
        std::fs::write(path.join("metrics.csv"), text).unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("`oops`"), "{err}");
        assert!(err.contains("train_error"), "{err}");

        let text = format!("{header}\n1,0.1,2,50\n");
        std::fs::write(path.join("metrics.csv"), text).unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("4 fields"), "{err}");

        std::fs::write(path.join("metrics.csv"), "epoch,lr\n").unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(err.contains("no `train_loss` column"), "{err}");

        std::fs::write(path.join("metrics.csv"), format!("{header}\n")).unwrap();
        std::fs::write(path.join("summary.json"), "{\"best_epoch\": 1}").unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("summary.json") && err.contains("not a run summary"),
            "{err}"
        );

        std::fs::write(path.join("config.json"), "{\"model\": {}}").unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("model.depth"),
            "{err}"
        );
        std::fs::write(path.join("config.json"), "{").unwrap();
        let err = Run::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("not valid JSON"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn epochs_must_increase() {
        let header = METRICS_COLUMNS.join(",");
        let text = format!("{header}\n2,0.1,2,50,2,50,,3,4,1e-3\n2,0.1,2,50,2,50,,3,4,1e-3\n");
        let err = parse_metrics(Path::new("m.csv"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("after epoch 2"),
            "{err}"
        );
    }

    #[test]
    fn columns_are_found_by_name_and_nan_means_not_measured() {
        let text = "test_error,epoch,lr,train_loss,train_error,valid_loss,valid_error,\
                    epoch_seconds,mean_blocks_run,first_layer_grad\n\
                    ,1,0.1,2.0,60,NaN,NaN,5.5,7.25,2e-3\n";
        let rows = parse_metrics(Path::new("m.csv"), text).unwrap();
        assert_eq!(rows[0].epoch, 1);
        assert_eq!(rows[0].valid_error, None);
        assert_eq!(rows[0].test_error, None);
        assert_eq!(rows[0].mean_blocks_run, 7.25);
        assert_eq!(rows[0].first_layer_grad, 2e-3);
    }
}
