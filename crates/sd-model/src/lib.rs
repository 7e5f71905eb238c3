//! Stochastic depth for Burn.
//!
//! An implementation of *Deep Networks with Stochastic Depth* (Huang, Sun, Liu,
//! Sedra and Weinberger, ECCV 2016, <https://arxiv.org/abs/1603.09382>): during
//! training each residual block `l` runs its branch only with probability
//! `p_l`, and is otherwise replaced by its shortcut; at test time every block
//! runs with its branch scaled by `p_l`.
//!
//! The crate never names a backend: everything runs on whatever `Device` the
//! caller passes.
//!
//! # Modules
//!
//! - [`survival`]: the survival rules (linear decay, uniform, constant, explicit)
//!   as a pure function of the block count.
//! - [`gate`]: gate granularity, scaling convention, and the seeded, stateless
//!   [`GateSampler`](gate::GateSampler).
//! - [`stochastic_depth`]: the [`StochasticDepth`](stochastic_depth::StochasticDepth)
//!   layer that wraps any residual branch.
//! - [`block`]: basic and bottleneck blocks, shortcuts A and B.
//! - [`resnet`]: the CIFAR ResNets (6n+2) and the ImageNet ResNet-152.
//!
//! # Example
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use sd_model::gate::GateSampler;
//! use sd_model::StochasticResNet;
//! use sd_model::resnet::CifarResNetConfig;
//!
//! let device = Device::flex();
//! let model = CifarResNetConfig::new().with_depth(20).init(&device);
//! assert_eq!(model.survival().len(), 9);
//!
//! let images = Tensor::<4>::zeros([2, 3, 32, 32], &device);
//! let gates = model.draw_gates(&GateSampler::new(1), 0, 2);
//! let train_logits = model.forward_stochastic(images.clone(), &gates);
//! let eval_logits = model.forward(images);
//! assert_eq!(train_logits.dims(), [2, 10]);
//! assert_eq!(eval_logits.dims(), [2, 10]);
//! ```
#![warn(missing_docs)]

pub mod block;
pub mod gate;
pub mod resnet;
pub mod stochastic_depth;
pub mod survival;

pub use gate::{Gate, GateSampler, Granularity, Scaling, StepGates};
pub use resnet::{
    CifarResNet, CifarResNetConfig, ImageNetResNet, ImageNetResNetConfig, ModelError,
    StochasticResNet,
};
pub use stochastic_depth::{Pass, StochasticDepth, StochasticDepthConfig};
pub use survival::{SurvivalError, SurvivalRule};
