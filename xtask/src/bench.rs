//! `cargo xtask bench`: the time of a training step (forward and backward) of
//! a CIFAR ResNet at a fixed batch, with every gate open, with the paper's
//! linear-decay schedule, and with every gate closed.
//!
//! Gates come from fixed, seeded sequences; each figure is the median of
//! `--steps` timed steps after warm-up steps. The predicted ratio weights each
//! stage's per-block cost (its share of the block time, measured by closing
//! that stage alone) by the blocks the schedule expects to run there.

use std::time::Instant;

use burn::tensor::{Distribution, Int, Tensor};
use clap::Args;
use sd_model::{CifarResNet, CifarResNetConfig, Gate, GateSampler, StepGates, StochasticResNet};
use sd_train::Backend;

#[derive(Args)]
pub struct BenchArgs {
    /// Backend: flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Device index within the backend.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Network depth, 6n+2.
    #[arg(long, default_value_t = 110)]
    depth: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Warm-up steps per configuration.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds of one forward+backward step with the given gates.
fn step(
    model: &CifarResNet,
    images: &Tensor<4>,
    targets: &Tensor<1, Int>,
    gates: &StepGates,
) -> f64 {
    let start = Instant::now();
    let logits = model.forward_stochastic(images.clone(), gates);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, targets.clone());
    let grads = loss.backward();
    // Reading one gradient back forces the whole step to finish on every backend.
    let g = model
        .conv1
        .weight
        .val()
        .grad(&grads)
        .expect("the stem always has a gradient");
    let _ = g.sum().into_scalar::<f32>();
    start.elapsed().as_secs_f64()
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let backend: Backend = args.backend.parse()?;
    let device = backend.device(args.device)?.autodiff();
    let config = CifarResNetConfig::new().with_depth(args.depth);
    config.validate()?;
    device.seed(1);
    let model = config.init(&device);
    let blocks = model.survival().len();
    let images = Tensor::<4>::random(
        [args.batch_size, 3, 32, 32],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let targets = Tensor::<1, Int>::from_data(
        burn::tensor::TensorData::new(
            (0..args.batch_size as i64)
                .map(|i| i % 10)
                .collect::<Vec<_>>(),
            [args.batch_size],
        ),
        &device,
    );
    let sampler = GateSampler::new(2016);
    let time = |gates: &dyn Fn(u64) -> StepGates| -> (f64, f64) {
        for i in 0..args.warmup {
            step(&model, &images, &targets, &gates(i as u64));
        }
        let mut times = Vec::new();
        let mut run = 0.0;
        for i in 0..args.steps {
            let g = gates(1000 + i as u64);
            run += g.blocks_run() as f64;
            times.push(step(&model, &images, &targets, &g));
        }
        (median(times), run / args.steps as f64)
    };
    println!(
        "ResNet-{} ({blocks} blocks), batch {}, {} backend, median of {} steps after {} warm-up",
        args.depth, args.batch_size, backend, args.steps, args.warmup
    );
    let (open, _) = time(&|_| StepGates::all_open(blocks));
    println!("all gates open:        {open:.3} s/step");
    let (paper, run) = time(&|s| model.draw_gates(&sampler, s, args.batch_size));
    println!(
        "paper's schedule:      {paper:.3} s/step ({run:.1} blocks run on average, expected {:.2})",
        model.expected_depth()
    );
    let (closed, _) = time(&|_| StepGates::all_closed(blocks));
    println!("all gates closed:      {closed:.3} s/step");

    // Each stage's share of the block time: the time saved by closing it alone.
    // Closing a stage saves a little more than its blocks' share of a step on a
    // CPU (fewer live buffers), so the shares are rescaled to sum to open - closed.
    let per_stage = blocks / 3;
    let mut saved = Vec::new();
    for stage in 0..3 {
        let range = stage * per_stage..(stage + 1) * per_stage;
        let gates = |_| {
            let mut g = StepGates::all_open(blocks);
            for l in range.clone() {
                g.blocks[l] = Gate::Closed;
            }
            g
        };
        let (without, _) = time(&gates);
        saved.push((open - without).max(0.0));
    }
    let total: f64 = saved.iter().sum();
    let mut predicted = closed;
    for (stage, s) in saved.iter().enumerate() {
        let range = stage * per_stage..(stage + 1) * per_stage;
        let per_block = (open - closed) * s / total.max(f64::MIN_POSITIVE) / per_stage as f64;
        let expected: f64 = model.survival()[range].iter().sum();
        predicted += per_block * expected;
        println!(
            "stage {}: {per_block:.4} s per block, {expected:.2} of {per_stage} expected to run",
            stage + 1
        );
    }
    println!(
        "stochastic/constant:   {:.3} (predicted from the per-stage block costs: {:.3})",
        paper / open,
        predicted / open
    );
    Ok(())
}
