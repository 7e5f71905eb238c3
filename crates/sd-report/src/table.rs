//! Training time of constant-depth and stochastic-depth runs, as in the
//! paper's Table 2.
//!
//! The paper compares the total training time of a constant-depth ResNet-110
//! with its stochastic-depth twin (about 25% less). Runs here may differ in
//! their number of epochs, so the speed-up is the ratio of the *mean time per
//! epoch* of the constant-depth run of the same depth (and data and batch
//! size) to that of the run; the total time is shown too.

use std::fmt::Write as _;

use crate::run::Run;

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeRow {
    /// The run's name.
    pub name: String,
    /// Network depth.
    pub depth: usize,
    /// The survival rule, in words.
    pub rule: String,
    /// Residual blocks of the network.
    pub blocks: usize,
    /// Mean residual blocks run per training step, when logged.
    pub mean_blocks_run: Option<f64>,
    /// Epochs finished.
    pub epochs: usize,
    /// Training time over those epochs, seconds.
    pub train_seconds: f64,
    /// Mean training time of an epoch, seconds.
    pub seconds_per_epoch: f64,
    /// Seconds per epoch of the constant-depth run of the same depth, data
    /// and batch size, divided by this run's; `None` without such a run.
    pub speed_up: Option<f64>,
}

/// The training-time table of a set of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTable {
    /// One row per run with a finished epoch, in the order given.
    pub rows: Vec<TimeRow>,
}

impl TimeTable {
    /// The table of `runs`; runs without a finished epoch are left out.
    pub fn new(runs: &[&Run]) -> Self {
        let per_epoch = |run: &Run| run.train_seconds() / run.epochs.len() as f64;
        let same_setup = |a: &Run, b: &Run| {
            let (a, b) = (&a.settings, &b.settings);
            a.depth == b.depth
                && a.dataset == b.dataset
                && a.batch_size == b.batch_size
                && a.max_train == b.max_train
        };
        let finished: Vec<&Run> = runs
            .iter()
            .copied()
            .filter(|r| !r.epochs.is_empty())
            .collect();
        let rows = finished
            .iter()
            .map(|run| {
                let baseline = finished
                    .iter()
                    .find(|b| b.settings.rule.is_constant_depth() && same_setup(b, run));
                let seconds_per_epoch = per_epoch(run);
                TimeRow {
                    name: run.name.clone(),
                    depth: run.settings.depth,
                    rule: run.settings.rule.to_string(),
                    blocks: run.settings.blocks(),
                    mean_blocks_run: run.mean_blocks_run(),
                    epochs: run.epochs.len(),
                    train_seconds: run.train_seconds(),
                    seconds_per_epoch,
                    speed_up: baseline
                        .map(|b| per_epoch(b) / seconds_per_epoch)
                        .filter(|s| s.is_finite()),
                }
            })
            .collect();
        Self { rows }
    }

    /// The table in markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| run | network | survival rule | blocks run (of L) | epochs | training time \
             | per epoch | speed-up |\n|---|---|---|---:|---:|---:|---:|---:|\n",
        );
        for row in &self.rows {
            let blocks = row
                .mean_blocks_run
                .map_or("n/a".to_string(), |b| format!("{b:.2} of {}", row.blocks));
            let speed_up = row
                .speed_up
                .map_or("n/a (no constant-depth run)".to_string(), |s| {
                    format!("{s:.2}x")
                });
            let _ = writeln!(
                out,
                "| {} | ResNet-{} | {} | {blocks} | {} | {} | {} | {speed_up} |",
                row.name,
                row.depth,
                row.rule,
                row.epochs,
                duration(row.train_seconds),
                duration(row.seconds_per_epoch),
            );
        }
        out
    }
}

/// A duration for people: `12.3 s`, `4m 05s`, `20h 42m`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "n/a".into();
    }
    let whole = seconds.round() as u64;
    match whole {
        0..60 => format!("{seconds:.1} s"),
        60..3600 => format!("{}m {:02}s", whole / 60, whole % 60),
        _ => format!("{}h {:02}m", whole / 3600, (whole % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RunSpec, scratch};

    #[test]
    fn speed_up_is_against_the_constant_run_of_the_same_depth() {
        let dir = scratch("table");
        let runs: Vec<Run> = [
            RunSpec::new(20, "constant", 1.0)
                .errors(&[50.0, 40.0])
                .timing(100.0, 9.0),
            RunSpec::new(20, "linear", 0.5)
                .errors(&[50.0, 40.0, 35.0])
                .timing(80.0, 6.75),
            RunSpec::new(32, "linear", 0.5)
                .errors(&[50.0])
                .timing(120.0, 11.25),
        ]
        .iter()
        .zip(["c20", "sd20", "sd32"])
        .map(|(spec, name)| Run::load(&spec.write(&dir, name)).unwrap())
        .collect();
        let table = TimeTable::new(&runs.iter().collect::<Vec<_>>());
        let rows = &table.rows;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].speed_up, Some(1.0));
        // 100 s per epoch against 80 s per epoch.
        assert_eq!(rows[1].speed_up, Some(1.25));
        assert_eq!(rows[1].train_seconds, 240.0);
        assert_eq!(rows[1].blocks, 9);
        assert_eq!(rows[2].speed_up, None, "no constant ResNet-32");

        let md = table.to_markdown();
        assert!(
            md.contains("| sd20 | ResNet-20 | linear decay, p_L = 0.5 | 6.75 of 9 | 3 | 4m 00s |")
        );
        assert!(md.contains("| 1m 20s | 1.25x |"), "{md}");
        assert!(md.contains("n/a (no constant-depth run)"), "{md}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(245.0), "4m 05s");
        assert_eq!(duration(20.0 * 3600.0 + 42.0 * 60.0), "20h 42m");
        assert_eq!(duration(f64::NAN), "n/a");
    }
}
