//! Facts about the stochastic-depth ResNets, checked on the `flex` backend.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use sd_model::StochasticResNet;
use sd_model::block::{BasicBlock, BlockOptions, ShortcutKind};
use sd_model::gate::{Gate, GateSampler, Granularity, Scaling, StepGates};
use sd_model::resnet::{CifarResNet, CifarResNetConfig, ImageNetResNetConfig, trainable_params};
use sd_model::stochastic_depth::{Pass, StochasticDepthConfig};
use sd_model::survival::SurvivalRule;

fn bits(t: Tensor<2>) -> Vec<u32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn images(batch: usize, device: &Device) -> Tensor<4> {
    device.seed(11);
    Tensor::random([batch, 3, 32, 32], Distribution::Normal(0.0, 1.0), device)
}

fn resnet20(rule: SurvivalRule, device: &Device) -> CifarResNet {
    device.seed(2016);
    CifarResNetConfig::new()
        .with_depth(20)
        .with_survival(rule)
        .init(device)
}

/// A plain ResNet forward written out from the model's parts, with no gates at all.
fn plain_forward(model: &CifarResNet, x: Tensor<4>) -> Tensor<2> {
    let mut x = model.stem(x);
    for block in &model.blocks {
        x = relu(block.shortcut.forward(x.clone()) + block.branch(x));
    }
    let [b, c, _, _] = x.dims();
    model.fc.forward(x.mean_dim(3).mean_dim(2).reshape([b, c]))
}

#[test]
fn all_gates_open_equals_the_plain_resnet_forward() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let model = resnet20(SurvivalRule::default(), &device);
        let x = images(4, &device);
        let stochastic = model.forward_stochastic(x.clone(), &StepGates::all_open(9));
        let plain = plain_forward(&model, x);
        assert_eq!(bits(stochastic), bits(plain));
    }
}

fn block_options(survival: f64) -> BlockOptions {
    BlockOptions {
        shortcut: ShortcutKind::PoolPad,
        conv_bias: true,
        depth: StochasticDepthConfig::new(survival),
    }
}

#[test]
fn a_closed_gate_gives_relu_of_the_shortcut() {
    let device = Device::flex().autodiff();
    let x = images(2, &device).slice([0..2, 0..3, 0..8, 0..8]);
    let x = Tensor::cat(
        vec![x.clone(), x.clone(), x.clone(), x.clone(), x.clone(), x],
        1,
    );
    let x = x.slice([0..2, 0..16, 0..8, 0..8]);

    // Plain block: 16 -> 16 channels, stride 1: relu(x).
    let plain = BasicBlock::new([16, 16], 1, &block_options(0.5), &device);
    let out = plain.forward(x.clone(), Pass::Train(&Gate::Closed));
    assert_eq!(values(out), values(relu(x.clone())));

    // Downsampling block: 16 -> 32 channels, stride 2: 2x2 average, then 16 zero channels.
    let down = BasicBlock::new([16, 32], 2, &block_options(0.5), &device);
    let out = down.forward(x.clone(), Pass::Train(&Gate::Closed));
    assert_eq!(out.dims(), [2, 32, 4, 4]);
    let v = values(x.clone());
    let o = values(out.clone());
    // By hand for image 0, channel 3, output pixel (1, 2): mean of the 2x2 window at (2..4, 4..6).
    let at = |n: usize, c: usize, h: usize, w: usize| v[((n * 16 + c) * 8 + h) * 8 + w];
    let mean = (at(0, 3, 2, 4) + at(0, 3, 2, 5) + at(0, 3, 3, 4) + at(0, 3, 3, 5)) / 4.0;
    let got = o[(3 * 4 + 1) * 4 + 2];
    assert!((got - mean.max(0.0)).abs() < 1e-6, "{got} vs relu({mean})");
    assert_eq!(
        values(out.slice([0..2, 16..32, 0..4, 0..4])),
        vec![0.0; 2 * 16 * 16]
    );
    assert_eq!(o, values(relu(down.shortcut.forward(x))));
}

#[test]
fn evaluation_scales_each_branch_by_its_survival() {
    // Hand-computable: relu(shortcut + 0.75 * branch) per block, at p = 0.75.
    let device = Device::flex();
    let x = images(2, &device).slice([0..2, 0..3, 0..8, 0..8]);
    let x = Tensor::cat(vec![x; 6], 1).slice([0..2, 0..16, 0..8, 0..8]);
    let block = BasicBlock::new([16, 16], 1, &block_options(0.75), &device);
    let out = block.forward(x.clone(), Pass::Eval);
    let expected = relu(x.clone() + block.branch(x.clone()) * 0.75);
    let (o, e) = (values(out), values(expected));
    let worst = o
        .iter()
        .zip(&e)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "max difference {worst}");
}

#[test]
fn evaluation_is_deterministic_and_bitwise_repeatable() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let model = resnet20(SurvivalRule::default(), &device).valid();
        let x = images(3, &device);
        let a = model.forward(x.clone());
        let b = model.forward(x);
        assert_eq!(bits(a), bits(b));
    }
}

#[test]
fn survival_one_everywhere_reproduces_the_constant_depth_model() {
    let device = Device::flex().autodiff();
    let all_ones = resnet20(
        SurvivalRule::Explicit {
            probabilities: vec![1.0; 9],
        },
        &device,
    );
    // The same weights (tests run in parallel threads and share the seeded RNG,
    // so the weights are copied rather than drawn twice).
    let constant =
        resnet20(SurvivalRule::Constant, &device).load_record(all_ones.clone().into_record());
    let sampler = GateSampler::new(5);
    let x = images(4, &device);
    for step in 0..3 {
        let gates_a = all_ones.draw_gates(&sampler, step, 4);
        let gates_b = constant.draw_gates(&sampler, step, 4);
        assert_eq!(gates_a, StepGates::all_open(9));
        let a = all_ones.forward_stochastic(x.clone(), &gates_a);
        let b = constant.forward_stochastic(x.clone(), &gates_b);
        let (ga, gb) = (a.clone().sum().backward(), b.clone().sum().backward());
        assert_eq!(bits(a), bits(b));
        let wa = all_ones.blocks[4].conv1.weight.val().grad(&ga).unwrap();
        let wb = constant.blocks[4].conv1.weight.val().grad(&gb).unwrap();
        assert_eq!(values(wa), values(wb));
    }
    assert_eq!(bits(all_ones.forward(x.clone())), bits(constant.forward(x)));
}

/// The training-time expectation of a block's pre-activation equals its
/// evaluation output, for both scaling conventions and both granularities.
///
/// Tolerance: with N = 4 000 draws the Monte-Carlo mean of `b * s * f` has
/// standard deviation `|s f| sqrt(p (1 - p) / N)`; with `|f| <= 3`, p = 0.6 and
/// s <= 1/0.6 this is at most 3 / 0.6 * 0.49 / 63.2 = 0.039. We allow 0.2, about
/// 5 standard deviations; a missing or doubled scaling errs by at least
/// 0.4 * |f| on the largest entries (|f| = 3), i.e. 1.2.
#[test]
fn training_expectation_matches_evaluation() {
    let device = Device::flex();
    let x = Tensor::<2>::from_data([[1.0, -2.0, 3.0], [0.5, 2.5, -1.0]], &device);
    let shortcut = Tensor::<2>::from_data([[0.1, 0.2, 0.3], [-0.1, 0.0, 0.4]], &device);
    let n = 4_000;
    for scaling in [Scaling::AtTest, Scaling::AtTrain] {
        for granularity in [Granularity::Batch, Granularity::Sample] {
            let layer = StochasticDepthConfig::new(0.6)
                .with_scaling(scaling)
                .with_granularity(granularity)
                .init();
            let sampler = GateSampler::new(3);
            let mut sum = vec![0.0f64; 6];
            for step in 0..n {
                let gate = sampler.draw(step, &[0.6], granularity, 2).blocks.remove(0);
                let out = layer.forward(x.clone(), shortcut.clone(), Pass::Train(&gate), |x| x);
                for (s, v) in sum.iter_mut().zip(values(out)) {
                    *s += v as f64;
                }
            }
            let eval = values(layer.forward(x.clone(), shortcut.clone(), Pass::Eval, |x| x));
            for (s, e) in sum.iter().zip(eval) {
                let mean = s / n as f64;
                assert!(
                    (mean - e as f64).abs() < 0.2,
                    "{scaling:?} {granularity:?}: {mean} vs {e}"
                );
            }
        }
    }
}

fn assert_finite<const D: usize>(t: Tensor<D>) {
    assert!(values(t).iter().all(|v| v.is_finite()));
}

#[test]
fn edge_cases_stay_finite() {
    let device = Device::flex().autodiff();
    // Survival near zero, a batch of one.
    let model = resnet20(SurvivalRule::Uniform { p: 1e-6 }, &device);
    let x = images(1, &device);
    let gates = model.draw_gates(&GateSampler::new(0), 0, 1);
    assert_eq!(gates.blocks_run(), 0, "p = 1e-6 closes every gate");
    let out = model.forward_stochastic(x.clone(), &gates);
    assert_eq!(out.dims(), [1, 10]);
    let grads = out.clone().sum().backward();
    assert_finite(out);
    assert_finite(model.conv1.weight.val().grad(&grads).unwrap());
    assert_finite(model.forward(x));

    // Per-sample gates with every row dropped, and with only some.
    device.seed(2016);
    let model = CifarResNetConfig::new()
        .with_depth(20)
        .with_granularity(Granularity::Sample)
        .init(&device);
    let x = images(3, &device);
    let none = StepGates {
        blocks: vec![Gate::Rows(vec![false; 3]); 9],
    };
    let some = StepGates {
        blocks: vec![Gate::Rows(vec![false, true, false]); 9],
    };
    for gates in [none, some] {
        let out = model.forward_stochastic(x.clone(), &gates);
        assert_eq!(out.dims(), [3, 10]);
        let grads = out.clone().sum().backward();
        assert_finite(out);
        assert_finite(model.fc.weight.val().grad(&grads).unwrap());
    }
}

#[test]
fn gradients_flow_through_the_shortcut_of_a_dropped_block() {
    let device = Device::flex().autodiff();
    let model = resnet20(SurvivalRule::default(), &device);
    let mut gates = StepGates::all_open(9);
    gates.blocks[0] = Gate::Closed;
    gates.blocks[3] = Gate::Closed; // the first, downsampling block of stage 2
    let loss = model
        .forward_stochastic(images(2, &device), &gates)
        .powi_scalar(2)
        .sum();
    let grads = loss.backward();
    let stem = values(
        model
            .conv1
            .weight
            .val()
            .grad(&grads)
            .expect("the stem is reached"),
    );
    assert!(stem.iter().any(|g| *g != 0.0) && stem.iter().all(|g| g.is_finite()));
    assert!(
        model.blocks[0].conv1.weight.val().grad(&grads).is_none(),
        "closed: no backward"
    );
    assert!(model.blocks[3].conv2.weight.val().grad(&grads).is_none());
    assert!(model.blocks[1].conv1.weight.val().grad(&grads).is_some());
}

#[test]
fn a_closed_block_keeps_its_batch_norm_statistics() {
    let device = Device::flex().autodiff();
    let model = resnet20(SurvivalRule::default(), &device);
    let before = |m: &CifarResNet, l: usize| values(m.blocks[l].bn1.running_mean.value_sync());
    let (closed_before, open_before) = (before(&model, 2), before(&model, 1));
    let mut gates = StepGates::all_open(9);
    gates.blocks[2] = Gate::Closed;
    let _ = model.forward_stochastic(images(4, &device), &gates);
    assert_eq!(
        before(&model, 2),
        closed_before,
        "closed block: statistics unchanged"
    );
    assert_ne!(
        before(&model, 1),
        open_before,
        "open block: statistics updated"
    );
}

#[test]
fn resnet_110_has_the_papers_parameter_count() {
    let device = Device::flex();
    let model = CifarResNetConfig::new().init(&device);
    assert_eq!(model.blocks.len(), 54);
    assert_eq!(trainable_params(&model), 1_732_010);
    // Burn's count adds the 2 x 4,048 batch-norm running statistics.
    assert_eq!(model.num_params(), 1_732_010 + 8_096);
    let model = CifarResNetConfig::new().with_conv_bias(false).init(&device);
    assert_eq!(trainable_params(&model), 1_727_962);
    assert!((CifarResNetConfig::new().init(&device).expected_depth() - 40.25).abs() < 1e-9);
    // The paper's initialisation: zero biases, weights with std sqrt(2 / (9 * 16)).
    let model = resnet20(SurvivalRule::default(), &device);
    let bias = values(model.blocks[0].conv1.bias.as_ref().unwrap().val());
    assert!(bias.iter().all(|b| *b == 0.0));
    let w = values(model.blocks[0].conv1.weight.val());
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    let expected = (2.0f32 / (9.0 * 16.0)).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.15,
        "std {std} vs {expected}"
    );
}

#[test]
fn bad_depths_are_refused_with_the_value() {
    for depth in [0, 7, 21, 111] {
        let err = CifarResNetConfig::new()
            .with_depth(depth)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains(&depth.to_string()), "{err}");
    }
    let err = CifarResNetConfig::new()
        .with_survival(SurvivalRule::LinearDecay { p_last: 1.5 })
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("1.5"), "{err}");
}

#[test]
fn projection_shortcuts_and_the_bottleneck_resnet_run() {
    let device = Device::flex().autodiff();
    let cifar = CifarResNetConfig::new()
        .with_depth(8)
        .with_shortcut(ShortcutKind::Projection)
        .init(&device);
    let x = images(2, &device);
    assert_eq!(
        cifar
            .forward_stochastic(x.clone(), &StepGates::all_closed(3))
            .dims(),
        [2, 10]
    );

    // A small bottleneck net with the ResNet-152 layout's structure.
    let imagenet = ImageNetResNetConfig::new()
        .with_layers([1, 1, 1, 1])
        .with_num_classes(7)
        .init(&device);
    let gates = imagenet.draw_gates(&GateSampler::new(1), 0, 2);
    let out = imagenet.forward_stochastic(x.clone(), &gates);
    assert_eq!(out.dims(), [2, 7]);
    assert_eq!(imagenet.forward(x).dims(), [2, 7]);

    // ResNet-152: 50 blocks with the paper's schedule ending at 0.5.
    let p = ImageNetResNetConfig::new().validate().unwrap();
    assert_eq!(p.len(), 50);
    assert!((p[49] - 0.5).abs() < 1e-12);
}
