//! Residual blocks and their shortcuts.
//!
//! - [`BasicBlock`]: the paper's `f = conv3x3-BN-ReLU-conv3x3-BN` (CIFAR, SVHN).
//! - [`Bottleneck`]: `conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN`, four times
//!   wider at the output (the ImageNet ResNet-152).
//! - [`Shortcut`]: the identity, or where the shape changes option A (2x2
//!   average pooling and zero channel padding, no parameters: the paper's CIFAR
//!   choice) or option B (a 1x1 projection convolution and batch norm).
//!
//! Every block wraps its branch in a [`StochasticDepth`] and computes
//! `relu(shortcut(x) + b * f(x))`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::Device;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

use sd_kernels::{batch_norm, conv2d};

use crate::stochastic_depth::{Pass, StochasticDepth, StochasticDepthConfig};

/// How a block's shortcut matches a change of shape (He et al., 2016, Section 3.3).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ShortcutKind {
    /// Option A: average-pool by the stride and pad the new channels with zeros.
    /// No parameters; the paper's CIFAR networks use it.
    PoolPad,
    /// Option B: a 1x1 convolution with the block's stride, then batch norm.
    Projection,
}

/// The MSR initialisation of the paper's code: normal with std `sqrt(2 / n)`,
/// `n = k * k * out_channels`; biases start at zero.
pub(crate) fn msr_init() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

pub(crate) fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let pad = kernel / 2;
    let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .with_initializer(msr_init())
        .init(device);
    // The paper's code zeroes the biases; Burn would draw them like the weights.
    if bias {
        conv.bias = Some(Initializer::Zeros.init([channels[1]], device));
    }
    conv
}

/// The shortcut of a block.
#[derive(Module, Debug)]
pub struct Shortcut {
    /// Option B's projection convolution, when the shape changes.
    pub projection: Option<Conv2d>,
    /// Option B's batch norm, when the shape changes.
    pub projection_bn: Option<BatchNorm>,
    /// Stride of the block.
    pub stride: usize,
    /// Channels in.
    pub channels_in: usize,
    /// Channels out.
    pub channels_out: usize,
}

impl Shortcut {
    /// A shortcut from `channels[0]` to `channels[1]` channels at `stride`.
    pub fn new(kind: ShortcutKind, channels: [usize; 2], stride: usize, device: &Device) -> Self {
        let [channels_in, channels_out] = channels;
        let changes = stride != 1 || channels_in != channels_out;
        let (projection, projection_bn) = match (kind, changes) {
            (ShortcutKind::Projection, true) => (
                Some(conv(channels, 1, stride, false, device)),
                Some(BatchNormConfig::new(channels_out).init(device)),
            ),
            _ => (None, None),
        };
        Self {
            projection,
            projection_bn,
            stride,
            channels_in,
            channels_out,
        }
    }

    /// # Shapes
    ///
    /// `[batch, channels_in, h, w]` -> `[batch, channels_out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if let (Some(conv), Some(bn)) = (&self.projection, &self.projection_bn) {
            return bn.forward(conv.forward(x));
        }
        let x = match self.stride {
            1 => x,
            s => avg_pool2d(x, AvgPoolOptions::new([s, s])),
        };
        let [batch, channels, h, w] = x.dims();
        if channels >= self.channels_out {
            return x;
        }
        // Zero channels appended after the existing ones.
        let zeros = Tensor::zeros([batch, self.channels_out - channels, h, w], &x.device());
        Tensor::cat(vec![x, zeros], 1)
    }
}

/// The paper's residual block: `relu(shortcut(x) + b * bn(conv(relu(bn(conv(x))))))`.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3x3 convolution, carrying the block's stride.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// The shortcut.
    pub shortcut: Shortcut,
    /// The stochastic-depth gate around the branch.
    pub depth: StochasticDepth,
}

/// Everything a block needs besides its channel counts.
#[derive(Debug, Clone)]
pub struct BlockOptions {
    /// Shortcut for shape changes.
    pub shortcut: ShortcutKind,
    /// Biases in the branch's convolutions (the paper's code has them).
    pub conv_bias: bool,
    /// This block's gate.
    pub depth: StochasticDepthConfig,
}

impl BasicBlock {
    /// A block from `channels[0]` to `channels[1]` channels; `stride` applies to `conv1`.
    pub fn new(channels: [usize; 2], stride: usize, opts: &BlockOptions, device: &Device) -> Self {
        let out = channels[1];
        Self {
            conv1: conv(channels, 3, stride, opts.conv_bias, device),
            bn1: BatchNormConfig::new(out).init(device),
            conv2: conv([out, out], 3, 1, opts.conv_bias, device),
            bn2: BatchNormConfig::new(out).init(device),
            shortcut: Shortcut::new(opts.shortcut, channels, stride, device),
            depth: opts.depth.init(),
        }
    }

    /// The residual branch `f`.
    pub fn branch(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(batch_norm(&self.bn1, conv2d(&self.conv1, x)));
        batch_norm(&self.bn2, conv2d(&self.conv2, x))
    }

    /// # Shapes
    ///
    /// `[batch, c_in, h, w]` -> `[batch, c_out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>, pass: Pass<'_>) -> Tensor<4> {
        let shortcut = self.shortcut.forward(x.clone());
        let sum = self.depth.forward(x, shortcut, pass, |x| self.branch(x));
        relu(sum)
    }
}

/// The bottleneck residual block of the deeper ImageNet ResNets.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 reduction.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// 3x3 convolution, carrying the block's stride.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// 1x1 expansion.
    pub conv3: Conv2d,
    /// Batch norm after `conv3`.
    pub bn3: BatchNorm,
    /// The shortcut.
    pub shortcut: Shortcut,
    /// The stochastic-depth gate around the branch.
    pub depth: StochasticDepth,
}

impl Bottleneck {
    /// A block from `channels[0]` channels through `width` to `channels[1]` channels.
    pub fn new(
        channels: [usize; 2],
        width: usize,
        stride: usize,
        opts: &BlockOptions,
        device: &Device,
    ) -> Self {
        let [c_in, c_out] = channels;
        Self {
            conv1: conv([c_in, width], 1, 1, opts.conv_bias, device),
            bn1: BatchNormConfig::new(width).init(device),
            conv2: conv([width, width], 3, stride, opts.conv_bias, device),
            bn2: BatchNormConfig::new(width).init(device),
            conv3: conv([width, c_out], 1, 1, opts.conv_bias, device),
            bn3: BatchNormConfig::new(c_out).init(device),
            shortcut: Shortcut::new(opts.shortcut, channels, stride, device),
            depth: opts.depth.init(),
        }
    }

    /// The residual branch `f`.
    pub fn branch(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(batch_norm(&self.bn1, self.conv1.forward(x)));
        let x = relu(batch_norm(&self.bn2, conv2d(&self.conv2, x)));
        batch_norm(&self.bn3, self.conv3.forward(x))
    }

    /// # Shapes
    ///
    /// `[batch, c_in, h, w]` -> `[batch, c_out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>, pass: Pass<'_>) -> Tensor<4> {
        let shortcut = self.shortcut.forward(x.clone());
        let sum = self.depth.forward(x, shortcut, pass, |x| self.branch(x));
        relu(sum)
    }
}

impl Default for ShortcutKind {
    fn default() -> Self {
        Self::PoolPad
    }
}
