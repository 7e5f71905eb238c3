//! Errors a user can cause: bad settings, bad files, a missing device.

use std::path::{Path, PathBuf};

/// Why training or evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting that makes no sense, named by its flag or config key.
    #[error("{name} = {value}: {expected}")]
    Setting {
        /// The flag or config key.
        name: String,
        /// The value given.
        value: String,
        /// What was expected instead.
        expected: String,
    },
    /// A file that could not be read or written.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file whose contents are not what they should be.
    #[error("{}: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A run folder that cannot be resumed or evaluated.
    #[error("run folder {}: {problem}", path.display())]
    Run {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// No usable device for the chosen backend.
    #[error("{0}")]
    Device(String),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] sd_data::DataError),
    /// The network configuration is invalid.
    #[error(transparent)]
    Model(#[from] sd_model::ModelError),
    /// Training stopped because the loss became NaN or infinite.
    #[error("{0}")]
    NonFinite(String),
}

impl TrainError {
    /// An I/O failure on `path` while doing `action`.
    pub fn io(path: &Path, action: &str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            action: action.to_string(),
            cause: source,
        }
    }

    /// A bad setting.
    pub fn setting(name: &str, value: impl ToString, expected: &str) -> Self {
        Self::Setting {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}
