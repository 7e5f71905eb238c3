//! Runs [`sd_data::bench_report`] and prints the report.
//!
//! ```text
//! cargo run --release -p sd-data --example bench -- [ARCHIVE] [CACHE_DIR]
//! ```
//!
//! `ARCHIVE` defaults to the shared CIFAR-10 JPEG archive, `../shared/datasets/cifar10-jpeg.tar.gz`
//! seen from the workspace root; `CACHE_DIR` to a folder under the system temporary folder.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let archive = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets/cifar10-jpeg.tar.gz"));
    let cache = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sd-data-bench-cache"));
    match sd_data::bench_report(&archive, &cache) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
