//! The project's command line, run as `cargo xtask <command>`.
//!
//! - `train`: train a stochastic-depth ResNet (the paper's recipe by default).
//! - `eval`: the test error of a run's best-validation checkpoint.
//! - `bench`: forward+backward time of a ResNet step, all gates open vs the paper's schedule.
//! - `devices`: what each backend sees.
//! - `sweep`: a grid of runs over p_L, survival rule and depth (the paper's Figure 8).
//! - `plot`: the paper's figures and tables from run and sweep folders.
//!
//! The alias in `.cargo/config.toml` builds in release mode: training in a
//! debug build is unusably slow.

mod bench;
mod devices;
mod eval;
mod memory;
mod plot;
mod sweep;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Deep networks with stochastic depth, on Burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a stochastic-depth ResNet.
    Train(train::TrainArgs),
    /// Evaluate a run's best-validation checkpoint on the test set.
    Eval(eval::EvalArgs),
    /// Time training steps of a ResNet.
    Bench(bench::BenchArgs),
    /// List the devices each backend sees.
    Devices,
    /// Train a grid of runs over p_L, survival rule and depth; resumes a half-done sweep.
    Sweep(sweep::SweepArgs),
    /// Draw the paper's figures and tables from run and sweep folders.
    Plot(plot::PlotArgs),
}

/// Counts heap bytes for `bench`'s peak-memory figures; costs two relaxed
/// atomic operations per allocation.
#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

fn main() {
    memory::keep_freed_memory();
    // Die quietly when a reader such as `head` closes our standard output,
    // as command-line tools do, instead of panicking on the failed print.
    // (Sockets are unaffected: Rust writes to them with MSG_NOSIGNAL.)
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Devices => devices::run(),
        Command::Sweep(args) => sweep::run(args),
        Command::Plot(args) => plot::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
