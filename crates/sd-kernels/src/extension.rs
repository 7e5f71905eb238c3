//! The 3x3 convolution as a Burn backend extension: the plain flex backend
//! runs the kernels of [`crate::conv`], its autodiff wrapper records one node
//! whose backward pass runs their gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::{Shape, TensorData};

use crate::batch_norm::{self, NormShape};
use crate::conv::{self, ConvShape};

/// A 3x3 convolution with stride 1 and padding 1.
#[backend_extension(Flex, Autodiff)]
pub trait Conv3x3Backend: Backend {
    /// `x`: `[batch, channels_in, h, w]`, `weight`: `[channels_out, channels_in, 3, 3]`.
    fn conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
    /// As [`conv3x3`](Self::conv3x3), plus `bias`: `[channels_out]`.
    fn conv3x3_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The elements of a contiguous f32 tensor, copying only if it is strided.
fn elements(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(tensor.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn shape_of(x: &FlexTensor, weight: &FlexTensor) -> ConvShape {
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    assert!(
        xs.num_dims() == 4 && ws.num_dims() == 4 && ws[2] == 3 && ws[3] == 3 && ws[1] == xs[1],
        "conv3x3: input {xs:?} and weight {ws:?} do not make a 3x3 convolution"
    );
    ConvShape {
        batch: xs[0],
        channels_in: xs[1],
        channels_out: ws[0],
        height: xs[2],
        width: xs[3],
    }
}

fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let s = shape_of(x, weight);
    let bias = bias.map(elements);
    let out = conv::forward(&elements(x), &elements(weight), bias.as_deref(), &s);
    tensor(out, [s.batch, s.channels_out, s.height, s.width])
}

impl Conv3x3Backend for Flex {
    fn conv3x3(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        forward(&x, &weight, None)
    }

    fn conv3x3_bias(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        forward(&x, &weight, Some(&bias))
    }
}

/// The gradients of one convolution, registered for the parents that want them.
fn backward<const N: usize>(ops: Ops<(FlexTensor, FlexTensor), N>, grads: &mut Gradients) {
    let grad = grads.consume::<Flex>(&ops.node);
    let (x, weight) = ops.state;
    let s = shape_of(&x, &weight);
    let grad = elements(&grad);
    let parents = ops.parents;
    if let Some(node) = &parents[0] {
        let dx = conv::input_grad(&grad, &elements(&weight), &s);
        grads.register::<Flex>(
            node.id,
            tensor(dx, [s.batch, s.channels_in, s.height, s.width]),
        );
    }
    let wants_bias = N == 3 && parents[N - 1].is_some();
    if parents[1].is_some() || wants_bias {
        let (dw, db) = conv::weight_and_bias_grad(&elements(&x), &grad, &s);
        if let Some(node) = &parents[1] {
            grads.register::<Flex>(node.id, tensor(dw, [s.channels_out, s.channels_in, 3, 3]));
        }
        if wants_bias {
            let node = parents[N - 1].as_ref().expect("checked above");
            grads.register::<Flex>(node.id, tensor(db, [s.channels_out]));
        }
    }
}

#[derive(Debug)]
struct Conv3x3Op;

impl Backward<Flex, 2> for Conv3x3Op {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward(ops, grads);
    }
}

#[derive(Debug)]
struct Conv3x3BiasOp;

impl Backward<Flex, 3> for Conv3x3BiasOp {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward(ops, grads);
    }
}

impl<C: CheckpointStrategy> Conv3x3Backend for Autodiff<Flex, C> {
    fn conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        match Conv3x3Op
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.primitive().clone(), weight.primitive().clone());
                let out = forward(&x, &weight, None);
                prep.finish((x, weight), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(x.primitive(), weight.primitive(), None))
            }
        }
    }

    fn conv3x3_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let parents = [x.node(), weight.node(), bias.node()];
        match Conv3x3BiasOp
            .prepare::<C>(parents)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.primitive().clone(), weight.primitive().clone());
                let out = forward(&x, &weight, Some(bias.primitive()));
                prep.finish((x, weight), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.primitive(),
                weight.primitive(),
                Some(bias.primitive()),
            )),
        }
    }
}

/// Batch normalisation with the batch's statistics.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// `x`: `[batch, channels, h, w]`, `gamma` and `beta`: `[channels]`.
    /// Returns the output and the batch's mean and biased variance (not
    /// differentiated).
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

fn norm_shape(x: &FlexTensor) -> NormShape {
    let shape = x.layout().shape();
    assert!(
        shape.num_dims() >= 2,
        "batch norm: input {shape:?} has no channel axis"
    );
    NormShape {
        batch: shape[0],
        channels: shape[1],
        plane: shape.num_elements() / (shape[0] * shape[1]).max(1),
    }
}

fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let s = norm_shape(x);
    let (out, mean, var) =
        batch_norm::forward_train(&elements(x), &elements(gamma), &elements(beta), epsilon, &s);
    (
        tensor(out, x.layout().shape().clone()),
        tensor(mean, [s.channels]),
        tensor(var, [s.channels]),
    )
}

impl BatchNormBackend for Flex {
    fn batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        norm_forward(&x, &gamma, &beta, epsilon)
    }
}

#[derive(Debug)]
struct BatchNormOp;

impl Backward<Flex, 3> for BatchNormOp {
    /// The input, gamma, the batch mean and variance, epsilon.
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, mean, var, epsilon) = ops.state;
        let s = norm_shape(&x);
        let (dx, dgamma, dbeta) = batch_norm::backward(
            &elements(&x),
            &elements(&gamma),
            &elements(&mean),
            &elements(&var),
            epsilon,
            &elements(&grad),
            &s,
        );
        let [node_x, node_gamma, node_beta] = ops.parents;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, x.layout().shape().clone()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, [s.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, [s.channels]));
        }
    }
}

impl<C: CheckpointStrategy> BatchNormBackend for Autodiff<Flex, C> {
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let parents = [x.node(), gamma.node(), beta.node()];
        let (xp, gp) = (x.primitive().clone(), gamma.primitive().clone());
        let (out, mean, var) = norm_forward(&xp, &gp, beta.primitive(), epsilon);
        let out = match BatchNormOp.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((xp, gp, mean.clone(), var.clone(), epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (
            out,
            FloatTensor::<Self>::new(mean),
            FloatTensor::<Self>::new(var),
        )
    }
}

/// Batch normalisation with given statistics (evaluation), in one pass.
#[backend_extension(Flex)]
pub trait BatchNormEvalBackend: Backend {
    /// `x`: `[batch, channels, h, w]`; the rest `[channels]`.
    fn batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

impl BatchNormEvalBackend for Flex {
    fn batch_norm_eval(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let s = norm_shape(&x);
        let out = batch_norm::forward_with(
            &elements(&x),
            &elements(&gamma),
            &elements(&beta),
            &elements(&mean),
            &elements(&var),
            epsilon,
            &s,
        );
        tensor(out, x.layout().shape().clone())
    }
}
