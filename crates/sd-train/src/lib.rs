//! Training and evaluation of stochastic-depth ResNets on burn-train's learner.
//!
//! - [`config`]: [`TrainingConfig`](config::TrainingConfig), the paper's recipe as defaults.
//! - [`step`]: the [`Classifier`](step::Classifier) with its `TrainStep`
//!   (stochastic forward pass, gates drawn per step) and `InferenceStep`
//!   (deterministic, every block).
//! - [`schedule`]: the learning rate divided by 10 at epoch milestones.
//! - [`data`]: the data loaders, whose order, augmentation and gate steps are
//!   functions of (seed, epoch), so that a resumed run replays exactly.
//! - [`metrics`]: loss, error, test error and the stochastic-depth figures.
//! - [`run`]: the run folder, `metrics.csv`, checkpoints, resume.
//! - [`train`](mod@train) and [`evaluate`]: the two jobs.
//! - [`backend`]: `flex`, `ndarray` or `wgpu`, chosen at run time.
//! - [`renderer`]: the plain log used when the output is not a terminal.
#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod renderer;
pub mod run;
pub mod schedule;
pub mod step;
pub mod train;

pub use backend::Backend;
pub use config::TrainingConfig;
pub use error::TrainError;
