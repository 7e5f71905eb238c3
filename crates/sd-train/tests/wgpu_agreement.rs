//! The `wgpu` backend against `flex`, on the same weights and inputs: a
//! forward pass in evaluation, and a stochastic training step (loss, gradients,
//! and the parameters after one optimizer step) of a ResNet-8 at batch 128.
//!
//! wgpu runs on whatever Vulkan driver the machine has; CI installs Mesa's
//! software driver, lavapipe, from Debian's bookworm-backports (`.ci/install-lavapipe`)
//! and sets `SD_REQUIRE_WGPU=1`, which turns a missing adapter into a failure.
//! Elsewhere the test says why it skipped.
//!
//! # Tolerance
//!
//! Both backends compute in f32 and differ only in the order of their sums. A
//! sum of `n` products carries a relative error of at most
//! `gamma_n = n u / (1 - n u)`, `u = 2^-24`. The longest sums of the forward
//! pass are the 64-channel 3x3 convolutions, `n = 576`, `gamma = 3.4e-5`; a
//! ResNet of depth `d` stacks `d - 1` convolutions and the classifier on its
//! longest path, so the logits may differ by `d gamma_576` of their scale
//! (ResNet-8: 2.7e-4). The backward pass runs that path again and then sums
//! every weight gradient over `128 * 32 * 32` positions:
//! `2 d gamma_576 + gamma_131072` (8.4e-3). The
//! optimizer's update is a gradient times a constant plus the (identical)
//! weights, so it inherits the gradients' bound. Mesa 22's lavapipe, which this
//! test exists to catch, is off by whole units at this batch size.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use burn::train::TrainStep;
use sd_model::{CifarResNetConfig, Gate, StochasticResNet};
use sd_train::Backend;
use sd_train::config::{DroppedBlockUpdate, OptimizerConfig};
use sd_train::step::{Classifier, TrainBatch};

/// ResNet-8: three blocks, seven convolutions on the longest path; small
/// enough for lavapipe to run a batch of 128 in CI.
const DEPTH: usize = 8;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

fn forward_tolerance() -> f64 {
    DEPTH as f64 * gamma(576)
}

fn gradient_tolerance() -> f64 {
    2.0 * DEPTH as f64 * gamma(576) + gamma(128 * 32 * 32)
}

/// The wgpu device, or `None` with the reason printed; a failure where CI asks for one.
fn wgpu_device() -> Option<Device> {
    match Backend::Wgpu.device(0) {
        Ok(device) => Some(device),
        Err(error) if std::env::var_os("SD_REQUIRE_WGPU").is_some() => {
            panic!("SD_REQUIRE_WGPU is set, but: {error}")
        }
        Err(error) => {
            eprintln!("skipped, no wgpu device: {error}");
            None
        }
    }
}

/// `max |a - b| / max |b|`, on the host.
fn gap<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let a = a.into_data().try_to_vec::<f32>().expect("f32");
    let b = b.into_data().try_to_vec::<f32>().expect("f32");
    assert_eq!(a.len(), b.len());
    let scale = b
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs() as f64))
        .max(f64::MIN_POSITIVE);
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    diff / scale
}

fn check(what: &str, got: f64, tolerance: f64) {
    println!("{what}: relative gap {got:.2e} (tolerance {tolerance:.2e})");
    assert!(
        got.is_finite() && got <= tolerance,
        "{what}: {got:.3e} > {tolerance:.3e}"
    );
}

/// A batch of 128 images and labels, the same on every device it is put on.
struct Batch {
    images: TensorData,
    targets: TensorData,
}

impl Batch {
    fn new(seed: u64) -> Self {
        let size = 128;
        let flex = Device::flex();
        flex.seed(seed);
        let images = Tensor::<4>::random([size, 3, 32, 32], Distribution::Normal(0.0, 1.0), &flex);
        let targets: Vec<i64> = (0..size as i64).map(|i| (i * 7) % 10).collect();
        Self {
            images: images.into_data(),
            targets: TensorData::new(targets, [size]),
        }
    }

    fn images(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(self.images.clone(), device)
    }

    fn train(&self, device: &Device, step: u64) -> TrainBatch {
        TrainBatch {
            images: self.images(device),
            targets: Tensor::<1, Int>::from_data(self.targets.clone(), device),
            step,
        }
    }
}

#[test]
fn wgpu_agrees_with_flex() {
    let Some(wgpu) = wgpu_device() else { return };
    let flex = Device::flex();
    flex.seed(7);
    let net = sd_model::resnet::initialize(
        CifarResNetConfig::new()
            .with_depth(DEPTH)
            .init(&flex.clone().autodiff()),
    );
    let model = Classifier::new(net, 2016, DroppedBlockUpdate::DecayAndMomentum);
    let on_wgpu = model.clone().fork(&wgpu.clone().autodiff());

    // Evaluation: every block runs, scaled by its survival probability.
    let start = std::time::Instant::now();
    let data = Batch::new(11);
    let eval_flex = model.valid().net.forward(data.images(&flex));
    let eval_wgpu = on_wgpu.valid().net.forward(data.images(&wgpu));
    check(
        "eval logits",
        gap(eval_wgpu, eval_flex),
        forward_tolerance(),
    );
    println!("({:.1} s)", start.elapsed().as_secs_f64());

    // A training step that drops the middle block and runs the other two: the
    // first such step of seed 2016.
    let step = (0..200u64)
        .find(|&s| {
            let g = model.net.draw_gates(&model.sampler, s, 128).blocks;
            matches!(g[..], [Gate::Open, Gate::Closed, Gate::Open])
        })
        .expect("a step with gates (open, closed, open) among the first 200");
    let (step_flex, step_wgpu) = (
        data.train(&flex.clone().autodiff(), step),
        data.train(&wgpu.clone().autodiff(), step),
    );
    let out_flex = model.step(step_flex);
    let out_wgpu = on_wgpu.step(step_wgpu);
    check(
        "training loss",
        gap(out_wgpu.item.loss.clone(), out_flex.item.loss.clone()),
        forward_tolerance(),
    );
    println!("({:.1} s)", start.elapsed().as_secs_f64());

    let params = |m: &Classifier| -> Vec<(&'static str, Param<Tensor<4>>)> {
        vec![
            ("stem conv weight", m.net.conv1.weight.clone()),
            ("block 1 conv1 weight", m.net.blocks[0].conv1.weight.clone()),
            (
                "block 2 (dropped) conv1 weight",
                m.net.blocks[1].conv1.weight.clone(),
            ),
            ("block 3 conv2 weight", m.net.blocks[2].conv2.weight.clone()),
        ]
    };
    for ((name, pf), (_, pw)) in params(&model).into_iter().zip(params(&on_wgpu)) {
        let gf = out_flex.grads.get::<4>(pf.id).map(|g| g.to_device(&flex));
        let gw = out_wgpu.grads.get::<4>(pw.id).map(|g| g.to_device(&flex));
        match (gf, gw) {
            (Some(gf), Some(gw)) => check(
                &format!("gradient of {name}"),
                gap(gw, gf),
                gradient_tolerance(),
            ),
            (None, None) if name.contains("dropped") => {
                println!("gradient of {name}: none on either backend")
            }
            (gf, gw) => panic!(
                "{name}: flex has a gradient {}, wgpu {}",
                gf.is_some(),
                gw.is_some()
            ),
        }
    }
    let fc_flex = out_flex
        .grads
        .get::<2>(model.net.fc.weight.id)
        .expect("fc gradient");
    let fc_wgpu = out_wgpu
        .grads
        .get::<2>(on_wgpu.net.fc.weight.id)
        .expect("fc gradient");
    check(
        "gradient of the classifier",
        gap(fc_wgpu.to_device(&flex), fc_flex),
        gradient_tolerance(),
    );

    println!("({:.1} s)", start.elapsed().as_secs_f64());

    // One optimizer step of the paper's SGD.
    let before = params(&model);
    let mut optim_flex = OptimizerConfig::new().sgd().init();
    let mut optim_wgpu = OptimizerConfig::new().sgd().init();
    let after_flex = model
        .clone()
        .optimize(&mut optim_flex, 0.1.into(), out_flex.grads);
    let after_wgpu = on_wgpu
        .clone()
        .optimize(&mut optim_wgpu, 0.1.into(), out_wgpu.grads);
    for (((name, b), (_, af)), (_, aw)) in before
        .iter()
        .zip(params(&after_flex))
        .zip(params(&after_wgpu))
    {
        let (b, af, aw) = (
            b.val().inner(),
            af.val().inner(),
            aw.val().inner().to_device(&flex),
        );
        let moved = gap(aw.clone(), af.clone());
        check(
            &format!("{name} after the step"),
            moved,
            gradient_tolerance(),
        );
        check(
            &format!("update of {name}"),
            gap(aw - b.clone(), af - b),
            gradient_tolerance(),
        );
    }
}
