//! `cargo xtask bench`: what stochastic depth saves, measured.
//!
//! At a fixed batch it times a CIFAR ResNet's training step (forward and
//! backward) with every gate open, under the paper's linear-decay schedule,
//! with every gate closed, and with each stage's gates closed alone; then the
//! network's inference throughput; and the heap at its peak in each.
//!
//! The configurations are timed in interleaved rounds (one step of each per
//! round), so that a slow spell of a shared machine lands on all of them
//! alike; the figures are medians over the timed rounds after warm-up rounds.
//! Gates come from fixed, seeded sequences.
//!
//! The prediction: closing stage `s` alone saves `n_s * c_s` seconds, which
//! gives each of its blocks the cost `c_s`; a step of the paper's schedule that
//! skips `n_s - k_s` blocks of stage `s` should take `open - sum (n_s - k_s) c_s`.
//! The machinery itself costs nothing when the measured mean matches the mean
//! of these predictions over the same gate draws.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use clap::Args;
use sd_model::{CifarResNet, CifarResNetConfig, Gate, GateSampler, StepGates, StochasticResNet};
use sd_train::Backend;

use crate::memory;

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
    /// Timed rounds (one step of each configuration per round).
    #[arg(long, default_value_t = 9)]
    steps: usize,
    /// Warm-up rounds.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// The project's own flex kernels (3x3 convolution, batch norm): on, or off
    /// for Burn's. Default: on, unless SD_KERNELS=off is set.
    #[arg(long, value_parser = ["on", "off"])]
    kernels: Option<String>,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Seconds of one forward+backward step with the given gates, and the heap's
/// peak during it, in bytes.
fn step(
    model: &CifarResNet,
    images: &Tensor<4>,
    targets: &Tensor<1, Int>,
    gates: &StepGates,
) -> (f64, usize) {
    memory::reset_peak();
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
    (start.elapsed().as_secs_f64(), memory::peak())
}

/// One configuration's gates and what was measured under them.
struct Config<'a> {
    name: &'static str,
    gates: Box<dyn Fn(usize) -> StepGates + 'a>,
    seconds: Vec<f64>,
    peak: usize,
    /// Blocks run per stage, per timed step.
    run: Vec<[usize; 3]>,
}

impl<'a> Config<'a> {
    fn new(name: &'static str, gates: impl Fn(usize) -> StepGates + 'a) -> Self {
        Self {
            name,
            gates: Box::new(gates),
            seconds: Vec::new(),
            peak: 0,
            run: Vec::new(),
        }
    }
}

fn blocks_run_per_stage(gates: &StepGates, per_stage: usize) -> [usize; 3] {
    let mut run = [0; 3];
    for (l, gate) in gates.blocks.iter().enumerate() {
        if !matches!(gate, Gate::Closed) {
            run[(l / per_stage).min(2)] += 1;
        }
    }
    run
}

fn images(batch: usize, device: &Device) -> Tensor<4> {
    Tensor::<4>::random([batch, 3, 32, 32], Distribution::Normal(0.0, 1.0), device)
}

/// Images per second of the network in evaluation, on the plain device.
fn inference(config: &CifarResNetConfig, args: &BenchArgs, device: &Device) -> (f64, usize) {
    let model = sd_model::resnet::initialize(config.init(device));
    let x = images(args.batch_size, device);
    let mut seconds = Vec::new();
    let mut peak = 0;
    for round in 0..args.warmup + args.steps {
        memory::reset_peak();
        let start = Instant::now();
        let _ = model.forward(x.clone()).sum().into_scalar::<f32>();
        if round >= args.warmup {
            seconds.push(start.elapsed().as_secs_f64());
            peak = peak.max(memory::peak());
        }
    }
    (args.batch_size as f64 / median(&seconds), peak)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1, got 0");
    anyhow::ensure!(
        args.batch_size > 0,
        "--batch-size must be at least 1, got 0"
    );
    let backend: Backend = args.backend.parse()?;
    if let Some(kernels) = &args.kernels {
        sd_kernels::set_enabled(kernels == "on");
    }
    let plain = backend.device(args.device)?;
    let device = plain.clone().autodiff();
    let config = CifarResNetConfig::new().with_depth(args.depth);
    config.validate()?;
    device.seed(1);
    let model = sd_model::resnet::initialize(config.init(&device));
    let blocks = model.survival().len();
    let per_stage = blocks / 3;
    let x = images(args.batch_size, &device);
    let targets = Tensor::<1, Int>::from_data(
        TensorData::new(
            (0..args.batch_size as i64).map(|i| i % 10).collect(),
            [args.batch_size],
        ),
        &device,
    );
    let sampler = GateSampler::new(2016);
    let model_ref = &model;
    let batch = args.batch_size;
    let closed_stage = |stage: usize| {
        move |_| {
            let mut g = StepGates::all_open(blocks);
            for gate in &mut g.blocks[stage * per_stage..(stage + 1) * per_stage] {
                *gate = Gate::Closed;
            }
            g
        }
    };
    let mut configs = vec![
        Config::new("all gates open", |_| StepGates::all_open(blocks)),
        Config::new("paper's schedule", move |round| {
            model_ref.draw_gates(&sampler, 1000 + round as u64, batch)
        }),
        Config::new("all gates closed", |_| StepGates::all_closed(blocks)),
        Config::new("stage 1 closed", closed_stage(0)),
        Config::new("stage 2 closed", closed_stage(1)),
        Config::new("stage 3 closed", closed_stage(2)),
    ];

    println!(
        "ResNet-{} ({blocks} blocks), batch {}, {backend} backend, kernels {}, {} threads; \
         medians of {} interleaved rounds after {} warm-up",
        args.depth,
        args.batch_size,
        match (backend, sd_kernels::enabled()) {
            (Backend::Flex, true) => "on",
            (Backend::Flex, false) => "off",
            _ => "n/a (flex only)",
        },
        rayon_threads(),
        args.steps,
        args.warmup
    );
    for round in 0..args.warmup + args.steps {
        for c in &mut configs {
            let gates = (c.gates)(round);
            let (seconds, peak) = step(&model, &x, &targets, &gates);
            if round >= args.warmup {
                c.seconds.push(seconds);
                c.peak = c.peak.max(peak);
                c.run.push(blocks_run_per_stage(&gates, per_stage));
            }
        }
    }
    for c in &configs[..3] {
        let blocks_run = mean(
            &c.run
                .iter()
                .map(|r| r.iter().sum::<usize>() as f64)
                .collect::<Vec<_>>(),
        );
        println!(
            "{:<18} {:.3} s/step   {:5.1} blocks run   peak heap {:7.1} MiB",
            format!("{}:", c.name),
            median(&c.seconds),
            blocks_run,
            memory::mib(c.peak)
        );
    }
    let open = median(&configs[0].seconds);
    let closed = median(&configs[2].seconds);
    let mut cost = [0.0; 3];
    for stage in 0..3 {
        let without = median(&configs[3 + stage].seconds);
        cost[stage] = (open - without) / per_stage as f64;
        let expected: f64 = model.survival()[stage * per_stage..(stage + 1) * per_stage]
            .iter()
            .sum();
        println!(
            "stage {}: {:.4} s per block ({:.3} s/step with the stage closed), \
             {expected:.2} of {per_stage} blocks expected to run",
            stage + 1,
            cost[stage],
            without
        );
    }
    let additive = closed + cost.iter().sum::<f64>() * per_stage as f64;
    println!(
        "additivity: closed + the stages' costs = {additive:.3} s vs open {open:.3} s ({:+.1}%)",
        100.0 * (additive / open - 1.0)
    );
    let paper = &configs[1];
    let predicted: Vec<f64> = paper
        .run
        .iter()
        .map(|run| {
            open - (0..3)
                .map(|s| (per_stage - run[s]) as f64 * cost[s])
                .sum::<f64>()
        })
        .collect();
    let (measured, predicted) = (mean(&paper.seconds), mean(&predicted));
    println!(
        "paper's schedule:  measured mean {measured:.3} s/step, predicted from the block costs \
         {predicted:.3} s/step ({:+.1}%)",
        100.0 * (measured / predicted - 1.0)
    );
    println!(
        "stochastic/constant: {:.3} measured (medians), {:.3} predicted, {:.3} ideal \
         (expected depth {:.2} of {blocks} blocks)",
        median(&paper.seconds) / open,
        predicted / open,
        model.expected_depth() / blocks as f64,
        model.expected_depth()
    );
    let (per_second, peak) = inference(&config, &args, &plain);
    println!(
        "inference: {per_second:.0} images/s (batch {}), peak heap {:.1} MiB",
        args.batch_size,
        memory::mib(peak)
    );
    if let Some(usage) = plain.memory_pool_usage() {
        println!("device memory pool: {usage:?}");
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
