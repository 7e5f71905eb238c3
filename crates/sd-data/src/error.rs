//! The one error type of the crate.
//!
//! Everything a user or a file can get wrong ends here, as a variant that names the path (or URL,
//! or configuration field) and the value that was wrong. Paths inside an archive are written as
//! `archive.tar.gz[member/path]`, see [`entry_path`].

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong while finding, downloading, reading or caching a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder that should exist does not.
    #[error("{path}: not found ({what})", path = .path.display())]
    Missing {
        /// The path that was looked for.
        path: PathBuf,
        /// What was expected there, e.g. "CIFAR-10 member data_batch_3.bin".
        what: String,
    },

    /// An operating-system error while reading or writing a path.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A file that exists but is truncated, corrupt or not in the expected format.
    #[error("{path}: {problem}", path = .path.display())]
    Format {
        /// The file (or archive member).
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// An image that cannot be decoded or does not have the expected size.
    #[error("{path}: {problem}", path = .path.display())]
    Image {
        /// The image file (or archive member).
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A label outside the class range of the data set.
    #[error(
        "{path}: label {label} of record {record} is out of range ({classes} classes)",
        path = .path.display()
    )]
    Label {
        /// The file holding the label.
        path: PathBuf,
        /// The zero-based record (image) number within that file.
        record: usize,
        /// The label as stored in the file.
        label: i64,
        /// The number of classes of the data set.
        classes: usize,
    },

    /// A class folder of an image-folder data set that holds no image.
    #[error("{path}: class folder is empty", path = .path.display())]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
    },

    /// An archive member whose path or type could make it land outside the target folder.
    #[error(
        "{archive}: refusing member {member:?}: {problem}",
        archive = .archive.display()
    )]
    UnsafeEntry {
        /// The archive.
        archive: PathBuf,
        /// The member's path as stored in the archive.
        member: String,
        /// Why it is refused (absolute path, `..`, link, device file).
        problem: String,
    },

    /// A file whose checksum differs from the published one.
    #[error(
        "{path}: {algorithm} checksum is {actual}, expected {expected}",
        path = .path.display()
    )]
    Checksum {
        /// The file that was checked.
        path: PathBuf,
        /// `md5` or `sha256`.
        algorithm: &'static str,
        /// The published checksum.
        expected: String,
        /// The checksum of the file on disk.
        actual: String,
    },

    /// An HTTP download that failed or ended early.
    #[error("{url}: {problem}")]
    Download {
        /// The URL that was requested.
        url: String,
        /// What went wrong.
        problem: String,
    },

    /// A configuration value that cannot be used.
    #[error("configuration field `{field}` = {value}: {problem}")]
    Config {
        /// The field name, as in [`DatasetConfig`](crate::DatasetConfig).
        field: &'static str,
        /// The value received.
        value: String,
        /// What was expected.
        problem: String,
    },
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`DataError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A [`DataError::Config`] for `field`.
    pub fn config(field: &'static str, value: impl ToString, problem: impl Into<String>) -> Self {
        Self::Config {
            field,
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

/// The display path of `member` inside `archive`: `archive[member]`.
pub fn entry_path(archive: &Path, member: &str) -> PathBuf {
    PathBuf::from(format!("{}[{member}]", archive.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_the_problem() {
        let err = DataError::format("/data/x.bin", "length 7 is not a multiple of 3073");
        assert_eq!(
            err.to_string(),
            "/data/x.bin: length 7 is not a multiple of 3073"
        );

        let err = DataError::Label {
            path: "a.bin".into(),
            record: 4,
            label: 12,
            classes: 10,
        };
        assert_eq!(
            err.to_string(),
            "a.bin: label 12 of record 4 is out of range (10 classes)"
        );
    }

    #[test]
    fn archive_members_are_shown_inside_brackets() {
        let path = entry_path(Path::new("c.tar.gz"), "cifar10/train/cat/0001.jpg");
        assert_eq!(path, PathBuf::from("c.tar.gz[cifar10/train/cat/0001.jpg]"));
    }
}
