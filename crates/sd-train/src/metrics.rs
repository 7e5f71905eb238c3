//! What the dashboard and `metrics.csv` show: loss, error rates, and the
//! stochastic-depth figures of each step.
//!
//! Validation and test batches travel through one evaluation loader (Burn's
//! learner knows two splits); every item carries its [`Part`], and each metric
//! counts only the parts it is for. So "Error" on the validation split is the
//! validation error, and "Test error" the test error of the same epoch.

use std::sync::{Arc, Mutex};

use burn::prelude::*;
use burn::tensor::TensorReadError;
use burn::train::Interrupter;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, ItemLazy, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};

/// Which part of the data an item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The training split.
    Train,
    /// The validation split.
    Valid,
    /// The test set.
    Test,
}

/// The output of one training or evaluation step.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Mean cross-entropy of the batch, `[1]`.
    pub loss: Tensor<1>,
    /// Logits, `[batch, classes]`.
    pub logits: Tensor<2>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
    /// Where the batch comes from.
    pub part: Part,
    /// Residual blocks run, counting a block by the fraction of rows that ran
    /// its branch (per-sample gates); all of them in evaluation.
    pub blocks_run: f64,
    /// Expected number of blocks run, the sum of the survival probabilities.
    pub expected_depth: f64,
    /// Mean absolute gradient of the first convolution's weights (training only), `[1]`.
    pub first_layer_grad: Option<Tensor<1>>,
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            targets: self.targets.without_autodiff(),
            first_layer_grad: self.first_layer_grad.map(|g| g.without_autodiff()),
            ..self
        })
    }
}

impl Adaptor<StepOutput> for StepOutput {
    fn adapt(&self) -> StepOutput {
        self.clone()
    }
}

/// The fraction of misclassified images, in percent, over the chosen parts.
fn error_percent(item: &StepOutput) -> Result<(f64, usize), TensorReadError> {
    let [batch, _] = item.logits.dims();
    let predicted = item.logits.clone().argmax(1).reshape([batch]);
    let correct = predicted
        .equal(item.targets.clone())
        .int()
        .sum()
        .try_into_scalar::<f64>()?;
    Ok((100.0 * (1.0 - correct / batch as f64), batch))
}

/// Why a run stopped on a non-finite loss, shared with the trainer.
pub type NonFiniteLoss = Arc<Mutex<Option<String>>>;

/// What a [`StepMetric`] measures.
#[derive(Clone)]
enum Measure {
    Loss {
        guard: Option<(Interrupter, NonFiniteLoss)>,
    },
    Error,
    BlocksRun,
    ExpectedDepth,
    FirstLayerGrad,
}

/// One numeric metric over the items of some parts.
#[derive(Clone)]
pub struct StepMetric {
    name: MetricName,
    parts: &'static [Part],
    measure: Measure,
    unit: Option<&'static str>,
    higher_is_better: bool,
    state: NumericMetricState,
}

impl StepMetric {
    fn new(name: &str, parts: &'static [Part], measure: Measure) -> Self {
        Self {
            name: MetricName::new(name.to_string()),
            parts,
            measure,
            unit: None,
            higher_is_better: false,
            state: NumericMetricState::new(),
        }
    }

    /// Cross-entropy on training or validation items. When `guard` is given, a
    /// non-finite loss stops the run through the interrupter and records why.
    pub fn loss(guard: Option<(Interrupter, NonFiniteLoss)>) -> Self {
        Self::new("Loss", &[Part::Train, Part::Valid], Measure::Loss { guard })
    }

    /// Error rate on training or validation items, in percent.
    pub fn error() -> Self {
        let mut m = Self::new("Error", &[Part::Train, Part::Valid], Measure::Error);
        m.unit = Some("%");
        m
    }

    /// Error rate on test items, in percent.
    pub fn test_error() -> Self {
        let mut m = Self::new("Test error", &[Part::Test], Measure::Error);
        m.unit = Some("%");
        m
    }

    /// Residual blocks run per training step.
    pub fn blocks_run() -> Self {
        let mut m = Self::new("Blocks run", &[Part::Train], Measure::BlocksRun);
        m.higher_is_better = true;
        m
    }

    /// The expected number of blocks run per training step.
    pub fn expected_depth() -> Self {
        let mut m = Self::new("Expected depth", &[Part::Train], Measure::ExpectedDepth);
        m.higher_is_better = true;
        m
    }

    /// Mean absolute gradient of the first convolution (the paper's Figure 7).
    pub fn first_layer_grad() -> Self {
        let mut m = Self::new(
            "First-layer gradient",
            &[Part::Train],
            Measure::FirstLayerGrad,
        );
        m.higher_is_better = true;
        m
    }

    fn measure(&self, item: &StepOutput) -> Result<(f64, usize), TensorReadError> {
        let [batch, _] = item.logits.dims();
        Ok(match &self.measure {
            Measure::Loss { guard } => {
                let loss = item.loss.clone().try_into_scalar::<f64>()?;
                if let (false, Some((interrupter, reason))) = (loss.is_finite(), guard) {
                    let message = format!("the training loss became {loss}; stopping");
                    *reason
                        .lock()
                        .expect("the non-finite-loss flag is never poisoned") =
                        Some(message.clone());
                    interrupter.stop(Some(&message));
                }
                (loss, batch)
            }
            Measure::Error => error_percent(item)?,
            Measure::BlocksRun => (item.blocks_run, 1),
            Measure::ExpectedDepth => (item.expected_depth, 1),
            Measure::FirstLayerGrad => match &item.first_layer_grad {
                Some(g) => (g.clone().try_into_scalar::<f64>()?, 1),
                None => (f64::NAN, 0),
            },
        })
    }

    fn format(&self) -> FormatOptions {
        let format = FormatOptions::new(self.name()).precision(4);
        match self.unit {
            Some(unit) => format.unit(unit),
            None => format,
        }
    }
}

impl Metric for StepMetric {
    type Input = StepOutput;

    fn update(
        &mut self,
        item: &StepOutput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        if self.parts.contains(&item.part) {
            let (value, count) = self.measure(item)?;
            self.state.update(value, count);
        }
        Ok(self.state.compute_update(self.format()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.state.reset();
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: self.unit.map(str::to_string),
            higher_is_better: self.higher_is_better,
        }
        .into()
    }
}

impl Numeric for StepMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}
