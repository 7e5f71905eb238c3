//! The training and inference steps that burn-train's learner calls.
//!
//! [`Classifier`] wraps a [`CifarResNet`] with what a step needs besides the
//! weights: the gate sampler and the optimizer's treatment of dropped blocks.
//!
//! - [`TrainStep`]: draws the gates of step `batch.step` (a counter that the
//!   data loader derives from the epoch and the batch index, so a resumed run
//!   draws the same gates), runs the stochastic forward pass, and
//!   backpropagates through the blocks that ran.
//! - [`InferenceStep`]: deterministic, every block runs, scaled by `p_l`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use sd_model::{CifarResNet, GateSampler, StochasticResNet};

use crate::config::DroppedBlockUpdate;
use crate::metrics::{Part, StepOutput};

/// A training mini-batch.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    /// Normalised, augmented images, `[batch, 3, 32, 32]`.
    pub images: Tensor<4>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
    /// Global training step: `epoch_index * batches_per_epoch + batch_index`.
    pub step: u64,
}

/// An evaluation mini-batch.
#[derive(Debug, Clone)]
pub struct EvalBatch {
    /// Normalised images, `[batch, 3, 32, 32]`.
    pub images: Tensor<4>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
    /// Validation or test.
    pub part: Part,
}

/// A stochastic-depth ResNet as burn-train sees it.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The network.
    pub net: CifarResNet,
    /// Source of the gates.
    #[module(skip)]
    pub sampler: GateSampler,
    /// What the optimizer does to dropped blocks.
    #[module(skip)]
    pub dropped_blocks: DroppedBlockUpdate,
}

impl Classifier {
    /// Wraps `net`.
    pub fn new(net: CifarResNet, seed: u64, dropped_blocks: DroppedBlockUpdate) -> Self {
        Self {
            net,
            sampler: GateSampler::new(seed),
            dropped_blocks,
        }
    }

    fn loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets)
    }
}

impl Classifier {
    /// One line for people: depth, blocks, expected depth, parameters.
    pub fn describe(&self) -> String {
        format!(
            "stochastic-depth ResNet-{} ({} blocks, expected depth {:.2}, {} parameters)",
            self.net.blocks.len() * 2 + 2,
            self.net.blocks.len(),
            self.net.expected_depth(),
            sd_model::resnet::trainable_params(&self.net)
        )
    }
}

impl TrainStep for Classifier {
    type Input = TrainBatch;
    type Output = StepOutput;

    fn step(&self, batch: TrainBatch) -> TrainOutput<StepOutput> {
        let [size, _, _, _] = batch.images.dims();
        let gates = self.net.draw_gates(&self.sampler, batch.step, size);

        let logits = self.net.forward_stochastic(batch.images, &gates);
        let loss = self.loss(logits.clone(), batch.targets.clone());
        let grads = loss.backward();

        let first_layer_grad = self
            .net
            .conv1
            .weight
            .val()
            .grad(&grads)
            .map(|g| g.abs().mean().reshape([1]));
        let output = StepOutput {
            loss,
            logits,
            targets: batch.targets,
            part: Part::Train,
            blocks_run: gates.effective_depth(),
            expected_depth: self.net.expected_depth(),
            first_layer_grad,
        };
        TrainOutput::new(self, grads, output)
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        mut grads: GradientsParams,
    ) -> Self {
        if self.dropped_blocks == DroppedBlockUpdate::DecayAndMomentum {
            self.visit(&mut ZeroFill { grads: &mut grads });
        }
        optim.step(lr, self, grads)
    }
}

/// Registers a zero gradient for every float parameter that has none, so that
/// weight decay and momentum still act on the blocks a step dropped.
struct ZeroFill<'a> {
    grads: &'a mut GradientsParams,
}

impl ModuleVisitor for ZeroFill<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Trainable parameters only: batch-norm running statistics are visited too.
        let value = param.val();
        if value.is_require_grad() && self.grads.get::<D>(param.id).is_none() {
            let zeros = Tensor::<D>::zeros(value.shape(), &value.device().inner());
            self.grads.register(param.id, zeros);
        }
    }
}

impl InferenceStep for Classifier {
    type Input = EvalBatch;
    type Output = StepOutput;

    fn step(&self, batch: EvalBatch) -> StepOutput {
        let logits = self.net.forward(batch.images);
        let loss = self.loss(logits.clone(), batch.targets.clone());
        StepOutput {
            loss,
            logits,
            targets: batch.targets,
            part: batch.part,
            blocks_run: self.net.blocks.len() as f64,
            expected_depth: self.net.expected_depth(),
            first_layer_grad: None,
        }
    }
}
