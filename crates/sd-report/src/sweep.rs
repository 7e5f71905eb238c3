//! A sweep: a grid of runs over `p_L`, survival rule and depth, one shared
//! short schedule, as behind the paper's Figure 8.
//!
//! ```text
//! SWEEP/sweep.json           the manifest: the grid and the shared training flags
//! SWEEP/d20-constant/        one run folder per cell (`p_L = 1`: constant depth,
//! SWEEP/d20-linear-p0.50/    shared by both rules)
//! SWEEP/d20-uniform-p0.50/
//! SWEEP/logs/<cell>.log      what each cell's training printed
//! ```
//!
//! `cargo xtask sweep` writes the manifest and trains the cells;
//! [`Sweep::load`] reads whatever cells have finished epochs, so a half-done
//! sweep can be plotted too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ReportError, read_text};
use crate::run::{ErrorKind, Run};

/// The manifest's file name inside a sweep folder.
pub const MANIFEST_FILE: &str = "sweep.json";

/// The manifest format this crate writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// A survival rule swept over `p_L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepRule {
    /// Linear decay from 1 to `p_L` (the paper's rule).
    Linear,
    /// Every block survives with probability `p_L`.
    Uniform,
}

impl SweepRule {
    /// `linear` or `uniform`: the value of `cargo xtask train --schedule`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Uniform => "uniform",
        }
    }

    /// Parses `linear` or `uniform`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(Self::Linear),
            "uniform" => Some(Self::Uniform),
            _ => None,
        }
    }
}

impl fmt::Display for SweepRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The grid and the settings every cell shares; saved as `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Network depths, ascending.
    pub depths: Vec<usize>,
    /// `p_L` values, ascending; 1 stands for the constant-depth network.
    pub p_last: Vec<f64>,
    /// The rules swept over `p_L`.
    pub rules: Vec<SweepRule>,
    /// Epochs of every cell.
    pub epochs: usize,
    /// The other training flags every cell shares, without their dashes
    /// (`{"batch-size": "32", "max-train": "2000"}`).
    pub train_flags: BTreeMap<String, String>,
}

/// The survival rule of one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellRule {
    /// `p_L = 1`: every block runs, whatever the rule; one cell serves both rules.
    Constant,
    /// Linear decay to `p_L`.
    Linear(f64),
    /// Uniform `p_L`.
    Uniform(f64),
}

/// One run of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Folder name inside the sweep: `d20-constant`, `d20-linear-p0.50`.
    pub name: String,
    /// Network depth.
    pub depth: usize,
    /// Survival rule.
    pub rule: CellRule,
}

impl Cell {
    /// The cell of `rule` at `depth` and `p_last`.
    pub fn new(depth: usize, rule: SweepRule, p_last: f64) -> Self {
        let (rule, name) = match (p_last >= 1.0, rule) {
            (true, _) => (CellRule::Constant, format!("d{depth}-constant")),
            (false, SweepRule::Linear) => (
                CellRule::Linear(p_last),
                format!("d{depth}-linear-p{p_last:.2}"),
            ),
            (false, SweepRule::Uniform) => (
                CellRule::Uniform(p_last),
                format!("d{depth}-uniform-p{p_last:.2}"),
            ),
        };
        Self { name, depth, rule }
    }

    /// The `cargo xtask train` flags that select this cell's network.
    pub fn train_flags(&self) -> Vec<String> {
        let mut flags = vec!["--depth".to_string(), self.depth.to_string()];
        match self.rule {
            CellRule::Constant => flags.extend(["--schedule".into(), "constant".into()]),
            CellRule::Linear(p) | CellRule::Uniform(p) => {
                let schedule = match self.rule {
                    CellRule::Linear(_) => "linear",
                    _ => "uniform",
                };
                flags.extend([
                    "--schedule".into(),
                    schedule.into(),
                    "--p-last".into(),
                    p.to_string(),
                ]);
            }
        }
        flags
    }
}

impl SweepManifest {
    /// Checks the grid: non-empty, `p_L` in (0, 1], ascending and distinct
    /// at two decimals (the cell names), epochs at least 1. `path` is for messages.
    pub fn validate(&self, path: &Path) -> Result<(), ReportError> {
        let bad = |problem: String| Err(ReportError::input(path, problem));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "manifest format {} (this build reads format {MANIFEST_FORMAT})",
                self.format
            ));
        }
        if self.depths.is_empty() || self.p_last.is_empty() || self.rules.is_empty() {
            return bad("the grid is empty: it needs depths, p_last values and rules".into());
        }
        if let Some(p) = self.p_last.iter().find(|p| !(**p > 0.0 && **p <= 1.0)) {
            return bad(format!("p_last {p} is outside (0, 1]"));
        }
        let names: Vec<String> = self.p_last.iter().map(|p| format!("{p:.2}")).collect();
        if names.windows(2).any(|w| w[0] >= w[1]) || self.p_last.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!(
                "p_last values {:?} are not ascending and distinct at two decimals",
                self.p_last
            ));
        }
        if self.depths.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!(
                "depths {:?} are not ascending and distinct",
                self.depths
            ));
        }
        if self.rules.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("rules {:?} are repeated", self.rules));
        }
        if self.epochs == 0 {
            return bad("epochs is 0; a cell trains at least 1 epoch".into());
        }
        Ok(())
    }

    /// Every cell once, depth by depth, the constant-depth cell first.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells: Vec<Cell> = Vec::new();
        for &depth in &self.depths {
            let mut row: Vec<Cell> = self
                .rules
                .iter()
                .flat_map(|&rule| self.p_last.iter().map(move |&p| Cell::new(depth, rule, p)))
                .collect();
            row.sort_by_key(|c| c.rule != CellRule::Constant);
            for cell in row {
                if !cells.contains(&cell) {
                    cells.push(cell);
                }
            }
        }
        cells
    }

    /// The manifest of the sweep folder `dir`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let path = dir.join(MANIFEST_FILE);
        let text = read_text(&path, "a sweep manifest written by `cargo xtask sweep`")?;
        let manifest: Self = serde_json::from_str(&text)
            .map_err(|e| ReportError::input(&path, format!("not a sweep manifest: {e}")))?;
        manifest.validate(&path)?;
        Ok(manifest)
    }

    /// Writes the manifest into `dir` (through a temporary file and a rename).
    pub fn save(&self, dir: &Path) -> Result<(), ReportError> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        std::fs::write(&tmp, text + "\n").map_err(|e| ReportError::io(&tmp, "write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ReportError::io(&path, "write", e))
    }
}

/// True when `dir` holds a sweep manifest.
pub fn is_sweep(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

/// A sweep folder, read: the manifest and the cells that have finished epochs.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The folder.
    pub path: PathBuf,
    /// The folder's name.
    pub name: String,
    /// The grid.
    pub manifest: SweepManifest,
    /// The cells with at least one finished epoch, by cell name.
    pub runs: BTreeMap<String, Run>,
}

impl Sweep {
    /// Reads the sweep folder `dir`. A cell without `metrics.csv` has not
    /// finished an epoch and is left out; a cell whose files are damaged is
    /// an error naming them.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let manifest = SweepManifest::load(dir)?;
        let mut runs = BTreeMap::new();
        for cell in manifest.cells() {
            let folder = dir.join(&cell.name);
            if !folder.join("metrics.csv").is_file() {
                continue;
            }
            let run = Run::load(&folder)?;
            if run.settings.depth != cell.depth {
                return Err(ReportError::input(
                    &folder.join("config.json"),
                    format!(
                        "depth {} where the sweep's cell {} has depth {}",
                        run.settings.depth, cell.name, cell.depth
                    ),
                ));
            }
            if !run.epochs.is_empty() {
                runs.insert(cell.name.clone(), run);
            }
        }
        let name = dir
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            path: dir.to_path_buf(),
            name,
            manifest,
            runs,
        })
    }

    /// The error the sweep's figures show: test error at the best validation
    /// epoch when every finished cell measured it, else validation error.
    pub fn kind(&self) -> ErrorKind {
        let all_test = self
            .runs
            .values()
            .all(|r| matches!(r.error_at_best(), Some((ErrorKind::Test, _))));
        match all_test {
            true => ErrorKind::Test,
            false => ErrorKind::Validation,
        }
    }

    /// The error of `cell` at its best validation epoch, of the sweep's [`kind`](Self::kind).
    pub fn value(&self, cell: &Cell) -> Option<f64> {
        let run = self.runs.get(&cell.name)?;
        let row = run.row(run.best_epoch()?)?;
        match self.kind() {
            ErrorKind::Test => row.test_error,
            ErrorKind::Validation => row.valid_error,
        }
    }

    /// `(p_L, error)` of `rule` at `depth`, `p_L` ascending; `None` for a
    /// cell without a finished epoch.
    pub fn series(&self, rule: SweepRule, depth: usize) -> Vec<(f64, Option<f64>)> {
        self.manifest
            .p_last
            .iter()
            .map(|&p| (p, self.value(&Cell::new(depth, rule, p))))
            .collect()
    }

    /// The runs of the cells with finished epochs, in grid order.
    pub fn cell_runs(&self) -> Vec<&Run> {
        self.manifest
            .cells()
            .iter()
            .filter_map(|c| self.runs.get(&c.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RunSpec, scratch, write_sweep};

    fn manifest() -> SweepManifest {
        SweepManifest {
            format: MANIFEST_FORMAT,
            depths: vec![8, 14],
            p_last: vec![0.5, 1.0],
            rules: vec![SweepRule::Linear, SweepRule::Uniform],
            epochs: 2,
            train_flags: BTreeMap::new(),
        }
    }

    #[test]
    fn p_last_one_is_one_constant_cell_shared_by_both_rules() {
        let names: Vec<String> = manifest().cells().into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "d8-constant",
                "d8-linear-p0.50",
                "d8-uniform-p0.50",
                "d14-constant",
                "d14-linear-p0.50",
                "d14-uniform-p0.50"
            ]
        );
        let cell = Cell::new(14, SweepRule::Uniform, 0.5);
        assert_eq!(
            cell.train_flags(),
            ["--depth", "14", "--schedule", "uniform", "--p-last", "0.5"]
        );
        let constant = Cell::new(8, SweepRule::Linear, 1.0);
        assert_eq!(
            constant.train_flags(),
            ["--depth", "8", "--schedule", "constant"]
        );
    }

    #[test]
    fn a_bad_grid_is_refused_by_name() {
        let path = Path::new("s/sweep.json");
        let mut m = manifest();
        m.p_last = vec![0.5, 0.501];
        let err = m.validate(path).unwrap_err().to_string();
        assert!(
            err.contains("two decimals") && err.contains("s/sweep.json"),
            "{err}"
        );
        let mut m = manifest();
        m.p_last = vec![0.0, 0.5];
        assert!(
            m.validate(path)
                .unwrap_err()
                .to_string()
                .contains("p_last 0 is outside")
        );
        let mut m = manifest();
        m.depths.clear();
        assert!(
            m.validate(path)
                .unwrap_err()
                .to_string()
                .contains("grid is empty")
        );
        assert!(manifest().validate(path).is_ok());
    }

    #[test]
    fn a_manifest_round_trips_and_garbage_is_named() {
        let dir = scratch("manifest");
        manifest().save(&dir).unwrap();
        assert_eq!(SweepManifest::load(&dir).unwrap(), manifest());
        assert!(is_sweep(&dir));

        std::fs::write(dir.join(MANIFEST_FILE), "{\"format\": 1, \"depths\": [8]").unwrap();
        let err = SweepManifest::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("sweep.json") && err.contains("not a sweep manifest"),
            "{err}"
        );
        std::fs::write(dir.join(MANIFEST_FILE), "{\"format\": 1, \"colour\": 3}").unwrap();
        let err = SweepManifest::load(&dir).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = SweepManifest::load(&dir).unwrap_err().to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn reads_finished_cells_and_leaves_gaps_for_the_rest() {
        let dir = scratch("sweep-read");
        let m = manifest();
        // Every cell but d14-uniform-p0.50, whose error is, by construction,
        // depth / 10 + 10 * p_L (+ 1 for the test error).
        write_sweep(&dir, &m, |cell| cell.name != "d14-uniform-p0.50");
        let sweep = Sweep::load(&dir).unwrap();
        assert_eq!(sweep.runs.len(), 5);
        assert_eq!(sweep.kind(), ErrorKind::Test);
        let linear = sweep.series(SweepRule::Linear, 8);
        assert_eq!(linear.len(), 2);
        assert!(
            (linear[0].1.unwrap() - (0.8 + 5.0 + 1.0)).abs() < 1e-9,
            "{linear:?}"
        );
        assert!(
            (linear[1].1.unwrap() - (0.8 + 10.0 + 1.0)).abs() < 1e-9,
            "{linear:?}"
        );
        let uniform = sweep.series(SweepRule::Uniform, 14);
        assert_eq!(uniform[0].1, None, "not run");
        assert_eq!(
            uniform[1].1,
            sweep.series(SweepRule::Linear, 14)[1].1,
            "shared constant cell"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_cell_holding_another_network_is_named() {
        let dir = scratch("sweep-wrong");
        let m = manifest();
        m.save(&dir).unwrap();
        RunSpec::new(20, "constant", 1.0)
            .errors(&[50.0])
            .write(&dir, "d8-constant");
        let err = Sweep::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("d8-constant") && err.contains("depth 20"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
