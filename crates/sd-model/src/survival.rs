//! Survival probabilities: how likely each residual block is to run in a training step.
//!
//! The paper (Section 3, "Survival probabilities") indexes the residual blocks
//! `l = 1..L` from the input to the output and proposes the *linear decay rule*
//!
//! ```text
//! p_l = 1 - (l / L) (1 - p_L)
//! ```
//!
//! so that the first block survives almost always and the last one with
//! probability `p_L` (0.5 in all of the paper's experiments). The *uniform rule*
//! gives every block `p_L`. The expected number of blocks run in a step is the
//! sum of the `p_l`: `(3L - 1) / 4` for the linear rule at `p_L = 0.5`, 40.25
//! for the 54 blocks of ResNet-110.
//!
//! Note: timm's `drop_path_rate` schedules count blocks from 0 (`l = 0..L-1`,
//! first block never dropped, last one dropped at the full rate). This module
//! uses the paper's `l = 1..L` indexing, so no block has survival exactly 1
//! unless the rule says so.
//!
//! The schedule is a pure function of the block count and the rule, apart from
//! any layer, so it can be checked against hand-computed values.

use burn::config::Config;

/// How the survival probability varies with the depth of a block.
#[derive(Config, Debug, PartialEq)]
pub enum SurvivalRule {
    /// `p_l = 1 - (l / L)(1 - p_last)` for `l = 1..L`: the paper's default.
    LinearDecay {
        /// Survival probability of the last block, `p_L` (0.5 in the paper).
        p_last: f64,
    },
    /// Every block survives with the same probability.
    Uniform {
        /// The survival probability of every block.
        p: f64,
    },
    /// Every block always runs: a plain, constant-depth ResNet.
    Constant,
    /// One survival probability per block, from the input to the output.
    Explicit {
        /// `p_1, ..., p_L`.
        probabilities: Vec<f64>,
    },
}

impl Default for SurvivalRule {
    /// The paper's choice: linear decay to `p_L = 0.5`.
    fn default() -> Self {
        Self::LinearDecay { p_last: 0.5 }
    }
}

/// Why a survival schedule could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SurvivalError {
    /// A probability outside `(0, 1]`: a block that never survives would never train.
    #[error("survival probability {value} for {what} is outside (0, 1]")]
    OutOfRange {
        /// The rejected value.
        value: f64,
        /// Which parameter or block it was given for.
        what: String,
    },
    /// An explicit list whose length differs from the number of blocks.
    #[error("explicit survival list has {given} probabilities but the network has {blocks} blocks")]
    WrongLength {
        /// Probabilities given.
        given: usize,
        /// Residual blocks in the network.
        blocks: usize,
    },
}

fn check(value: f64, what: impl FnOnce() -> String) -> Result<f64, SurvivalError> {
    // `!(a && b)` also rejects NaN.
    if !(value > 0.0 && value <= 1.0) {
        return Err(SurvivalError::OutOfRange {
            value,
            what: what(),
        });
    }
    Ok(value)
}

impl SurvivalRule {
    /// Checks the rule's own parameters, without knowing the depth.
    pub fn validate(&self) -> Result<(), SurvivalError> {
        match self {
            Self::LinearDecay { p_last } => check(*p_last, || "p_last".into()).map(|_| ()),
            Self::Uniform { p } => check(*p, || "the uniform rule".into()).map(|_| ()),
            Self::Constant => Ok(()),
            Self::Explicit { probabilities } => {
                for (i, p) in probabilities.iter().enumerate() {
                    check(*p, || format!("block {}", i + 1))?;
                }
                Ok(())
            }
        }
    }

    /// The survival probabilities `p_1, ..., p_L` of `blocks` residual blocks,
    /// from the input to the output.
    pub fn probabilities(&self, blocks: usize) -> Result<Vec<f64>, SurvivalError> {
        self.validate()?;
        let total = blocks as f64;
        Ok(match self {
            Self::LinearDecay { p_last } => (1..=blocks)
                .map(|l| 1.0 - (l as f64 / total) * (1.0 - p_last))
                .collect(),
            Self::Uniform { p } => vec![*p; blocks],
            Self::Constant => vec![1.0; blocks],
            Self::Explicit { probabilities } => {
                if probabilities.len() != blocks {
                    return Err(SurvivalError::WrongLength {
                        given: probabilities.len(),
                        blocks,
                    });
                }
                probabilities.clone()
            }
        })
    }

    /// The expected number of blocks run in a training step: the sum of the `p_l`.
    pub fn expected_depth(&self, blocks: usize) -> Result<f64, SurvivalError> {
        Ok(self.probabilities(blocks)?.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-7
    }

    #[test]
    fn linear_decay_matches_hand_computed_values_for_resnet_110() {
        // By hand: L = 54 blocks, p_L = 0.5.
        // p_1 = 1 - (1/54)(0.5) = 0.9907407..., p_27 = 1 - 0.5 * 0.5 = 0.75,
        // p_54 = 0.5, sum = 54 - 0.5 * (54 * 55 / 2) / 54 = 54 - 13.75 = 40.25.
        let p = SurvivalRule::default().probabilities(54).unwrap();
        assert_eq!(p.len(), 54);
        assert!(close(p[0], 0.990741), "p_1 = {}", p[0]);
        assert!(close(p[26], 0.75), "p_27 = {}", p[26]);
        assert!(close(p[53], 0.5), "p_54 = {}", p[53]);
        let sum: f64 = p.iter().sum();
        assert!(close(sum, 40.25), "sum = {sum}");
        assert!(close(sum, (3.0 * 54.0 - 1.0) / 4.0));
        assert!(p.windows(2).all(|w| w[0] > w[1]), "strictly decreasing");
    }

    #[test]
    fn uniform_and_constant_rules() {
        assert_eq!(
            SurvivalRule::Uniform { p: 0.8 }.probabilities(3).unwrap(),
            [0.8; 3]
        );
        assert_eq!(SurvivalRule::Constant.probabilities(4).unwrap(), [1.0; 4]);
        assert!(close(
            SurvivalRule::Uniform { p: 0.5 }.expected_depth(54).unwrap(),
            27.0
        ));
    }

    #[test]
    fn explicit_list_is_checked_against_the_depth() {
        let rule = SurvivalRule::Explicit {
            probabilities: vec![1.0, 0.5],
        };
        assert_eq!(rule.probabilities(2).unwrap(), [1.0, 0.5]);
        assert_eq!(
            rule.probabilities(3),
            Err(SurvivalError::WrongLength {
                given: 2,
                blocks: 3
            })
        );
    }

    #[test]
    fn values_outside_the_unit_interval_are_rejected_with_the_value() {
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let err = SurvivalRule::LinearDecay { p_last: bad }
                .probabilities(5)
                .unwrap_err();
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
        let err = SurvivalRule::Explicit {
            probabilities: vec![0.9, 1.2],
        }
        .probabilities(2)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "survival probability 1.2 for block 2 is outside (0, 1]"
        );
    }
}
