//! The stochastic-depth residual layer: `H = shortcut(x) + b * f(x)`.
//!
//! [`StochasticDepth`] holds one block's survival probability `p_l` and applies
//! the paper's update rule around *any* residual branch `f`, given as a
//! closure, so that any Burn model can use it:
//!
//! ```text
//! training, gate open:    shortcut(x) + s * f(x)      s = 1 (paper) or 1/p_l (inverted)
//! training, gate closed:  shortcut(x)                 f is not called: no forward, no backward
//! training, per sample:   row i gets f only if its gate is open
//! evaluation:             shortcut(x) + t * f(x)      t = p_l (paper) or 1 (inverted)
//! ```
//!
//! The layer returns the sum before the block's final activation; the caller
//! applies it (the paper's `H_l = ReLU(b_l f_l(H_{l-1}) + id(H_{l-1}))`).
//!
//! What decides training or evaluation is the explicit [`Pass`] argument, never
//! the device: [`Pass::Eval`] is deterministic and runs every branch.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};

use crate::gate::{Gate, Granularity, Scaling};

/// Which pass a forward call makes.
#[derive(Debug, Clone, Copy)]
pub enum Pass<'a> {
    /// Evaluation: every branch runs, scaled for the expectation of training.
    Eval,
    /// A training step with this block's gate.
    Train(&'a Gate),
}

/// Configuration of one block's [`StochasticDepth`].
#[derive(Config, Debug)]
pub struct StochasticDepthConfig {
    /// Survival probability `p_l` of the block, in `(0, 1]`.
    pub survival: f64,
    /// Gate granularity. Default: [`Granularity::Batch`], as in the paper.
    #[config(default = "Granularity::Batch")]
    pub granularity: Granularity,
    /// Where the branch is rescaled. Default: [`Scaling::AtTest`], as in the paper.
    #[config(default = "Scaling::AtTest")]
    pub scaling: Scaling,
}

impl StochasticDepthConfig {
    /// Builds the layer.
    ///
    /// # Panics
    ///
    /// If the survival probability is outside `(0, 1]`.
    pub fn init(&self) -> StochasticDepth {
        assert!(
            self.survival > 0.0 && self.survival <= 1.0,
            "survival probability must be in (0, 1], got {}",
            self.survival
        );
        StochasticDepth {
            survival: self.survival,
            granularity: self.granularity,
            scaling: self.scaling,
        }
    }
}

/// The stochastic-depth gate around one residual branch. It has no parameters.
#[derive(Module, Debug)]
pub struct StochasticDepth {
    /// Survival probability `p_l`.
    pub survival: f64,
    /// Gate granularity.
    #[module(skip)]
    pub granularity: Granularity,
    /// Where the branch is rescaled.
    #[module(skip)]
    pub scaling: Scaling,
}

impl StochasticDepth {
    /// `shortcut + gated, scaled branch(input)`: the block's output before its activation.
    ///
    /// # Shapes
    ///
    /// - `input`: `[batch, ...]`, what the branch reads.
    /// - `shortcut`: `[batch, ...]`, the shortcut of `input`, shaped like the branch output.
    /// - output: the shape of `shortcut`.
    pub fn forward<const D: usize, F>(
        &self,
        input: Tensor<D>,
        shortcut: Tensor<D>,
        pass: Pass<'_>,
        branch: F,
    ) -> Tensor<D>
    where
        F: FnOnce(Tensor<D>) -> Tensor<D>,
    {
        let gate = match pass {
            Pass::Eval => return shortcut + self.scale(branch(input), self.eval_factor()),
            Pass::Train(gate) => gate,
        };
        let factor = self.train_factor();
        match gate {
            Gate::Closed => shortcut,
            Gate::Open => shortcut + self.scale(branch(input), factor),
            Gate::Rows(rows) if !rows.iter().any(|&keep| keep) => shortcut,
            Gate::Rows(rows) => match self.granularity {
                Granularity::SampleMasked => {
                    let mask = row_mask::<D>(rows, &input);
                    shortcut + self.scale(branch(input), factor) * mask
                }
                Granularity::Batch | Granularity::Sample => {
                    // Branch on the kept rows only, added back at their positions.
                    let kept = kept_rows(rows, &input);
                    let partial = self.scale(branch(input.select(0, kept.clone())), factor);
                    shortcut.select_assign(0, kept, partial, burn::tensor::IndexingUpdateOp::Add)
                }
            },
        }
    }

    /// The factor on a kept branch in training.
    pub fn train_factor(&self) -> f64 {
        match self.scaling {
            Scaling::AtTest => 1.0,
            Scaling::AtTrain => 1.0 / self.survival,
        }
    }

    /// The factor on the branch in evaluation.
    pub fn eval_factor(&self) -> f64 {
        match self.scaling {
            Scaling::AtTest => self.survival,
            Scaling::AtTrain => 1.0,
        }
    }

    fn scale<const D: usize>(&self, x: Tensor<D>, factor: f64) -> Tensor<D> {
        if factor == 1.0 {
            x
        } else {
            x.mul_scalar(factor)
        }
    }
}

/// Indices of the kept rows, on the device of `like`.
fn kept_rows<const D: usize>(rows: &[bool], like: &Tensor<D>) -> Tensor<1, Int> {
    let idx: Vec<i32> = (0..rows.len() as i32)
        .filter(|&i| rows[i as usize])
        .collect();
    let len = idx.len();
    Tensor::from_data(TensorData::new(idx, [len]), &like.device())
}

/// A `[batch, 1, ..., 1]` mask of 0/1 values broadcastable against `like`.
fn row_mask<const D: usize>(rows: &[bool], like: &Tensor<D>) -> Tensor<D> {
    let values: Vec<f32> = rows.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
    let mut shape = [1usize; D];
    shape[0] = rows.len();
    Tensor::from_data(TensorData::new(values, shape), &like.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn layer(survival: f64, granularity: Granularity, scaling: Scaling) -> StochasticDepth {
        StochasticDepthConfig::new(survival)
            .with_granularity(granularity)
            .with_scaling(scaling)
            .init()
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn evaluation_scales_the_branch_by_its_survival() {
        // By hand: shortcut 1, branch 2x = 4 at x = 2, p = 0.75 -> 1 + 0.75 * 4 = 4.
        let device = Device::flex();
        let x = Tensor::<2>::from_data([[2.0, -1.0]], &device);
        let sc = Tensor::<2>::from_data([[1.0, 1.0]], &device);
        let out = layer(0.75, Granularity::Batch, Scaling::AtTest).forward(
            x.clone(),
            sc.clone(),
            Pass::Eval,
            |x| x * 2.0,
        );
        assert_eq!(values(out), [4.0, -0.5]);
        let out =
            layer(0.75, Granularity::Batch, Scaling::AtTrain)
                .forward(x, sc, Pass::Eval, |x| x * 2.0);
        assert_eq!(values(out), [5.0, -1.0]); // 1 + 2 * 2, 1 + 2 * (-1)
    }

    #[test]
    fn a_closed_gate_never_calls_the_branch() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data([[2.0, -1.0]], &device);
        let out = layer(0.5, Granularity::Batch, Scaling::AtTest).forward(
            x.clone(),
            x,
            Pass::Train(&Gate::Closed),
            |_| panic!("the branch of a closed block must not run"),
        );
        assert_eq!(values(out), [2.0, -1.0]);
    }

    #[test]
    fn inverted_scaling_divides_a_kept_branch_by_its_survival() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data([[1.0, 2.0]], &device);
        let zero = Tensor::<2>::zeros([1, 2], &device);
        let out = layer(0.5, Granularity::Batch, Scaling::AtTrain).forward(
            x,
            zero,
            Pass::Train(&Gate::Open),
            |x| x,
        );
        assert_eq!(values(out), [2.0, 4.0]);
    }

    #[test]
    fn per_sample_compact_and_masked_modes_agree() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], &device);
        let sc = Tensor::<2>::from_data([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]], &device);
        let gate = Gate::Rows(vec![true, false, true]);
        let mut seen_rows = 0;
        let compact = layer(0.5, Granularity::Sample, Scaling::AtTest).forward(
            x.clone(),
            sc.clone(),
            Pass::Train(&gate),
            |x| {
                seen_rows = x.dims()[0];
                x * 3.0
            },
        );
        assert_eq!(seen_rows, 2, "only the kept rows reach the branch");
        let masked = layer(0.5, Granularity::SampleMasked, Scaling::AtTest).forward(
            x,
            sc,
            Pass::Train(&gate),
            |x| x * 3.0,
        );
        let expected = [13.0, 16.0, 20.0, 20.0, 45.0, 48.0];
        assert_eq!(values(compact), expected);
        assert_eq!(values(masked), expected);
    }

    #[test]
    #[should_panic(expected = "survival probability must be in (0, 1], got 0")]
    fn zero_survival_is_refused() {
        StochasticDepthConfig::new(0.0).init();
    }
}
