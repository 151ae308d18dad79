//! Sandboxed shell and code runner for OptiClaw's tool orchestrator.
//!
//! A [`Sandbox`] runs one command described by a [`RunSpec`] and returns a
//! [`RunOutput`]: exit status, capped stdout/stderr, resource usage and an
//! [`IsolationReport`] of the layers actually applied. [`NamespaceSandbox`]
//! is the implementation: user, mount, PID, IPC, UTS and network namespaces,
//! a read-only view of the host tree with only granted directories writable,
//! rlimits, `no_new_privs`, Landlock and seccomp. [`probe`] measures which of
//! these the running kernel offers. With the `microvm` feature,
//! `MicroVmSandbox` runs each command in its own QEMU microVM instead.
//! these the running kernel offers. [`egress`] gives a run per-host network
//! access through a proxy that is its only way out.
//!
//! ```no_run
//! use std::time::Duration;
//! use opticlaw_sandbox::{Limits, NamespaceSandbox, RunSpec, Sandbox};
//!
//! let sandbox = NamespaceSandbox::new()?;
//! let spec = RunSpec::new(["sh", "-c", "echo hi > out.txt && cat out.txt"])
//!     .writable("/srv/work")
//!     .workdir("/srv/work")
//!     .limits(Limits { wall_clock: Duration::from_secs(5), ..Limits::default() });
//! let out = sandbox.run(&spec)?;
//! println!("{:?} {}", out.status, out.stdout.text());
//! # Ok::<(), opticlaw_sandbox::SandboxError>(())
//! ```
//!
//! This crate is Linux-only and knows nothing of capability tokens: the
//! orchestrator verifies the token and turns its grant into a [`RunSpec`].

#![cfg(target_os = "linux")]

mod child;
pub mod egress;
mod error;
mod landlock;
#[cfg(feature = "microvm")]
pub mod microvm;
mod namespace;
mod probe;
mod seccomp;
mod spec;
mod supervise;

pub use error::SandboxError;
#[cfg(feature = "microvm")]
pub use microvm::MicroVmSandbox;
pub use namespace::NamespaceSandbox;
pub use probe::{DEFAULT_SANDBOX_ID, ProbeReport, probe};
pub use seccomp::DENIED_SYSCALLS;
pub use spec::{
    Captured, DEFAULT_PATH, ExitStatus, IsolationReport, Limits, Network, ResourceUsage, RunOutput,
    RunSpec,
};

/// Something that runs a command in isolation.
///
/// Implementations must be fail-closed: if a layer they promise cannot be set
/// up, `run` returns an error and nothing is executed.
pub trait Sandbox: Send + Sync {
    /// Runs `spec` to completion (or to its wall-clock limit).
    fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError>;
}
