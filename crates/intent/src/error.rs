//! Errors of this crate.

use std::path::PathBuf;

/// Everything that can go wrong loading data, training or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    /// A data file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A data file is not the expected JSON shape.
    #[error("{path} is not a list of [utterance, intent] pairs: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A model file is damaged or of another version.
    #[error("bad model file: {0}")]
    BadModel(String),
    /// Training options or data make training impossible.
    #[error("cannot train: {0}")]
    Training(String),
}
