//! [`MicroVmSandbox`]: each run boots its own Linux guest under QEMU's
//! `microvm` machine and runs the command there.
//!
//! The guest's whole file tree is an initramfs of busybox (nothing of the
//! host is visible), the granted directories are shared read-write over
//! virtio-9p, there is no network card unless the spec grants the network,
//! and the command's stdout, stderr and exit status come back over three
//! separate virtio-console ports (see [`initramfs::INIT`]).

mod assets;
mod initramfs;
mod qemu;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

pub use assets::{ASSET_DIR_ENV, Assets, DEFAULT_ASSET_DIR};
pub use qemu::{Accelerator, AcceleratorChoice, kvm_usable};

use crate::namespace::{canonical_grants, environment, pin_dir};
use crate::probe::DEFAULT_SANDBOX_ID;
use crate::spec::{ExitStatus, IsolationReport, Network, RunOutput, RunSpec};
use crate::supervise::supervise_streams;
use crate::{Sandbox, SandboxError};

/// Most grants one run may have (each is a 9p device).
const MAX_GRANTS: usize = 16;
/// Guest memory on top of the command's memory limit, for the guest kernel.
const KERNEL_MEMORY_MIB: u64 = 96;
/// Smallest guest (the Debian kernel needs about this much to boot).
const MIN_MEMORY_MIB: u64 = 160;
/// Bytes of console or QEMU log quoted in an error.
const LOG_TAIL: usize = 2048;

/// How to build a [`MicroVmSandbox`].
#[derive(Debug, Clone)]
pub struct MicroVmConfig {
    /// Where the base initramfs is cached (by content hash).
    pub cache_dir: PathBuf,
    /// The guest's files; `None`: [`Assets::locate`].
    pub assets: Option<Assets>,
    /// The accelerator to use.
    pub accelerator: AcceleratorChoice,
    /// Virtual CPUs per guest.
    pub vcpus: u32,
}

impl MicroVmConfig {
    /// Defaults: assets located, accelerator chosen automatically, 1 vCPU.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            assets: None,
            accelerator: AcceleratorChoice::Auto,
            vcpus: 1,
        }
    }
}

/// What a machine offers for microVMs (for `opticlaw doctor`).
#[derive(Debug, Clone)]
pub struct Availability {
    /// The assets, or what is missing.
    pub assets: Result<Assets, String>,
    /// The accelerator [`AcceleratorChoice::Auto`] picks, and why not KVM.
    pub accelerator: (Accelerator, Option<String>),
}

/// Looks for QEMU, the guest kernel and busybox, and checks `/dev/kvm`;
/// boots nothing.
pub fn availability() -> Availability {
    let accelerator = match kvm_usable() {
        Ok(()) => (Accelerator::Kvm, None),
        Err(why) => (Accelerator::Tcg, Some(why)),
    };
    Availability {
        assets: Assets::locate(),
        accelerator,
    }
}

/// Runs each command in a fresh microVM.
///
/// The command runs in the guest as `nobody` with `no_new_privs`, with the
/// spec's CPU, address-space, process and file-size limits as rlimits; the
/// VM gets the memory limit plus room for its kernel, and QEMU is killed at
/// the wall-clock limit. QEMU itself runs with its seccomp sandbox and, for
/// a root caller, as host `nobody` (`-runas`), so the 9p server can write
/// only where that uid may: granted directories must be writable by it,
/// as for [`crate::NamespaceSandbox`].
///
/// Differences from the namespace runner: the guest's programs are
/// busybox's (the host tree is not visible at all, so `hidden` is moot and
/// `read_only_root` always holds); a program that is not found exits 127
/// rather than failing the run; a command killed by a signal reports
/// `Exited(128 + signal)`, as a shell would. The run's
/// [`IsolationReport`] lists no namespaces, Landlock or seccomp (none is
/// applied to the command: its boundary is the guest kernel).
#[derive(Debug, Clone)]
pub struct MicroVmSandbox {
    assets: Assets,
    base_image: PathBuf,
    accelerator: Accelerator,
    why_not_kvm: Option<String>,
    vcpus: u32,
    run_as: Option<(String, u32, u32)>,
}

impl MicroVmSandbox {
    /// Locates the assets, picks the accelerator and builds (or finds) the
    /// cached base initramfs in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Result<Self, SandboxError> {
        Self::with_config(MicroVmConfig::new(cache_dir))
    }

    /// Like [`new`](Self::new) with every choice spelled out.
    pub fn with_config(config: MicroVmConfig) -> Result<Self, SandboxError> {
        let unavailable = |layer, reason| SandboxError::Unavailable { layer, reason };
        let assets = match config.assets {
            Some(a) => a,
            None => Assets::locate().map_err(|r| unavailable("microVM assets", r))?,
        };
        let (accelerator, why_not_kvm) =
            qemu::resolve(config.accelerator).map_err(|r| unavailable("KVM", r))?;
        let base_image = initramfs::base_image(&assets, &config.cache_dir.join("microvm"))
            .map_err(|e| unavailable("microVM initramfs", e.to_string()))?;
        let run_as = nix::unistd::geteuid()
            .is_root()
            .then(|| ("nobody".to_owned(), DEFAULT_SANDBOX_ID, DEFAULT_SANDBOX_ID));
        Ok(Self {
            assets,
            base_image,
            accelerator,
            why_not_kvm,
            vcpus: config.vcpus.max(1),
            run_as,
        })
    }

    /// The accelerator runs use, and why KVM is not used when it is not.
    pub fn accelerator(&self) -> (Accelerator, Option<&str>) {
        (self.accelerator, self.why_not_kvm.as_deref())
    }

    /// The files guests boot from.
    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// The host `(uid, gid)` QEMU (and so every file write) runs as.
    pub fn identity(&self) -> (u32, u32) {
        match &self.run_as {
            Some((_, uid, gid)) => (*uid, *gid),
            None => (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
        }
    }
}

impl Sandbox for MicroVmSandbox {
    fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
        let start = Instant::now();
        let grants = canonical_grants(&spec.writable)?;
        if grants.len() > MAX_GRANTS {
            return Err(SandboxError::InvalidSpec(format!(
                "at most {MAX_GRANTS} granted directories per microVM run"
            )));
        }
        check_workdir(&spec.workdir, &grants)?;
        let network = network_granted(spec)?;
        let files = initramfs::RunFiles {
            modules: modules(network),
            // Only a backstop for a guest orphaned by a killed daemon: the
            // host's deadline is the limit. Twice the limit plus a margin,
            // because an emulated (TCG) guest's clock can run fast under
            // load (seen: 61 guest seconds in 55 host seconds).
            wall_seconds: spec
                .limits
                .wall_clock
                .as_secs()
                .saturating_mul(2)
                .saturating_add(10),
            setup: setup_script(&grants, network)?,
            exec: exec_script(spec)?,
        };
        let pins = grants
            .iter()
            .map(|g| pin_dir(g))
            .collect::<Result<Vec<_>, _>>()?;

        let run_dir = qemu::RunDir::new()?;
        let initrd = run_dir.path("initrd.cpio");
        initramfs::write_run_image(&self.base_image, &files, &initrd)?;
        let console_log = run_dir.path("console.log");
        let qemu_log = run_dir.path("qemu.log");
        let memory_mib = spec
            .limits
            .memory_bytes
            .map_or(1024, |b| b.div_ceil(1 << 20))
            .saturating_add(KERNEL_MEMORY_MIB)
            .max(MIN_MEMORY_MIB);
        let args = qemu::args(&qemu::VmPlan {
            accel: self.accelerator,
            kernel: &self.assets.kernel,
            initrd: &initrd,
            console_log: &console_log,
            memory_mib,
            vcpus: self.vcpus,
            grants: grants.len(),
            network,
            run_as: self.run_as.as_ref().map(|(name, _, _)| name.as_str()),
        });

        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        // Descriptor numbers QEMU finds them under (see `qemu::STDOUT_FD`).
        let mut inherit: Vec<(OwnedFd, RawFd)> = vec![
            (high_dup(&out_w)?, qemu::STDOUT_FD),
            (high_dup(&err_w)?, qemu::STDERR_FD),
            (high_dup(&status_w)?, qemu::STATUS_FD),
        ];
        for (i, pin) in pins.iter().enumerate() {
            inherit.push((high_dup(pin)?, qemu::FIRST_GRANT_FD + i as RawFd));
        }
        drop((out_w, err_w, status_w));
        let log = std::fs::File::create(&qemu_log)?;
        let mut cmd = Command::new(&self.assets.qemu);
        cmd.args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let targets: Vec<(RawFd, RawFd)> = inherit
            .iter()
            .map(|(fd, target)| (fd.as_raw_fd(), *target))
            .collect();
        // SAFETY: only dup2, async-signal-safe, on descriptors numbered at
        // or above 100 (so no source is overwritten by an earlier target).
        unsafe {
            cmd.pre_exec(move || {
                for &(fd, target) in &targets {
                    if libc::dup2(fd, target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(SandboxError::Spawn)?;
        drop(cmd);
        drop(inherit);
        drop(pins);
        let done = supervise_streams(
            child,
            out_r,
            err_r,
            start,
            spec.limits.wall_clock,
            spec.limits.output_bytes,
        )?;
        let status = if done.timed_out {
            ExitStatus::Signaled(libc::SIGKILL)
        } else {
            read_status(&status_r, &console_log, &qemu_log).inspect_err(|_| {
                tracing::debug!(?args, qemu = ?done.status, "microVM run failed");
            })?
        };
        Ok(RunOutput {
            status,
            timed_out: done.timed_out,
            stdout: done.stdout,
            stderr: done.stderr,
            usage: done.usage,
            isolation: self.report(&grants, network),
        })
    }
}

impl MicroVmSandbox {
    fn report(&self, grants: &[PathBuf], network: bool) -> IsolationReport {
        let (host_uid, host_gid) = self.identity();
        IsolationReport {
            host_uid,
            host_gid,
            net_ns: !network,
            read_only_root: true,
            writable_dirs: grants.iter().map(|g| g.display().to_string()).collect(),
            private_tmp: true,
            proc_remounted: true,
            rlimits: true,
            no_new_privs: true,
            ..IsolationReport::default()
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// A close-on-exec duplicate of `fd` numbered 100 or above.
fn high_dup(fd: &impl AsRawFd) -> io::Result<OwnedFd> {
    let raw = fcntl(
        // SAFETY: borrowed only for this call; `fd` outlives it.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) },
        FcntlArg::F_DUPFD_CLOEXEC(100),
    )?;
    // SAFETY: fcntl just returned this new descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The working directory must exist in the guest: `/tmp` or inside a grant.
fn check_workdir(workdir: &Path, grants: &[PathBuf]) -> Result<(), SandboxError> {
    if !workdir.is_absolute() {
        return Err(SandboxError::InvalidSpec(
            "the working directory must be absolute".into(),
        ));
    }
    if workdir.starts_with("/tmp") || grants.iter().any(|g| workdir.starts_with(g)) {
        return Ok(());
    }
    Err(SandboxError::InvalidSpec(format!(
        "working directory {} is neither /tmp nor inside a granted directory (the microVM shows nothing else of the host)",
        workdir.display()
    )))
}

/// `true` for [`Network::Full`]; other policies than none and full (a host
/// allow list) are refused: the guest's user-mode network cannot filter.
fn network_granted(spec: &RunSpec) -> Result<bool, SandboxError> {
    if matches!(spec.network, Network::None) {
        Ok(false)
    } else if matches!(spec.network, Network::Full) {
        Ok(true)
    } else {
        Err(SandboxError::InvalidSpec(
            "the microVM runner grants either no network or the full network".into(),
        ))
    }
}

fn modules(network: bool) -> Vec<&'static str> {
    let mut m = assets::BASE_MODULES.to_vec();
    if network {
        m.extend_from_slice(assets::NETWORK_MODULES);
    }
    m
}

/// Quotes one word for the guest's `sh`.
fn quote(word: &OsString, what: &str) -> Result<String, SandboxError> {
    let text = word
        .to_str()
        .ok_or_else(|| SandboxError::InvalidSpec(format!("{what} is not UTF-8: {word:?}")))?;
    shlex::try_quote(text)
        .map(|q| q.into_owned())
        .map_err(|e| SandboxError::InvalidSpec(format!("{what} cannot be quoted: {e}")))
}

/// Root's part, sourced by the init script: mount the grants where the
/// host has them, bring up `lo` and, when granted, the network card
/// (QEMU's user-mode network: 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3).
fn setup_script(grants: &[PathBuf], network: bool) -> Result<String, SandboxError> {
    let mut s = String::new();
    for (i, grant) in grants.iter().enumerate() {
        let path = quote(&grant.clone().into_os_string(), "a granted directory")?;
        s.push_str(&format!(
            "mkdir -p {path} && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,nosuid,nodev grant{i} {path} || fail mount\n"
        ));
    }
    s.push_str("ip link set lo up || fail loopback\n");
    if network {
        s.push_str(
            "ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && \
             ip route add default via 10.0.2.2 || fail network\n\
             echo 'nameserver 10.0.2.3' >/etc/resolv.conf\n",
        );
    }
    Ok(s)
}

/// The command's part, run by `sh` as `nobody`: rlimits (lowering is
/// allowed unprivileged), the working directory, then `exec env -i` with
/// exactly the spec's environment and argv.
fn exec_script(spec: &RunSpec) -> Result<String, SandboxError> {
    let Some(program) = spec.argv.first() else {
        return Err(SandboxError::InvalidSpec("empty argv".into()));
    };
    if program.to_string_lossy().contains('=') {
        // `env` would take it for a variable assignment.
        return Err(SandboxError::InvalidSpec(
            "the program name contains `=`".into(),
        ));
    }
    let limits = &spec.limits;
    let mut s = String::new();
    // busybox ash: -t seconds, -v KiB, -u processes, -f 512-byte blocks.
    let rlimits = [
        ("-t", limits.cpu_seconds),
        ("-v", limits.memory_bytes.map(|b| b / 1024)),
        ("-u", limits.max_processes),
        ("-f", limits.file_size_bytes.map(|b| b / 512)),
    ];
    for (flag, value) in rlimits {
        if let Some(v) = value {
            s.push_str(&format!(
                "ulimit {flag} {v} || {{ echo 'opticlaw: ulimit {flag} failed' >&2; exit 125; }}\n"
            ));
        }
    }
    let workdir = quote(
        &spec.workdir.clone().into_os_string(),
        "the working directory",
    )?;
    s.push_str(&format!("cd {workdir} || exit 125\nexec env -i"));
    for (key, val) in environment(spec) {
        if key.is_empty() || key.to_string_lossy().contains('=') {
            return Err(SandboxError::InvalidSpec(format!(
                "bad environment variable name {key:?}"
            )));
        }
        let mut pair = key;
        pair.push("=");
        pair.push(val);
        s.push(' ');
        s.push_str(&quote(&pair, "an environment variable")?);
    }
    for arg in &spec.argv {
        s.push(' ');
        s.push_str(&quote(arg, "an argument")?);
    }
    s.push('\n');
    Ok(s)
}

/// Parses the status port: exactly `exit=<code>\n` (or `setup=<stage>\n`
/// from a failed setup). Anything else is an error, never a guess.
fn read_status(
    status: &OwnedFd,
    console: &Path,
    qemu_log: &Path,
) -> Result<ExitStatus, SandboxError> {
    let flags =
        OFlag::from_bits_truncate(fcntl(status, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(status, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    let mut buf = [0u8; 64];
    let n = match nix::unistd::read(status, &mut buf) {
        Ok(n) => n,
        Err(nix::errno::Errno::EAGAIN) => 0,
        Err(e) => return Err(io::Error::from(e).into()),
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    let diagnostics = || format!("console: {:?}; qemu: {:?}", tail(console), tail(qemu_log));
    if let Some(code) = text
        .strip_prefix("exit=")
        .and_then(|rest| rest.strip_suffix('\n'))
        .filter(|d| !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(ExitStatus::Exited(code.parse().unwrap_or(255)));
    }
    if let Some(stage) = text.strip_prefix("setup=") {
        return Err(SandboxError::Setup {
            stage: "microVM guest setup",
            source: io::Error::other(format!("{}; {}", stage.trim(), diagnostics())),
        });
    }
    Err(SandboxError::Io(io::Error::other(format!(
        "the microVM stopped without a valid exit status (got {text:?}); {}",
        diagnostics()
    ))))
}

/// The last [`LOG_TAIL`] bytes of a log file, as text.
fn tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL);
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_script_quotes_every_word() {
        let spec = RunSpec::new(["/bin/sh", "-c", "echo 'a b'; exit 3"]).env("X", "$(reboot)");
        let s = exec_script(&spec).unwrap();
        assert!(s.contains("'X=$(reboot)'"), "{s}");
        let split = shlex::split(s.lines().last().unwrap()).unwrap();
        assert_eq!(
            split[split.len() - 3..],
            ["/bin/sh", "-c", "echo 'a b'; exit 3"]
        );
        assert!(split.contains(&"X=$(reboot)".to_owned()));
    }

    #[test]
    fn program_names_with_equals_and_stray_workdirs_are_refused() {
        assert!(exec_script(&RunSpec::new(["A=b"])).is_err());
        let err = check_workdir(Path::new("/etc"), &[PathBuf::from("/srv/x")]).unwrap_err();
        assert!(err.to_string().contains("/etc"), "{err}");
        check_workdir(Path::new("/srv/x/sub"), &[PathBuf::from("/srv/x")]).unwrap();
    }
}
