//! [`NamespaceSandbox`]: Linux namespaces, a read-only bind of the host tree,
//! rlimits, `no_new_privs`, Landlock and seccomp.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::resource::{RLIM_INFINITY, Resource};

use crate::child::{ChildPlan, DEVICE_PATHS, GrantMount, Stage};
use crate::egress::listener::Channel;
use crate::egress::{PROXY_PORT, proxy, proxy_env};
use crate::landlock::{LandlockPlan, Target};
use crate::probe::{DEFAULT_SANDBOX_ID, ProbeReport, probe};
use crate::seccomp::SeccompPlan;
use crate::spec::{DEFAULT_PATH, IsolationReport, Network, RunOutput, RunSpec};
use crate::supervise::{read_report, supervise};
use crate::{Sandbox, SandboxError};

/// Size of the private `/tmp` (tmpfs, counted against the host's memory).
const TMP_SIZE: &str = "64m";

/// Runs commands in fresh user, mount, PID, IPC, UTS and (by default)
/// network namespaces.
///
/// The command sees the host tree read-only (recursively), a private `/tmp`,
/// a minimal `/dev`, its own `/proc`, and the granted directories writable.
/// It runs as PID 1 of its PID namespace, so killing it kills everything it
/// started. When the caller is root the command runs as an unprivileged host
/// uid (`nobody` by default, see [`NamespaceSandbox::with_identity`]): root in
/// a user namespace mapped to host root could read the host's secrets, and
/// `RLIMIT_NPROC` is not enforced for uid 0. Granted directories must then be
/// writable by that uid.
///
/// ```no_run
/// use opticlaw_sandbox::{NamespaceSandbox, RunSpec, Sandbox};
///
/// let sandbox = NamespaceSandbox::new()?;
/// let out = sandbox.run(&RunSpec::new(["/bin/echo", "hello"]))?;
/// assert!(out.status.success());
/// assert_eq!(out.stdout.text(), "hello\n");
/// # Ok::<(), opticlaw_sandbox::SandboxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NamespaceSandbox {
    probe: Arc<ProbeReport>,
    uid: u32,
    gid: u32,
    seccomp: Option<SeccompPlan>,
}

impl NamespaceSandbox {
    /// Probes the machine and prepares the sandbox. Fails if user, mount or
    /// PID namespaces, `mount_setattr` or pidfds are unavailable; Landlock and
    /// seccomp are used when the kernel has them (see the run's
    /// [`IsolationReport`]).
    pub fn new() -> Result<Self, SandboxError> {
        let is_root = nix::unistd::geteuid().is_root();
        let (uid, gid) = if is_root {
            (DEFAULT_SANDBOX_ID, DEFAULT_SANDBOX_ID)
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        };
        Self::with_probe(probe(), uid, gid)
    }

    /// Like [`new`](Self::new), but a root caller's commands run as `uid`/`gid`
    /// (which must not be 0). Ignored for non-root callers, whose commands
    /// always run as themselves.
    pub fn with_identity(uid: u32, gid: u32) -> Result<Self, SandboxError> {
        if uid == 0 || gid == 0 {
            return Err(SandboxError::InvalidSpec(
                "the sandbox identity must not be root".into(),
            ));
        }
        let mut s = Self::new()?;
        if nix::unistd::geteuid().is_root() {
            s.uid = uid;
            s.gid = gid;
        }
        Ok(s)
    }

    fn with_probe(probe: ProbeReport, uid: u32, gid: u32) -> Result<Self, SandboxError> {
        for (ok, layer) in [
            (probe.user_ns, "user namespace"),
            (probe.mount_ns, "mount namespace"),
            (probe.pid_ns, "PID namespace"),
            (probe.ipc_ns, "IPC namespace"),
            (probe.uts_ns, "UTS namespace"),
            (probe.mount_setattr, "mount_setattr"),
            (probe.pidfd, "pidfd_open"),
        ] {
            if !ok {
                return Err(SandboxError::Unavailable {
                    layer,
                    reason: probe.to_string(),
                });
            }
        }
        let seccomp = if probe.seccomp {
            Some(SeccompPlan::new()?)
        } else {
            None
        };
        Ok(Self {
            probe: Arc::new(probe),
            uid,
            gid,
            seccomp,
        })
    }

    /// What the probe measured when this sandbox was made.
    pub fn probe_report(&self) -> &ProbeReport {
        &self.probe
    }

    /// The host `(uid, gid)` commands run as.
    pub fn identity(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// Builds the child's plan. The returned descriptors pin the granted
    /// directories and must stay open until the child has been spawned.
    fn plan(
        &self,
        spec: &RunSpec,
        report_fd: i32,
    ) -> Result<(ChildPlan, Vec<PathBuf>, Vec<OwnedFd>), SandboxError> {
        let grants = canonical_grants(&spec.writable)?;
        let hidden = canonical_hidden(&spec.hidden, &grants)?;
        let pins = grants
            .iter()
            .map(|g| pin_dir(g))
            .collect::<Result<Vec<_>, _>>()?;
        let mut unshare = CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS;
        // Only the host's network skips the new namespace; a proxied run
        // reaches out through the socket bound in it.
        let own_network = spec.network != Network::Full;
        if own_network {
            if !self.probe.net_ns {
                return Err(SandboxError::Unavailable {
                    layer: "network namespace",
                    reason: self.probe.to_string(),
                });
            }
            unshare |= CloneFlags::CLONE_NEWNET;
        }
        let limits = &spec.limits;
        let mut rlimits = Vec::new();
        if let Some(cpu) = limits.cpu_seconds {
            rlimits.push((Resource::RLIMIT_CPU, cpu, cpu.saturating_add(1)));
        }
        for (resource, value) in [
            (Resource::RLIMIT_AS, limits.memory_bytes),
            (Resource::RLIMIT_NPROC, limits.max_processes),
            (Resource::RLIMIT_FSIZE, limits.file_size_bytes),
        ] {
            if let Some(v) = value {
                rlimits.push((resource, v, v));
            } else {
                rlimits.push((resource, RLIM_INFINITY, RLIM_INFINITY));
            }
        }
        let landlock = self.probe.landlock_abi.map(|abi| {
            let mut dirs = vec![Target::Path(c"/tmp".to_owned())];
            dirs.extend(pins.iter().map(|fd| Target::Fd(fd.as_raw_fd())));
            let files = DEVICE_PATHS
                .iter()
                .map(|&p| Target::Path(p.to_owned()))
                .collect();
            LandlockPlan::new(abi, dirs, files)
        });
        let grant_mounts = grants
            .iter()
            .zip(&pins)
            .map(|(g, fd)| GrantMount {
                source: cstring(&prefixed("/oldroot", g)),
                pin_fd: fd.as_raw_fd(),
                target: cstring(&prefixed("/newroot", g)),
                mkdirs: g
                    .ancestors()
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .skip(1)
                    .map(|a| cstring(&prefixed("/newroot", a)))
                    .collect(),
            })
            .collect();
        let plan = ChildPlan {
            drop_to: nix::unistd::geteuid()
                .is_root()
                .then_some((self.uid, self.gid)),
            unshare,
            uid_map: cstring(OsStr::new(&format!("{0} {0} 1\n", self.uid))),
            gid_map: cstring(OsStr::new(&format!("{0} {0} 1\n", self.gid))),
            read_only_root: spec.read_only_root,
            tmp_options: cstring(OsStr::new(&format!("mode=1777,size={TMP_SIZE}"))),
            grants: grant_mounts,
            hidden: hidden
                .iter()
                .map(|h| cstring(&prefixed("/newroot", h)))
                .collect(),
            workdir: cstring(spec.workdir.as_os_str()),
            loopback: own_network,
            rlimits,
            landlock,
            seccomp: self.seccomp.clone(),
            report_fd,
            egress: None,
        };
        Ok((plan, grants, pins))
    }

    fn report(&self, plan: &ChildPlan, spec: &RunSpec, grants: &[PathBuf]) -> IsolationReport {
        IsolationReport {
            host_uid: self.uid,
            host_gid: self.gid,
            user_ns: true,
            mount_ns: true,
            pid_ns: true,
            ipc_ns: true,
            uts_ns: true,
            net_ns: plan.unshare.contains(CloneFlags::CLONE_NEWNET),
            egress_hosts: match &spec.network {
                Network::Proxied(egress) => {
                    egress.rules().iter().map(ToString::to_string).collect()
                }
                Network::None | Network::Full => Vec::new(),
            },
            read_only_root: plan.read_only_root,
            writable_dirs: grants.iter().map(|g| g.display().to_string()).collect(),
            private_tmp: true,
            minimal_dev: true,
            proc_remounted: true,
            rlimits: true,
            no_new_privs: true,
            landlock_abi: plan.landlock.as_ref().map(LandlockPlan::abi),
            seccomp: plan.seccomp.is_some(),
        }
    }
}

impl Sandbox for NamespaceSandbox {
    fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
        let start = Instant::now();
        let env = environment(spec);
        let program = resolve_program(spec, &env)?;
        if !spec.workdir.is_absolute() {
            return Err(SandboxError::InvalidSpec(
                "the working directory must be absolute".into(),
            ));
        }
        let (report_r, report_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let (mut plan, grants, pins) = self.plan(spec, report_w.as_raw_fd())?;
        let egress = match &spec.network {
            Network::Proxied(egress) => Some((egress.clone(), Channel::new()?)),
            Network::None | Network::Full => None,
        };
        plan.egress = egress.as_ref().map(|(_, ch)| (ch.child_fd(), PROXY_PORT));
        let isolation = self.report(&plan, spec, &grants);

        let mut cmd = Command::new(&program);
        cmd.arg0(&spec.argv[0])
            .args(&spec.argv[1..])
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the hook only makes async-signal-safe calls on data the plan
        // prepared before the fork; see `child` for the full argument.
        unsafe {
            cmd.pre_exec(move || plan.run_in_child());
        }
        let spawned = cmd.spawn();
        drop(cmd);
        drop(report_w);
        drop(pins);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return Err(setup_error(&report_r, e)),
        };
        // The proxy lives until the command is gone (dropped after
        // `supervise`); the command's first connections wait in the
        // socket's backlog meanwhile.
        let _proxy = match egress.map(|(egress, channel)| {
            channel
                .receive()
                .and_then(|listener| proxy::start(listener, egress))
        }) {
            None => None,
            Some(Ok(proxy)) => Some(proxy),
            Some(Err(e)) => {
                // Fail closed: the command got no way out; stop it.
                let _ = child.kill();
                let _ = child.wait();
                return Err(SandboxError::Setup {
                    stage: "start the egress proxy",
                    source: e,
                });
            }
        };
        let done = supervise(
            child,
            start,
            spec.limits.wall_clock,
            spec.limits.output_bytes,
        )?;
        Ok(RunOutput {
            status: done.status,
            timed_out: done.timed_out,
            stdout: done.stdout,
            stderr: done.stderr,
            usage: done.usage,
            isolation,
        })
    }
}

fn setup_error(report: &OwnedFd, spawn_error: std::io::Error) -> SandboxError {
    match read_report(report) {
        Some((stage, errno)) => SandboxError::Setup {
            stage: Stage::from_u8(stage).map_or("unknown stage", Stage::name),
            source: std::io::Error::from_raw_os_error(errno),
        },
        None => SandboxError::Spawn(spawn_error),
    }
}

fn cstring(s: &OsStr) -> CString {
    // Paths and numbers never contain NUL: canonicalised paths cannot, and
    // the others are checked by `canonical_grants`/`resolve_program`.
    CString::new(s.as_bytes()).unwrap_or_default()
}

fn prefixed(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path.as_os_str());
    s
}

/// Checks that granted directories are canonical absolute paths (no `..`,
/// no symlinks), sorted parents first.
pub(crate) fn canonical_grants(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    let mut out = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let canon = dir.canonicalize().map_err(|e| {
            SandboxError::InvalidSpec(format!("granted dir {}: {e}", dir.display()))
        })?;
        if canon != *dir {
            // `../` or a symlink in a grant would grant something other than
            // what the caller wrote (and what a token named): refuse.
            return Err(SandboxError::InvalidSpec(format!(
                "granted dir {} is not canonical (it resolves to {})",
                dir.display(),
                canon.display()
            )));
        }
        if !canon.is_dir() || canon == Path::new("/") {
            return Err(SandboxError::InvalidSpec(format!(
                "granted dir {} must be a directory other than /",
                dir.display()
            )));
        }
        out.push(canon);
    }
    out.sort_by_key(|p| p.components().count());
    out.dedup();
    Ok(out)
}

/// Checks that hidden directories are canonical directories that hold no
/// granted directory (the grant would vanish under the tmpfs).
fn canonical_hidden(dirs: &[PathBuf], grants: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    let mut out = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let canon = dir
            .canonicalize()
            .map_err(|e| SandboxError::InvalidSpec(format!("hidden dir {}: {e}", dir.display())))?;
        if canon != *dir || !canon.is_dir() || canon == Path::new("/") {
            return Err(SandboxError::InvalidSpec(format!(
                "hidden dir {} must be a canonical directory other than /",
                dir.display()
            )));
        }
        if let Some(grant) = grants.iter().find(|g| g.starts_with(&canon)) {
            return Err(SandboxError::InvalidSpec(format!(
                "hidden dir {} holds the granted dir {}",
                dir.display(),
                grant.display()
            )));
        }
        out.push(canon);
    }
    Ok(out)
}

/// Opens a canonical granted directory as an `O_PATH` descriptor and checks
/// that it is still the directory that was canonicalised (no component was
/// swapped for a symlink in between).
pub(crate) fn pin_dir(dir: &Path) -> Result<OwnedFd, SandboxError> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SandboxError::InvalidSpec(format!("granted dir {}: {e}", dir.display())))?;
    let seen = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if seen != dir {
        return Err(SandboxError::InvalidSpec(format!(
            "granted dir {} moved to {} while being granted",
            dir.display(),
            seen.display()
        )));
    }
    Ok(fd)
}

/// The command's environment: `env_allow` names taken from ours, then `env`,
/// and a default `PATH` if neither set one.
pub(crate) fn environment(spec: &RunSpec) -> Vec<(OsString, OsString)> {
    let mut env: std::collections::BTreeMap<OsString, OsString> = spec
        .env_allow
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (k.clone(), v)))
        .collect();
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    if let Network::Proxied(_) = spec.network {
        env.extend(proxy_env().map(|(k, v)| (k.into(), v.into())));
    }
    env.into_iter().collect()
}

/// Resolves `argv[0]` against the command's `PATH` (the sandbox shows the
/// host tree, so the host lookup finds the same file).
fn resolve_program(spec: &RunSpec, env: &[(OsString, OsString)]) -> Result<PathBuf, SandboxError> {
    let Some(arg0) = spec.argv.first() else {
        return Err(SandboxError::InvalidSpec("empty argv".into()));
    };
    if spec.argv.iter().any(|a| a.as_bytes().contains(&0)) {
        return Err(SandboxError::InvalidSpec("argv contains a NUL byte".into()));
    }
    let path = Path::new(arg0);
    if arg0.as_bytes().contains(&b'/') {
        return Ok(path.to_path_buf());
    }
    let search = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    std::env::split_paths(&search)
        .map(|dir| dir.join(path))
        .find(|p| p.is_file())
        .ok_or_else(|| SandboxError::InvalidSpec(format!("{} not found in PATH", path.display())))
}
