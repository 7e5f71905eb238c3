//! The kernels against Burn's own convolution, through the public entry point.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};

fn layer(channels: [usize; 2], bias: bool, device: &Device) -> Conv2d {
    let mut conv = Conv2dConfig::new(channels, [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .init(device);
    if let Some(b) = &conv.bias {
        // Burn draws biases small; make them matter.
        conv.bias = Some(Param::from_data(
            b.val().mul_scalar(10.0).into_data(),
            device,
        ));
    }
    conv
}

/// Largest absolute difference, relative to the largest magnitude of `want`.
fn relative_gap<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> f32 {
    let scale = want.clone().abs().max().into_scalar::<f32>().max(1e-12);
    (got - want).abs().max().into_scalar::<f32>() / scale
}

/// Asserts that `got` is within [`TOLERANCE`] of `want`, relative to `want`'s scale.
fn assert_close<const D: usize>(got: Option<Tensor<D>>, want: Option<Tensor<D>>, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: missing on the fast path"));
    let want = want.unwrap_or_else(|| panic!("{what}: missing on Burn's path"));
    let gap = relative_gap(got, want);
    assert!(gap < TOLERANCE, "{what}: relative gap {gap}");
}

/// f32 sums of up to 16 * 9 * 128 terms in another order: a few ulps of the
/// result's scale each, far below 1e-4.
const TOLERANCE: f32 = 1e-4;

#[test]
fn forward_and_gradients_match_burn_on_flex_autodiff() {
    let device = Device::flex().autodiff();
    for bias in [true, false] {
        let conv = layer([6, 5], bias, &device);
        let x = Tensor::<4>::random([4, 6, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let probe = Tensor::<4>::random([4, 5, 7, 9], Distribution::Normal(0.0, 1.0), &device);

        let x_fast = x.clone().require_grad();
        let fast = sd_kernels::conv2d(&conv, x_fast.clone());
        let grads_fast = (fast.clone() * probe.clone()).sum().backward();

        let x_stock = x.require_grad();
        let stock = conv.forward(x_stock.clone());
        let grads_stock = (stock.clone() * probe).sum().backward();

        assert_close(Some(fast), Some(stock), &format!("forward, bias {bias}"));
        assert_close(
            x_fast.grad(&grads_fast),
            x_stock.grad(&grads_stock),
            &format!("input gradient, bias {bias}"),
        );
        assert_close(
            conv.weight.grad(&grads_fast),
            conv.weight.grad(&grads_stock),
            &format!("weight gradient, bias {bias}"),
        );
        if let Some(b) = &conv.bias {
            assert_close(b.grad(&grads_fast), b.grad(&grads_stock), "bias gradient");
        }
    }
}

#[test]
fn forward_matches_burn_on_plain_flex() {
    let device = Device::flex();
    let conv = layer([3, 16], true, &device);
    let x = Tensor::<4>::random([5, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    assert_close(
        Some(sd_kernels::conv2d(&conv, x.clone())),
        Some(conv.forward(x)),
        "forward",
    );
}

#[test]
fn other_layers_and_backends_take_burns_path_unchanged() {
    // Stride 2 is not ours: the result is Burn's, bit for bit.
    let device = Device::flex();
    let strided = Conv2dConfig::new([4, 8], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([2, 4, 8, 8], Distribution::Default, &device);
    let got = sd_kernels::conv2d(&strided, x.clone()).into_data();
    got.assert_eq(&strided.forward(x).into_data(), true);

    #[allow(deprecated)]
    let device = Device::ndarray();
    assert!(!sd_kernels::is_flex(&device));
    assert!(sd_kernels::is_flex(&Device::flex().autodiff()));
    let conv = layer([4, 4], true, &device);
    let x = Tensor::<4>::random([2, 4, 6, 6], Distribution::Default, &device);
    let got = sd_kernels::conv2d(&conv, x.clone()).into_data();
    got.assert_eq(&conv.forward(x).into_data(), true);
}

#[test]
fn batch_norm_matches_burn_in_training_and_updates_the_running_statistics() {
    use burn::nn::BatchNormConfig;
    let device = Device::flex().autodiff();
    let make = || {
        let mut bn = BatchNormConfig::new(5).init(&device);
        bn.gamma = Param::from_tensor(Tensor::from_floats([1.0, 2.0, 0.5, -1.0, 3.0], &device));
        bn.beta = Param::from_tensor(Tensor::from_floats([0.0, 1.0, -2.0, 0.5, 0.1], &device));
        bn
    };
    let (fast_bn, stock_bn) = (make(), make());
    let x = Tensor::<4>::random([6, 5, 7, 3], Distribution::Normal(2.0, 3.0), &device);
    let probe = Tensor::<4>::random([6, 5, 7, 3], Distribution::Normal(0.0, 1.0), &device);

    let x_fast = x.clone().require_grad();
    let fast = sd_kernels::batch_norm(&fast_bn, x_fast.clone());
    let grads_fast = (fast.clone() * probe.clone()).sum().backward();
    let x_stock = x.require_grad();
    let stock = stock_bn.forward(x_stock.clone());
    let grads_stock = (stock.clone() * probe).sum().backward();

    assert_close(Some(fast), Some(stock), "output");
    assert_close(
        x_fast.grad(&grads_fast),
        x_stock.grad(&grads_stock),
        "input gradient",
    );
    assert_close(
        fast_bn.gamma.grad(&grads_fast),
        stock_bn.gamma.grad(&grads_stock),
        "gamma gradient",
    );
    assert_close(
        fast_bn.beta.grad(&grads_fast),
        stock_bn.beta.grad(&grads_stock),
        "beta gradient",
    );
    let running =
        |bn: &burn::nn::BatchNorm| (bn.running_mean.value_sync(), bn.running_var.value_sync());
    let ((mean_fast, var_fast), (mean_stock, var_stock)) = (running(&fast_bn), running(&stock_bn));
    assert_close(Some(mean_fast), Some(mean_stock), "running mean");
    assert_close(Some(var_fast), Some(var_stock), "running variance");
    // The running mean moved from zero towards the batch mean (2.0) by the momentum.
    let moved = fast_bn
        .running_mean
        .value_sync()
        .mean()
        .into_scalar::<f32>();
    assert!((moved - 0.2).abs() < 0.05, "running mean {moved}");
}

#[test]
fn batch_norm_matches_burn_in_evaluation() {
    use burn::module::RunningState;
    use burn::nn::BatchNormConfig;
    let device = Device::flex();
    let mut bn = BatchNormConfig::new(4).init(&device);
    bn.gamma = Param::from_tensor(Tensor::from_floats([1.0, 2.0, 0.5, -1.0], &device));
    bn.beta = Param::from_tensor(Tensor::from_floats([0.0, 1.0, -2.0, 0.5], &device));
    bn.running_mean = RunningState::new(Tensor::from_floats([0.5, -1.0, 2.0, 0.0], &device));
    bn.running_var = RunningState::new(Tensor::from_floats([1.0, 4.0, 0.25, 2.0], &device));
    let x = Tensor::<4>::random([3, 4, 5, 6], Distribution::Normal(1.0, 2.0), &device);
    assert_close(
        Some(sd_kernels::batch_norm(&bn, x.clone())),
        Some(bn.forward(x)),
        "output",
    );
}
