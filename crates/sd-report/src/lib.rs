//! The figures and tables of *Deep Networks with Stochastic Depth* (Huang et
//! al., ECCV 2016, [arXiv:1603.09382](https://arxiv.org/abs/1603.09382)),
//! drawn from this project's own run folders.
//!
//! The crate reads what `cargo xtask train` and `cargo xtask sweep` leave on
//! disk and never touches Burn, so it builds in seconds and can draw from
//! runs made on another machine.
//!
//! - [`run`]: one run folder read back: `config.json`, `metrics.csv`,
//!   `summary.json` ([`Run`]).
//! - [`sweep`]: the sweep manifest and its grid of cells ([`SweepManifest`],
//!   [`Sweep`]).
//! - [`figures`]: the paper's Figure 3 (error against epoch, best
//!   validation epoch marked), Figure 7 (first-layer gradient per epoch) and
//!   Figure 8 (error against `p_L`, and the `p_L` x depth heat map), each
//!   saved as a PNG and an SVG.
//! - [`table`]: the training-time table of the paper's Table 2.
//! - [`report`]: `report.md`, linking each figure with the numbers behind it.
//! - [`error`]: every failure names the file and what was expected of it.
//!
//! No feature flags. Text is set in DejaVu Sans, compiled into the crate
//! (see `assets/`), so no system font library is needed.
//!
//! ```no_run
//! use std::path::Path;
//! use sd_report::{Run, write_report};
//!
//! let runs = vec![Run::load(Path::new("runs/const110"))?, Run::load(Path::new("runs/sd110"))?];
//! let report = write_report(&runs, &[], Path::new("figures"))?;
//! println!("{}", report.markdown.display());
//! # Ok::<(), sd_report::ReportError>(())
//! ```
#![warn(missing_docs)]

pub mod error;
pub mod figures;
pub mod report;
pub mod run;
pub mod sweep;
pub mod table;

#[cfg(test)]
mod testing;

pub use error::ReportError;
pub use report::{Report, write_report};
pub use run::{ErrorKind, Rule, Run};
pub use sweep::{Cell, CellRule, Sweep, SweepManifest, SweepRule};
pub use table::TimeTable;
