//! `cargo xtask plot PATH...`: the paper's figures and tables from run and
//! sweep folders, as PNG and SVG files and a `report.md` that links them.
//!
//! A path holding `sweep.json` is a sweep (`cargo xtask sweep`): it gives the
//! error against `p_L` and the `p_L` x depth heat maps of the paper's Figure 8.
//! Any other path is a run folder (`cargo xtask train`); the runs together
//! give the error curves of Figure 3, the first-layer gradient of Figure 7
//! and the training-time table of Table 2. The drawing lives in `sd-report`.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use sd_report::sweep::is_sweep;
use sd_report::{Run, Sweep, write_report};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Run folders (from `cargo xtask train --out`) and sweep folders (from
    /// `cargo xtask sweep --out`), in legend order.
    #[arg(required = true, value_name = "RUN")]
    paths: Vec<PathBuf>,
    /// Where the figures and report.md are written.
    #[arg(long, default_value = "figures")]
    out: PathBuf,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    let mut sweeps = Vec::new();
    for path in &args.paths {
        if is_sweep(path) {
            let sweep = Sweep::load(path)?;
            if sweep.runs.is_empty() {
                bail!(
                    "{}: no cell of this sweep has finished an epoch yet",
                    path.display()
                );
            }
            sweeps.push(sweep);
        } else {
            let run = Run::load(path)?;
            if run.epochs.is_empty() {
                bail!(
                    "{}: no finished epoch yet (the file has its header only)",
                    path.join("metrics.csv").display()
                );
            }
            runs.push(run);
        }
    }
    let report = write_report(&runs, &sweeps, &args.out)?;
    for figure in &report.figures {
        println!(
            "wrote {} and {}",
            figure.png.display(),
            figure.svg.display()
        );
    }
    println!("report: {}", report.markdown.display());
    Ok(())
}
