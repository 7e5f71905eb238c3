//! Hand-written CPU kernels for Burn's `flex` backend.
//!
//! Burn lets a crate add operations to a backend without forking it (its
//! backend-extension API). This crate adds the bulk of a CIFAR ResNet's
//! step, with hand-written gradients where training needs them:
//!
//! - the 3x3, stride-1, padding-1 convolution, as per-image im2col and one
//!   gemm each ([`conv`]);
//! - batch normalisation with the batch's statistics, in four passes over
//!   memory, and with given statistics for evaluation, in one ([`batch_norm`]).
//!
//! [`conv2d`] and [`batch_norm`](fn@batch_norm) are the entry points for models: they run a
//! Burn [`Conv2d`] or [`BatchNorm`] through these kernels when the tensor lives
//! on the flex backend, the layer is one they compute and the data is `f32`,
//! and through the module's own `forward` otherwise, so a model that calls
//! them runs unchanged on every backend. The kernels can be switched off, for
//! comparisons, with [`set_enabled`] or `SD_KERNELS=off` in the environment.

pub mod batch_norm;
pub mod conv;
mod extension;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::{Dispatch, DispatchDevice};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor};

pub use extension::{BatchNormBackend, BatchNormEvalBackend, Conv3x3Backend};

/// 0: not decided yet, 1: on, 2: off.
static ENABLED: AtomicU8 = AtomicU8::new(0);

/// Whether [`conv2d`] may use the hand-written kernels: on unless
/// [`set_enabled`] said otherwise or the environment holds `SD_KERNELS=off`.
pub fn enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    match ENABLED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => *FROM_ENV.get_or_init(|| {
            !matches!(
                std::env::var("SD_KERNELS").as_deref(),
                Ok("off" | "0" | "false")
            )
        }),
    }
}

/// Switches the hand-written kernels on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether `device` is the flex backend, with or without autodiff.
pub fn is_flex(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// Whether `conv` is a convolution these kernels compute.
fn is_3x3_same(conv: &Conv2d) -> bool {
    conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(
            conv.padding,
            PaddingConfig2d::Explicit(1, 1, 1, 1) | PaddingConfig2d::Same
        )
}

/// `conv.forward(x)`, through the hand-written kernels where they apply.
///
/// # Shapes
///
/// `[batch, channels_in, h, w]` -> `[batch, channels_out, h', w']`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let fast = enabled() && is_3x3_same(conv) && x.dtype() == DType::F32 && is_flex(&x.device());
    if !fast {
        return conv.forward(x);
    }
    let weight = conv.weight.val();
    let out = match &conv.bias {
        Some(bias) => <Dispatch as Conv3x3Backend>::conv3x3_bias(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.val().into_dispatch(),
        ),
        None => <Dispatch as Conv3x3Backend>::conv3x3(x.into_dispatch(), weight.into_dispatch()),
    };
    Tensor::from_dispatch(out)
}

/// `bn.forward(x)`, through the hand-written kernels on flex.
///
/// Training mode (an autodiff device and the layer's training flag on) uses
/// the batch's statistics and updates the running ones exactly as Burn's
/// module does; evaluation on a plain flex device normalises with the running
/// statistics in one pass. Anything else is Burn's module.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if !(enabled() && x.dtype() == DType::F32 && is_flex(&device)) {
        return bn.forward(x);
    }
    if !device.is_autodiff() {
        let out = <Dispatch as BatchNormEvalBackend>::batch_norm_eval(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.running_mean.value().to_device(&device).into_dispatch(),
            bn.running_var.value().to_device(&device).into_dispatch(),
            bn.epsilon,
        );
        return Tensor::from_dispatch(out);
    }
    if !bn.training.is_enabled() {
        return bn.forward(x);
    }
    let (out, mean, var) = <Dispatch as BatchNormBackend>::batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
    );
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    let momentum = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean.update(
        running_mean
            .mul_scalar(1.0 - momentum)
            .add(mean.detach().mul_scalar(momentum))
            .detach(),
    );
    bn.running_var.update(
        running_var
            .mul_scalar(1.0 - momentum)
            .add(var.detach().mul_scalar(momentum))
            .detach(),
    );
    Tensor::from_dispatch(out)
}
