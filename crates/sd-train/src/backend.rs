//! Choosing where tensors live: the backend and the device, at run time.
//!
//! Burn 0.22 has no backend type parameter; a [`Device`] names the backend.
//! Training runs on `device.autodiff()`; evaluation on the plain device.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceType};

use crate::error::TrainError;

/// The backends this build can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend, multi-threaded: the fastest CPU choice.
    Flex,
    /// The `ndarray` CPU backend (deprecated upstream, about 15x slower than `flex`).
    Ndarray,
    /// GPUs through wgpu (Vulkan, Metal, DirectX or WebGPU).
    Wgpu,
}

/// Names accepted by [`Backend::from_str`].
pub const BACKEND_NAMES: &str = "flex, ndarray, wgpu";

impl FromStr for Backend {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "wgpu" => Ok(Self::Wgpu),
            // Burn's CUDA backend downloads a prebuilt LLVM while it builds,
            // which an offline build cannot do (README, GPUs); wgpu reaches
            // NVIDIA GPUs through Vulkan.
            "cuda" => Err(TrainError::setting(
                "--backend",
                "cuda",
                "one of flex, ndarray, wgpu: this build has no CUDA backend; \
                 on an NVIDIA GPU use --backend wgpu (Vulkan)",
            )),
            _ => Err(TrainError::setting(
                "--backend",
                s,
                &format!("one of {BACKEND_NAMES}"),
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        })
    }
}

impl Backend {
    fn device_type(self) -> DeviceType {
        match self {
            Self::Flex => DeviceType::Flex,
            Self::Ndarray => DeviceType::NdArray,
            Self::Wgpu => DeviceType::Wgpu,
        }
    }

    /// The devices this backend sees, in Burn's order.
    pub fn devices(self) -> Vec<Device> {
        Device::enumerate(self.device_type()).into_iter().collect()
    }

    /// Device number `index` of this backend, or an error naming what exists.
    pub fn device(self, index: usize) -> Result<Device, TrainError> {
        let devices = self.devices();
        match devices.into_iter().nth(index) {
            Some(device) => Ok(device),
            None if index == 0 => Err(TrainError::Device(format!(
                "the {self} backend found no device{}; use --backend flex to train on the CPU, \
                 or run `cargo xtask devices` to see what each backend finds",
                if self == Self::Wgpu {
                    " (no GPU adapter and no Vulkan driver such as Mesa's lavapipe)"
                } else {
                    ""
                }
            ))),
            None => {
                let count = self.devices().len();
                let expected = format!(
                    "an index below {count}: the {self} backend has {count} device(s); \
                     see `cargo xtask devices`"
                );
                Err(TrainError::setting("--device", index, &expected))
            }
        }
    }
}
