//! Errors.

use std::io;

/// Why a sandboxed run did not happen (a command that ran and failed is not
/// an error: see [`crate::RunOutput::status`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec cannot be run as given.
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
    /// An isolation layer this sandbox requires does not work on this machine.
    #[error("isolation layer unavailable: {layer}: {reason}")]
    Unavailable {
        /// The layer, e.g. `"user namespace"`.
        layer: &'static str,
        /// What the probe saw.
        reason: String,
    },
    /// A setup step inside the new child failed; nothing was executed.
    #[error("sandbox setup failed at {stage}: {source}")]
    Setup {
        /// The step, e.g. `"mount /proc"`.
        stage: &'static str,
        /// The errno it returned.
        #[source]
        source: io::Error,
    },
    /// Starting the child failed (for example the program does not exist).
    #[error("could not start the command: {0}")]
    Spawn(#[source] io::Error),
    /// Watching or reaping the child failed.
    #[error("i/o error while supervising the command: {0}")]
    Io(#[from] io::Error),
    /// Compiling the seccomp filter failed.
    #[error("seccomp filter: {0}")]
    Seccomp(String),
}
