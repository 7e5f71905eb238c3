//! The plain log shown when standard output is not a terminal (CI, `nohup`,
//! a pipe): a progress line every few seconds and one line per finished split.
//! On a terminal, burn-train's dashboard is used instead.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// A line-oriented renderer for logs.
pub struct PlainLog {
    names: HashMap<MetricId, String>,
    train: BTreeMap<String, String>,
    valid: BTreeMap<String, String>,
    split: &'static str,
    epoch: usize,
    epochs: usize,
    items: usize,
    total: usize,
    last_print: Instant,
    every: Duration,
}

impl PlainLog {
    /// A log that prints progress at most every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            names: HashMap::new(),
            train: BTreeMap::new(),
            valid: BTreeMap::new(),
            split: "train",
            epoch: 0,
            epochs: 0,
            items: 0,
            total: 0,
            last_print: Instant::now(),
            every,
        }
    }

    fn record(&mut self, valid: bool, state: MetricState) {
        let entry = match state {
            MetricState::Generic(entry) | MetricState::Numeric(entry, _) => entry,
        };
        let name = self
            .names
            .get(&entry.metric_id)
            .cloned()
            .unwrap_or_default();
        let map = if valid {
            &mut self.valid
        } else {
            &mut self.train
        };
        // "epoch 1.23 - batch 1.10": keep the epoch's running value.
        let formatted = entry.serialized_entry.formatted;
        let running = formatted
            .strip_prefix("epoch ")
            .and_then(|rest| rest.split(" - batch").next())
            .unwrap_or(&formatted)
            .to_string();
        map.insert(name, running);
    }

    fn line(&self, metrics: &BTreeMap<String, String>) -> String {
        let shown: Vec<String> = metrics
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect();
        shown.join(" | ")
    }

    fn print_progress(&mut self, force: bool) {
        if !force && self.last_print.elapsed() < self.every {
            return;
        }
        self.last_print = Instant::now();
        let metrics = if self.split == "train" {
            &self.train
        } else {
            &self.valid
        };
        println!(
            "epoch {}/{} {} {}/{} | {}",
            self.epoch,
            self.epochs,
            self.split,
            self.items,
            self.total,
            self.line(metrics)
        );
    }
}

impl MetricsRendererTraining for PlainLog {
    fn update_train(&mut self, state: MetricState) {
        self.record(false, state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(true, state);
    }
}

impl TrainingProgressLogger for PlainLog {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.epochs = total_epochs;
        self.epoch = starting_epoch.saturating_sub(1);
        println!("training from epoch {starting_epoch} to {total_epochs}");
    }

    fn update_epoch(&mut self, _epoch: usize) {}

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = if split.to_lowercase().starts_with("train") {
            "train"
        } else {
            "valid"
        };
        if self.split == "train" {
            self.epoch += 1;
        }
        self.items = 0;
        self.total = total_items;
    }

    fn update_split(&mut self, items_processed: usize) {
        self.items = items_processed;
        self.print_progress(false);
    }

    fn end_split(&mut self) {
        self.print_progress(true);
    }

    fn end(&mut self) {
        println!("training ended");
    }

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for PlainLog {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        println!("evaluating {name} ({total_items} images)");
    }

    fn update_test_progress(&mut self, _items_processed: usize) {}

    fn end_test(&mut self) {}

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for PlainLog {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for PlainLog {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }
}
