//! The training configuration: the paper's recipe in one place.
//!
//! [`TrainingConfig`] nests the model, data, optimizer and learning-rate
//! schedule configurations. Its defaults are the CIFAR recipe of the paper
//! (Section 4, "Implementation details"): a 110-layer ResNet with linear decay
//! to `p_L = 0.5`, SGD with Nesterov momentum 0.9 and dampening 0, weight
//! decay 1e-4, mini-batches of 128, 500 epochs, learning rate 0.1 divided by
//! 10 at epochs 250 and 375, and 45,000 / 5,000 training / validation images.
//! Nothing else in the workspace repeats these numbers.

use burn::config::Config;
use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use sd_data::DatasetConfig;
use sd_model::CifarResNetConfig;

/// What the optimizer does to the parameters of a block whose gate was closed.
///
/// A closed block has no gradient in that step. Burn's optimizers leave such a
/// parameter untouched; the paper's Torch code, whose optimizer updates every
/// parameter with a zero gradient, still applied weight decay and the momentum
/// of earlier steps to it.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DroppedBlockUpdate {
    /// As in the paper's code: a zero gradient, so weight decay and momentum still apply.
    DecayAndMomentum,
    /// Burn's behaviour: a parameter without a gradient is not updated at all.
    Skip,
}

/// SGD as the paper uses it.
#[derive(Config, Debug)]
pub struct OptimizerConfig {
    /// Initial learning rate. Default: 0.1.
    #[config(default = 0.1)]
    pub lr: f64,
    /// Momentum. Default: 0.9.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Momentum dampening. Default: 0 (Burn's own default is 0.1).
    #[config(default = 0.0)]
    pub dampening: f64,
    /// Nesterov momentum. Default: true.
    #[config(default = true)]
    pub nesterov: bool,
    /// L2 weight decay on every parameter. Default: 1e-4.
    #[config(default = 1e-4)]
    pub weight_decay: f64,
    /// Update of the parameters of dropped blocks. Default: as in the paper's code.
    #[config(default = "DroppedBlockUpdate::DecayAndMomentum")]
    pub dropped_blocks: DroppedBlockUpdate,
}

impl OptimizerConfig {
    /// Burn's SGD with these settings.
    pub fn sgd(&self) -> SgdConfig {
        let momentum = MomentumConfig::new()
            .with_momentum(self.momentum)
            .with_dampening(self.dampening)
            .with_nesterov(self.nesterov);
        SgdConfig::new()
            .with_momentum(Some(momentum))
            .with_weight_decay(Some(WeightDecayConfig::new(self.weight_decay as f32)))
    }
}

/// Learning rate divided by `gamma` at epoch milestones.
#[derive(Config, Debug)]
pub struct LrScheduleConfig {
    /// Epochs after which the rate is multiplied by `gamma`. `None`: 50% and
    /// 75% of the epochs (250 and 375 of 500, as in the paper).
    pub milestones: Option<Vec<usize>>,
    /// The factor at each milestone. Default: 0.1.
    #[config(default = 0.1)]
    pub gamma: f64,
}

impl LrScheduleConfig {
    /// The milestones for a run of `epochs` epochs.
    pub fn milestones_for(&self, epochs: usize) -> Vec<usize> {
        match &self.milestones {
            Some(m) => m.clone(),
            None => {
                // Short runs: a milestone at epoch 0 or twice at one epoch is dropped.
                let mut m: Vec<usize> = [epochs / 2, epochs * 3 / 4]
                    .into_iter()
                    .filter(|&e| e > 0)
                    .collect();
                m.dedup();
                m
            }
        }
    }
}

impl TrainingConfig {
    /// The paper's recipe for `data`: its CIFAR recipe (the defaults), or for
    /// SVHN its Section 4 SVHN recipe: a 152-layer ResNet trained for 50
    /// epochs, the learning rate divided by 10 after epochs 30 and 35 (and no
    /// augmentation, which the data set's kind selects).
    pub fn paper(data: DatasetConfig) -> Self {
        let svhn = data.kind == sd_data::DatasetKind::Svhn;
        let config = Self::new(data);
        match svhn {
            false => config,
            true => config
                .with_model(CifarResNetConfig::new().with_depth(152))
                .with_epochs(50)
                .with_schedule(LrScheduleConfig::new().with_milestones(Some(vec![30, 35]))),
        }
    }
}

/// Everything a training run needs; saved as `config.json` in the run folder.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// The network.
    #[config(default = "CifarResNetConfig::new()")]
    pub model: CifarResNetConfig,
    /// The data.
    pub data: DatasetConfig,
    /// The optimizer.
    #[config(default = "OptimizerConfig::new()")]
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    #[config(default = "LrScheduleConfig::new()")]
    pub schedule: LrScheduleConfig,
    /// Epochs. Default: 500.
    #[config(default = 500)]
    pub epochs: usize,
    /// Mini-batch size. Default: 128.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Seed of the weights, the data order, the augmentation and the gates. Default: 1.
    #[config(default = 1)]
    pub seed: u64,
    /// Evaluate the test set after every epoch (for the test-error curves of
    /// the paper's Figure 3). Default: true.
    #[config(default = true)]
    pub test_every_epoch: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sd_data::DatasetKind;

    #[test]
    fn the_paper_recipes() {
        let cifar = TrainingConfig::paper(DatasetConfig::new(DatasetKind::Cifar10));
        assert_eq!(
            (cifar.model.depth, cifar.epochs, cifar.batch_size),
            (110, 500, 128)
        );
        assert_eq!(cifar.schedule.milestones_for(cifar.epochs), [250, 375]);
        assert_eq!(cifar.optimizer.dampening, 0.0);
        assert!(cifar.optimizer.nesterov);
        let svhn = TrainingConfig::paper(DatasetConfig::new(DatasetKind::Svhn));
        assert_eq!((svhn.model.depth, svhn.epochs), (152, 50));
        assert_eq!(svhn.schedule.milestones_for(svhn.epochs), [30, 35]);
    }

    #[test]
    fn short_runs_drop_degenerate_milestones() {
        let schedule = LrScheduleConfig::new();
        assert_eq!(schedule.milestones_for(1), Vec::<usize>::new());
        assert_eq!(schedule.milestones_for(2), [1]);
        assert_eq!(schedule.milestones_for(5), [2, 3]);
    }
}
