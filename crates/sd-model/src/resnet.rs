//! The paper's networks: the CIFAR ResNets (6n+2 layers) and the ImageNet ResNet-152.
//!
//! Stochastic depth applies to every residual block and never to the stem or
//! the head. Block `l` of `L` gets the survival probability `p_l` of the
//! configured [`SurvivalRule`], counted from the input (`l = 1`).
//!
//! # Parameter count of ResNet-110
//!
//! With convolution biases, as in the paper's Torch code, ResNet-110 has
//! 1,732,010 parameters (the paper's "1.7M"): the stem (3x3 conv 3->16 with
//! bias, 448, and its batch norm, 32), 18 blocks of 16 channels (4,704 each),
//! 18 of 32 (the first 14,016, then 18,624 each), 18 of 64 (the first 55,680,
//! then 74,112 each) and the 64->10 classifier (650). Batch-norm running
//! statistics are state, not parameters. Without the 4,048 convolution biases
//! (redundant before batch norm) the count is 1,727,962.

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::block::{BasicBlock, BlockOptions, Bottleneck, ShortcutKind, conv};
use crate::gate::{GateSampler, Granularity, Scaling, StepGates};
use crate::stochastic_depth::{Pass, StochasticDepthConfig};
use crate::survival::{SurvivalError, SurvivalRule};

/// Why a network configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A CIFAR ResNet depth that is not `6n + 2` with `n >= 1`.
    #[error("depth {0} is not of the form 6n+2 (8, 14, 20, 32, 44, 56, 110, 1202, ...)")]
    Depth(usize),
    /// No classes to predict.
    #[error("the classifier needs at least one class, got {0}")]
    Classes(usize),
    /// A bad survival schedule.
    #[error(transparent)]
    Survival(#[from] SurvivalError),
}

/// The CIFAR ResNet of He et al. (2016), Section 4.2, with stochastic depth.
///
/// `depth = 6n + 2`: a 3x3 stem of 16 filters, then three stages of `n` basic
/// blocks with 16, 32 and 64 filters (the 2nd and 3rd halve the resolution),
/// global average pooling and a linear classifier.
#[derive(Config, Debug)]
pub struct CifarResNetConfig {
    /// Number of layers, `6n + 2`. Default: 110, the paper's main network.
    #[config(default = 110)]
    pub depth: usize,
    /// Number of classes. Default: 10 (CIFAR-10).
    #[config(default = 10)]
    pub num_classes: usize,
    /// Survival rule. Default: linear decay to `p_L = 0.5` (paper, Section 3).
    #[config(default = "SurvivalRule::LinearDecay { p_last: 0.5 }")]
    pub survival: SurvivalRule,
    /// Gate granularity. Default: one gate per block per mini-batch (paper).
    #[config(default = "Granularity::Batch")]
    pub granularity: Granularity,
    /// Where branches are rescaled. Default: at test time by `p_l` (paper, Eq. 5).
    #[config(default = "Scaling::AtTest")]
    pub scaling: Scaling,
    /// Shortcut for shape changes. Default: option A, pooling and zero padding (paper).
    #[config(default = "ShortcutKind::PoolPad")]
    pub shortcut: ShortcutKind,
    /// Biases in every convolution. Default: true, as in the paper's Torch code.
    #[config(default = true)]
    pub conv_bias: bool,
}

impl CifarResNetConfig {
    /// Blocks per stage, `n`, or the error that names the bad depth.
    pub fn blocks_per_stage(&self) -> Result<usize, ModelError> {
        if self.depth < 8 || (self.depth - 2) % 6 != 0 {
            return Err(ModelError::Depth(self.depth));
        }
        Ok((self.depth - 2) / 6)
    }

    /// Checks everything a user can get wrong, before any allocation.
    pub fn validate(&self) -> Result<Vec<f64>, ModelError> {
        let n = self.blocks_per_stage()?;
        if self.num_classes == 0 {
            return Err(ModelError::Classes(0));
        }
        Ok(self.survival.probabilities(3 * n)?)
    }

    /// Builds the network.
    ///
    /// # Panics
    ///
    /// If [`validate`](Self::validate) fails; the message names the value.
    pub fn init(&self, device: &Device) -> CifarResNet {
        let survival = self.validate().unwrap_or_else(|e| panic!("{e}"));
        let n = survival.len() / 3;
        let mut blocks = Vec::with_capacity(survival.len());
        let mut channels = 16;
        for (stage, width) in [16, 32, 64].into_iter().enumerate() {
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let opts = self.block_options(survival[blocks.len()]);
                blocks.push(BasicBlock::new([channels, width], stride, &opts, device));
                channels = width;
            }
        }
        let net = CifarResNet {
            conv1: conv([3, 16], 3, 1, self.conv_bias, device),
            bn1: BatchNormConfig::new(16).init(device),
            blocks,
            fc: LinearConfig::new(64, self.num_classes).init(device),
            survival,
            granularity: self.granularity,
        };
        net
    }

    fn block_options(&self, survival: f64) -> BlockOptions {
        BlockOptions {
            shortcut: self.shortcut,
            conv_bias: self.conv_bias,
            depth: StochasticDepthConfig::new(survival)
                .with_granularity(self.granularity)
                .with_scaling(self.scaling),
        }
    }
}

/// A CIFAR ResNet with stochastic depth; see [`CifarResNetConfig`].
#[derive(Module, Debug)]
pub struct CifarResNet {
    /// 3x3 stem convolution, 3 -> 16 channels.
    pub conv1: Conv2d,
    /// Batch norm of the stem.
    pub bn1: BatchNorm,
    /// The `3n` residual blocks, from the input to the output.
    pub blocks: Vec<BasicBlock>,
    /// The classifier.
    pub fc: Linear,
    /// `p_1..p_L`.
    pub survival: Vec<f64>,
    /// Gate granularity.
    #[module(skip)]
    pub granularity: Granularity,
}

impl CifarResNet {
    /// The stem: `relu(bn(conv3x3(images)))`, `[b, 3, h, w]` -> `[b, 16, h, w]`.
    pub fn stem(&self, images: Tensor<4>) -> Tensor<4> {
        relu(sd_kernels::batch_norm(
            &self.bn1,
            sd_kernels::conv2d(&self.conv1, images),
        ))
    }
}

impl StochasticResNet for CifarResNet {
    fn survival(&self) -> &[f64] {
        &self.survival
    }

    fn granularity(&self) -> Granularity {
        self.granularity
    }

    fn run<'g>(&self, images: Tensor<4>, pass: &dyn Fn(usize) -> Pass<'g>) -> Tensor<2> {
        let mut x = self.stem(images);

        // Residual stages: [b, 16, h, w] -> [b, 64, h / 4, w / 4].
        for (l, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, pass(l));
        }

        // Head: global average pooling, then the classifier.
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.fc.forward(pooled)
    }
}

/// What the paper's networks share: a stem, residual blocks with stochastic
/// depth, a head; an evaluation pass and a stochastic training pass.
pub trait StochasticResNet {
    /// Survival probabilities `p_1..p_L`.
    fn survival(&self) -> &[f64];

    /// Gate granularity.
    fn granularity(&self) -> Granularity;

    /// Stem, blocks (block `l` makes pass `pass(l)`), head.
    fn run<'g>(&self, images: Tensor<4>, pass: &dyn Fn(usize) -> Pass<'g>) -> Tensor<2>;

    /// Evaluation: every block runs, deterministically.
    ///
    /// # Shapes
    ///
    /// `[batch, 3, h, w]` -> `[batch, num_classes]`
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.run(images, &|_| Pass::Eval)
    }

    /// A training step's forward pass with the given gates, one per block.
    ///
    /// # Panics
    ///
    /// If `gates` does not hold one gate per block.
    fn forward_stochastic(&self, images: Tensor<4>, gates: &StepGates) -> Tensor<2> {
        let blocks = self.survival().len();
        assert_eq!(gates.blocks.len(), blocks, "one gate per residual block");
        self.run(images, &|l| Pass::Train(&gates.blocks[l]))
    }

    /// Draws the gates of training step `step` from `sampler`.
    fn draw_gates(&self, sampler: &GateSampler, step: u64, batch: usize) -> StepGates {
        sampler.draw(step, self.survival(), self.granularity(), batch)
    }

    /// Expected number of blocks run in a training step.
    fn expected_depth(&self) -> f64 {
        self.survival().iter().sum()
    }
}

/// The bottleneck ResNet of He et al. (2016) for ImageNet, with stochastic
/// depth: ResNet-152 by default, as in the paper's Section 4 (ImageNet).
#[derive(Config, Debug)]
pub struct ImageNetResNetConfig {
    /// Bottleneck blocks per stage. Default: `[3, 8, 36, 3]` (ResNet-152).
    #[config(default = "[3, 8, 36, 3]")]
    pub layers: [usize; 4],
    /// Number of classes. Default: 1000.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Survival rule. Default: linear decay to `p_L = 0.5`.
    #[config(default = "SurvivalRule::LinearDecay { p_last: 0.5 }")]
    pub survival: SurvivalRule,
    /// Gate granularity. Default: per mini-batch.
    #[config(default = "Granularity::Batch")]
    pub granularity: Granularity,
    /// Where branches are rescaled. Default: at test time.
    #[config(default = "Scaling::AtTest")]
    pub scaling: Scaling,
}

impl ImageNetResNetConfig {
    /// Checks the configuration and returns `p_1..p_L`.
    pub fn validate(&self) -> Result<Vec<f64>, ModelError> {
        if self.num_classes == 0 {
            return Err(ModelError::Classes(0));
        }
        Ok(self.survival.probabilities(self.layers.iter().sum())?)
    }

    /// Builds the network (shortcut B, no convolution biases, as in He et al.).
    ///
    /// # Panics
    ///
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self, device: &Device) -> ImageNetResNet {
        let survival = self.validate().unwrap_or_else(|e| panic!("{e}"));
        let mut blocks = Vec::with_capacity(survival.len());
        let mut channels = 64;
        for (stage, &count) in self.layers.iter().enumerate() {
            let width = 64 << stage;
            for i in 0..count {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let opts = BlockOptions {
                    shortcut: ShortcutKind::Projection,
                    conv_bias: false,
                    depth: StochasticDepthConfig::new(survival[blocks.len()])
                        .with_granularity(self.granularity)
                        .with_scaling(self.scaling),
                };
                let block = Bottleneck::new([channels, width * 4], width, stride, &opts, device);
                blocks.push(block);
                channels = width * 4;
            }
        }
        let net = ImageNetResNet {
            conv1: conv([3, 64], 7, 2, false, device),
            bn1: BatchNormConfig::new(64).init(device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            blocks,
            fc: LinearConfig::new(channels, self.num_classes).init(device),
            survival,
            granularity: self.granularity,
        };
        net
    }
}

/// An ImageNet bottleneck ResNet with stochastic depth; see [`ImageNetResNetConfig`].
#[derive(Module, Debug)]
pub struct ImageNetResNet {
    /// 7x7 stride-2 stem convolution.
    pub conv1: Conv2d,
    /// Batch norm of the stem.
    pub bn1: BatchNorm,
    /// 3x3 stride-2 max pooling after the stem.
    pub pool: MaxPool2d,
    /// The bottleneck blocks, from the input to the output.
    pub blocks: Vec<Bottleneck>,
    /// The classifier.
    pub fc: Linear,
    /// `p_1..p_L`.
    pub survival: Vec<f64>,
    /// Gate granularity.
    #[module(skip)]
    pub granularity: Granularity,
}

impl StochasticResNet for ImageNetResNet {
    fn survival(&self) -> &[f64] {
        &self.survival
    }

    fn granularity(&self) -> Granularity {
        self.granularity
    }

    fn run<'g>(&self, images: Tensor<4>, pass: &dyn Fn(usize) -> Pass<'g>) -> Tensor<2> {
        // Stem: [b, 3, h, w] -> [b, 64, h / 4, w / 4].
        let x = relu(sd_kernels::batch_norm(
            &self.bn1,
            self.conv1.forward(images),
        ));
        let mut x = self.pool.forward(x);

        // Bottleneck stages: -> [b, 2048, h / 32, w / 32].
        for (l, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, pass(l));
        }

        // Head.
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.fc.forward(pooled)
    }
}

/// Draws every lazily initialised weight now, in declaration order.
///
/// Burn initialises parameters on first use. Forcing it right after `init`
/// makes the weights a function of the device's seed at that moment alone,
/// whatever the program draws afterwards. Call it on the device you train on
/// (an autodiff device for training): a weight drawn on a plain device is not
/// tracked for gradients, even after the module is forked to an autodiff one.
pub fn initialize<M: Module>(module: M) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
    module
}

/// The number of trainable parameters: Burn's `num_params` also counts the
/// batch-norm running statistics, which are state, not parameters.
pub fn trainable_params<M: Module>(module: &M) -> usize {
    #[derive(Default)]
    struct Count {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let running = matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            );
            if !running {
                self.total += param.shape().num_elements();
            }
        }
    }
    let mut count = Count::default();
    module.visit(&mut count);
    count.total
}
