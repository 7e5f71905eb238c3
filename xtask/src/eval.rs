//! `cargo xtask eval --run DIR`: the paper's protocol on a finished run.

use std::path::PathBuf;

use clap::Args;
use sd_train::Backend;
use sd_train::evaluate::{EvalOptions, evaluate};

#[derive(Args)]
pub struct EvalArgs {
    /// The run folder written by `cargo xtask train`.
    #[arg(long)]
    run: PathBuf,
    /// Backend: flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Device index within the backend (see `cargo xtask devices`).
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Data location, if not the one the run was trained on.
    #[arg(long)]
    data: Option<String>,
    /// Evaluate at most this many images per split.
    #[arg(long)]
    max_eval: Option<usize>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let backend: Backend = args.backend.parse()?;
    let report = evaluate(&EvalOptions {
        run: args.run.clone(),
        backend,
        device_index: args.device,
        data: args.data,
        max_eval: args.max_eval,
    })?;
    println!("best validation epoch: {}", report.epoch);
    if let Some(v) = report.valid_error {
        println!("validation error: {v:.2}%");
    }
    println!(
        "test error: {:.2}% on {} images",
        report.test_error, report.test_images
    );
    println!("accuracy per class:");
    for class in &report.per_class {
        match class.images {
            0 => println!("  {:<12}    n/a (no test images)", class.class),
            n => println!("  {:<12} {:>6.2}% of {n}", class.class, class.accuracy),
        }
    }
    println!("wrote {}", args.run.join("eval.json").display());
    Ok(())
}
