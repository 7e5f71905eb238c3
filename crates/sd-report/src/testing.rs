//! Synthetic run and sweep folders for the tests, written the way
//! `cargo xtask train` and `cargo xtask sweep` write them.

use std::path::{Path, PathBuf};

use crate::run::METRICS_COLUMNS;
use crate::sweep::{Cell, CellRule, SweepManifest};

/// A fresh, empty folder under the system's temporary folder.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sd-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temporary folder is writable");
    dir
}

/// A synthetic run: its validation error per epoch is given, its test
/// error is the validation error plus 1, its training time per epoch and
/// first-layer gradient are set below.
pub struct RunSpec {
    depth: usize,
    survival: serde_json::Value,
    valid: Vec<f64>,
    with_test: bool,
    epoch_seconds: f64,
    blocks_run: f64,
    grad: Box<dyn Fn(usize) -> f64>,
}

impl RunSpec {
    /// A run of ResNet-`depth` under `rule` (`linear`, `uniform` or `constant`) at `p`.
    pub fn new(depth: usize, rule: &str, p: f64) -> Self {
        let survival = match rule {
            "linear" => serde_json::json!({"LinearDecay": {"p_last": p}}),
            "uniform" => serde_json::json!({"Uniform": {"p": p}}),
            "constant" => serde_json::json!("Constant"),
            other => panic!("no rule {other} in the synthetic runs"),
        };
        Self {
            depth,
            survival,
            valid: vec![],
            with_test: true,
            epoch_seconds: 10.0,
            blocks_run: (depth - 2) as f64 / 2.0,
            grad: Box::new(|epoch| 1e-3 / epoch as f64),
        }
    }

    /// The validation error of each epoch, percent.
    pub fn errors(mut self, valid: &[f64]) -> Self {
        self.valid = valid.to_vec();
        self
    }

    /// No test error in `metrics.csv` (the test set not evaluated).
    pub fn without_test(mut self) -> Self {
        self.with_test = false;
        self
    }

    /// Training seconds and mean blocks run of every epoch.
    pub fn timing(mut self, epoch_seconds: f64, blocks_run: f64) -> Self {
        self.epoch_seconds = epoch_seconds;
        self.blocks_run = blocks_run;
        self
    }

    /// The first-layer gradient of each 1-based epoch.
    pub fn gradient(mut self, grad: impl Fn(usize) -> f64 + 'static) -> Self {
        self.grad = Box::new(grad);
        self
    }

    /// Writes `config.json`, `metrics.csv` and `summary.json` into `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(&path).unwrap();
        let epochs = self.valid.len();
        let config = serde_json::json!({
            "model": {"depth": self.depth, "survival": self.survival, "num_classes": 10},
            "data": {"kind": "Folder", "max_train": 2000},
            "epochs": epochs,
            "batch_size": 128,
            "seed": 1,
        });
        std::fs::write(path.join("config.json"), config.to_string()).unwrap();

        let mut csv = METRICS_COLUMNS.join(",") + "\n";
        for (i, v) in self.valid.iter().enumerate() {
            let test = match self.with_test {
                true => format!("{:.4}", v + 1.0),
                false => String::new(),
            };
            csv += &format!(
                "{},1e-1,1.0,{:.4},1.1,{v:.4},{test},{:.3},{:.3},{:.6e}\n",
                i + 1,
                v + 5.0,
                self.epoch_seconds,
                self.blocks_run,
                (self.grad)(i + 1)
            );
        }
        std::fs::write(path.join("metrics.csv"), csv).unwrap();

        let best = (0..epochs).fold(0, |b, i| if self.valid[i] < self.valid[b] { i } else { b });
        let summary = serde_json::json!({
            "best_epoch": best + 1,
            "best_valid_error": self.valid.get(best),
            "test_error_at_best": self.valid.get(best).filter(|_| self.with_test).map(|v| v + 1.0),
            "epochs_done": epochs,
            "epochs_planned": epochs,
            "train_seconds": self.epoch_seconds * epochs as f64,
            "wall_seconds": self.epoch_seconds * epochs as f64 + 3.0,
            "status": "completed",
        });
        std::fs::write(path.join("summary.json"), summary.to_string()).unwrap();
        path
    }
}

/// Writes the manifest and the cells `keep` accepts. A cell's validation
/// error is 3 points above its final one until the last epoch, where it is
/// `depth / 10 + 10 p_L`; an epoch takes `depth (1 + p_L) / 2` seconds
/// (`depth` for the constant cell).
pub fn write_sweep(dir: &Path, manifest: &SweepManifest, keep: impl Fn(&Cell) -> bool) {
    manifest.save(dir).unwrap();
    for cell in manifest.cells().iter().filter(|c| keep(c)) {
        let (rule, p) = match cell.rule {
            CellRule::Constant => ("constant", 1.0),
            CellRule::Linear(p) => ("linear", p),
            CellRule::Uniform(p) => ("uniform", p),
        };
        let last = cell.depth as f64 / 10.0 + 10.0 * p;
        let mut errors = vec![last + 3.0; manifest.epochs - 1];
        errors.push(last);
        let seconds = cell.depth as f64 * (1.0 + p) / 2.0;
        RunSpec::new(cell.depth, rule, p)
            .errors(&errors)
            .timing(seconds, seconds)
            .write(dir, &cell.name);
    }
}
