//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the memory engine.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// SQLite refused an operation.
    #[error("memory store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A record's content is larger than the engine accepts.
    #[error("record content is {size} bytes, over the limit of {limit} bytes")]
    Oversized {
        /// Size of the rejected content in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// Input bytes were not valid UTF-8.
    #[error("record content is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A record field failed validation.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// A vector had a different dimension than the index holds.
    #[error(
        "embedding dimension mismatch: index holds {expected}-dimensional vectors, got {actual}"
    )]
    DimensionMismatch {
        /// Dimension the index was created with.
        expected: usize,
        /// Dimension that was offered.
        actual: usize,
    },
    /// The embedding model could not be loaded or run.
    #[error("embedder: {0}")]
    Embedder(String),
    /// The embedding model directory is missing a file.
    #[error("embedding model file missing: {}", .0.display())]
    ModelMissing(PathBuf),
    /// A JSON Lines import had a bad line; nothing was imported.
    #[error("import line {line}: {message}")]
    Import {
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        message: String,
    },
    /// No record with this id.
    #[error("no memory record {0}")]
    NotFound(uuid::Uuid),
    /// File-system or stream I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A benchmark input file was malformed.
    #[error("benchmark input {}: {message}", path.display())]
    BenchInput {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = MemoryError> = std::result::Result<T, E>;
