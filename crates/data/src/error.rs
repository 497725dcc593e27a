//! The one error type of the crate. Every failure that comes from a file names that file, so
//! a bad download or a wrong path is fixable from the message alone.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A gzip member header was recognised but the stream behind it does not decode.
    #[error("{path}: corrupt gzip stream: {source}", path = .path.display())]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: expected {expected}, found {found}", path = .path.display())]
    Format {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// Lists every name tried, because the loaders accept each file with or without `.gz`.
    #[error("no such file; tried {}", list_paths(.tried))]
    NotFound { tried: Vec<PathBuf> },

    #[error(
        "{images} holds {image_count} images but {labels} holds {label_count} labels",
        images = .images.display(),
        labels = .labels.display()
    )]
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },

    #[error("{path}: label {value} of item {index} is outside 0..10", path = .path.display())]
    Label {
        path: PathBuf,
        index: usize,
        value: u8,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn format(
        path: &Path,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
