//! What to run ([`RunSpec`]) and what came back ([`RunOutput`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::egress::Egress;

/// Network policy for a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A new network namespace: only `lo`, no route to anything else.
    #[default]
    None,
    /// A new network namespace whose only way out is an HTTP proxy on its
    /// loopback that admits the granted hosts (see [`crate::egress`]).
    Proxied(Egress),
    /// The host's network namespace, unfiltered.
    Full,
}

/// Resource limits applied to the command and everything it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_CPU`: CPU seconds before `SIGXCPU` (and `SIGKILL` one second later).
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_AS`: address-space bytes; allocations beyond it fail.
    pub memory_bytes: Option<u64>,
    /// `RLIMIT_NPROC`: processes (and threads) the sandbox user may have at once.
    pub max_processes: Option<u64>,
    /// `RLIMIT_FSIZE`: largest file the command may write.
    pub file_size_bytes: Option<u64>,
    /// Wall-clock time after which the parent kills the whole sandbox.
    pub wall_clock: Duration,
    /// Bytes kept of stdout and of stderr (each); the rest is read and dropped.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: Some(10),
            memory_bytes: Some(1 << 30),
            max_processes: Some(64),
            file_size_bytes: Some(64 << 20),
            wall_clock: Duration::from_secs(30),
            output_bytes: 1 << 20,
        }
    }
}

/// One command to run in a sandbox.
///
/// The command sees the host's file tree read-only, except for
/// [`writable`](Self::writable) directories and a private, empty `/tmp`.
/// Its environment holds only [`env`](Self::env) plus the variables named in
/// [`env_allow`](Self::env_allow) that the caller has set.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Program and arguments. A program without a `/` is looked up in the
    /// `PATH` the command will get.
    pub argv: Vec<OsString>,
    /// Variables set for the command (wins over `env_allow`).
    pub env: BTreeMap<OsString, OsString>,
    /// Names of variables passed through from the caller's environment.
    pub env_allow: Vec<OsString>,
    /// Working directory, as seen inside the sandbox.
    pub workdir: PathBuf,
    /// Directories the command may write to (granted); must exist.
    pub writable: Vec<PathBuf>,
    /// Directories replaced by an empty, read-only tmpfs: the daemon's
    /// home, key stores. Must be canonical and hold no granted directory.
    pub hidden: Vec<PathBuf>,
    /// Make the host tree read-only inside the sandbox (default `true`).
    /// When `false` the tree keeps its host mount flags, and only Landlock
    /// (where the kernel has it) stops writes outside the granted directories.
    pub read_only_root: bool,
    /// Network policy.
    pub network: Network,
    /// Resource limits.
    pub limits: Limits,
}

/// `PATH` given to the command when the spec sets none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl RunSpec {
    /// A spec for `argv` with defaults: working directory `/tmp` (the private
    /// one), nothing writable but `/tmp`, read-only root, no network, default
    /// [`Limits`].
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            env_allow: Vec::new(),
            workdir: PathBuf::from("/tmp"),
            writable: Vec::new(),
            hidden: Vec::new(),
            read_only_root: true,
            network: Network::None,
            limits: Limits::default(),
        }
    }

    /// Grants write access to `dir` (and makes it the working directory if
    /// none was chosen yet).
    pub fn writable(mut self, dir: impl Into<PathBuf>) -> Self {
        self.writable.push(dir.into());
        self
    }

    /// Hides `dir`: the command sees an empty directory there.
    pub fn hidden(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hidden.push(dir.into());
        self
    }

    /// Sets the working directory.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = dir.into();
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the network policy.
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (for example `SIGKILL` at the timeout, `SIGXCPU`
    /// at the CPU limit).
    Signaled(i32),
}

impl ExitStatus {
    /// `true` for `Exited(0)`.
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }

    /// The exit code, if the command exited.
    pub fn code(self) -> Option<i32> {
        match self {
            Self::Exited(code) => Some(code),
            Self::Signaled(_) => None,
        }
    }
}

/// One captured output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    /// The first [`Limits::output_bytes`] bytes.
    pub bytes: Vec<u8>,
    /// Whether more was written than was kept.
    pub truncated: bool,
    /// Everything the command wrote, kept or not.
    pub total_bytes: u64,
}

impl Captured {
    /// The kept bytes as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Resources the run used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResourceUsage {
    /// From start to exit (or to the kill).
    pub wall: Duration,
    /// User CPU time.
    pub user_cpu: Duration,
    /// System CPU time.
    pub system_cpu: Duration,
    /// Peak resident set size of the largest process, in bytes.
    pub max_rss_bytes: u64,
}

/// Which isolation layers were applied to this run.
///
/// A layer listed `true` was set up before the command was executed; setup is
/// fail-closed, so a layer that the probe found available and that then failed
/// makes [`crate::Sandbox::run`] return an error instead of running.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IsolationReport {
    /// Host uid the command ran as (never 0: root callers drop to an
    /// unprivileged uid first).
    pub host_uid: u32,
    /// Host gid the command ran as.
    pub host_gid: u32,
    /// New user namespace.
    pub user_ns: bool,
    /// New mount namespace.
    pub mount_ns: bool,
    /// New PID namespace (the command is PID 1; all of it dies together).
    pub pid_ns: bool,
    /// New IPC namespace.
    pub ipc_ns: bool,
    /// New UTS namespace.
    pub uts_ns: bool,
    /// New network namespace (no network).
    pub net_ns: bool,
    /// Hosts reachable through the run's egress proxy (empty: none).
    pub egress_hosts: Vec<String>,
    /// Host tree mounted read-only (recursively).
    pub read_only_root: bool,
    /// Granted directories bind-mounted writable.
    pub writable_dirs: Vec<String>,
    /// Private tmpfs on `/tmp`.
    pub private_tmp: bool,
    /// Minimal `/dev` (null, zero, full, random, urandom).
    pub minimal_dev: bool,
    /// `/proc` mounted for the new PID namespace.
    pub proc_remounted: bool,
    /// `RLIMIT_*` applied.
    pub rlimits: bool,
    /// `PR_SET_NO_NEW_PRIVS` set.
    pub no_new_privs: bool,
    /// Landlock ABI version enforced, if any.
    pub landlock_abi: Option<u32>,
    /// Seccomp deny-list filter installed.
    pub seccomp: bool,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOutput {
    /// How the command ended.
    pub status: ExitStatus,
    /// Whether the wall-clock limit was hit (the sandbox was killed).
    pub timed_out: bool,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
    /// Resources used.
    pub usage: ResourceUsage,
    /// Isolation layers applied.
    pub isolation: IsolationReport,
}
