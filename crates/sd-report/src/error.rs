//! What can go wrong when reading run folders and drawing from them.

use std::path::{Path, PathBuf};

/// An error that names the file or folder at fault and what was expected of it.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or folder that is missing, or whose content is not what a run
    /// or a sweep writes.
    #[error("{path}: {problem}", path = .path.display())]
    Input {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it, and what was expected.
        problem: String,
    },
    /// The operating system refused to read or write a file.
    // Not a `source`: the message already carries the reason, and an error
    // chain would print it twice.
    #[error("cannot {action} {path}: {reason}", path = .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was attempted: "read", "write", "create".
        action: &'static str,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// The plotting library failed to draw or save a figure.
    #[error("cannot draw {path}: {problem}", path = .path.display())]
    Draw {
        /// The figure being drawn.
        path: PathBuf,
        /// The plotting library's message.
        problem: String,
    },
    /// Nothing to draw: no run, or no epoch with a value in any run.
    #[error("nothing to draw for {what}: {why}")]
    Empty {
        /// The figure or table.
        what: String,
        /// Why there is no data for it.
        why: String,
    },
}

impl ReportError {
    /// An [`Input`](Self::Input) error about `path`.
    pub fn input(path: &Path, problem: impl Into<String>) -> Self {
        Self::Input {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// An [`Io`](Self::Io) error about `path`.
    pub fn io(path: &Path, action: &'static str, reason: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            action,
            reason,
        }
    }

    /// A [`Draw`](Self::Draw) error about `path`.
    pub fn draw(path: &Path, problem: impl std::fmt::Display) -> Self {
        Self::Draw {
            path: path.to_path_buf(),
            problem: problem.to_string(),
        }
    }
}

/// Reads a whole text file, saying which file is missing.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReportError::input(
            path,
            format!("no such file (expected {what})"),
        )),
        Err(e) => Err(ReportError::io(path, "read", e)),
    }
}
