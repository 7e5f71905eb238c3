//! The paper's step learning-rate schedule, with milestones in epochs.
//!
//! Burn's learner advances the scheduler once per iteration, so the epoch
//! milestones are turned into iteration counts with the number of iterations
//! per epoch. The scheduler's only state is the iteration counter, saved with
//! every checkpoint so that a resumed run continues at the same rate.

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::{RecordState, StateSink, StateSource};
use burn::tensor::Device;

/// `lr = base * gamma^k` where `k` counts the milestones already passed.
#[derive(Debug, Clone)]
pub struct MilestoneLr {
    base: f64,
    gamma: f64,
    /// Milestones in iterations, ascending.
    milestones: Vec<u64>,
    /// Iterations done so far.
    iteration: u64,
}

impl MilestoneLr {
    /// A schedule starting at `base`, multiplied by `gamma` after each epoch in
    /// `milestones`, for epochs of `iterations_per_epoch` iterations.
    pub fn new(base: f64, gamma: f64, milestones: &[usize], iterations_per_epoch: usize) -> Self {
        let mut milestones: Vec<u64> = milestones
            .iter()
            .map(|&e| (e * iterations_per_epoch) as u64)
            .collect();
        milestones.sort_unstable();
        Self {
            base,
            gamma,
            milestones,
            iteration: 0,
        }
    }

    /// The rate of iteration `iteration` (0-based).
    pub fn rate_at(&self, iteration: u64) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| iteration >= m).count();
        self.base * self.gamma.powi(passed as i32)
    }
}

/// The scheduler's saved state.
struct Counter(u64);

impl RecordState for Counter {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_scalar(prefix, "iteration", burn_pack::Scalar::UInt(self.0));
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, _device: &Device) -> Option<Self> {
        match src.take_scalar(prefix, "iteration")? {
            burn_pack::Scalar::UInt(v) => Some(Counter(v)),
            _ => None,
        }
    }
}

impl LrScheduler for MilestoneLr {
    fn step(&mut self) -> LearningRate {
        let rate = self.rate_at(self.iteration);
        self.iteration += 1;
        rate
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::from_state(&Counter(self.iteration))
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(Counter(iteration)) = record.into_state::<Counter>() {
            self.iteration = iteration;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_drops_tenfold_at_each_milestone() {
        // Paper: 500 epochs, milestones 250 and 375; here 10 iterations per epoch.
        let mut s = MilestoneLr::new(0.1, 0.1, &[250, 375], 10);
        let rates: Vec<f64> = (0..5000).map(|_| s.step()).collect();
        assert_eq!(rates[0], 0.1);
        assert_eq!(rates[2499], 0.1);
        assert!((rates[2500] - 0.01).abs() < 1e-12);
        assert!((rates[3749] - 0.01).abs() < 1e-12);
        assert!((rates[3750] - 0.001).abs() < 1e-12);
    }

    #[test]
    fn the_iteration_counter_survives_a_record_round_trip() {
        let mut s = MilestoneLr::new(0.1, 0.1, &[1], 3);
        for _ in 0..4 {
            s.step();
        }
        let record = s.to_record();
        let mut fresh = MilestoneLr::new(0.1, 0.1, &[1], 3);
        fresh.load_record(record);
        assert_eq!(fresh.iteration, 4);
        assert!((fresh.step() - 0.01).abs() < 1e-12);
    }
}
