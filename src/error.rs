//! One error type for the whole engine. Every variant carries what a user needs to fix the input:
//! the file, the tensor key, or both shapes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: cannot decode image: {reason}")]
    Image { path: PathBuf, reason: String },

    #[error("{path}: {reason}")]
    Weights { path: PathBuf, reason: String },

    #[error("{path}: tensor '{key}' has shape {found:?}, but the model expects {expected:?}")]
    ShapeMismatch { path: PathBuf, key: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("shape error in {op}: {reason}")]
    Shape { op: &'static str, reason: String },

    #[error("{0}")]
    Invalid(String),

    #[error("backend {backend}: {reason}")]
    Backend { backend: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn shape(op: &'static str, reason: impl Into<String>) -> Self {
        Error::Shape { op, reason: reason.into() }
    }
}
