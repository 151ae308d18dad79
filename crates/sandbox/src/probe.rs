//! Measuring which isolation layers work on this machine.

use std::fmt;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;
use serde::Serialize;

use crate::landlock;

/// The uid/gid a root caller's commands run as by default (`nobody`).
pub const DEFAULT_SANDBOX_ID: u32 = 65534;

/// What [`probe`] measured. Every field is the result of trying, not of
/// reading a version number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Whether the caller is root (then commands run as an unprivileged uid).
    pub caller_is_root: bool,
    /// An unprivileged process could create a user namespace.
    pub user_ns: bool,
    /// Inside it: a mount namespace.
    pub mount_ns: bool,
    /// Inside it: a PID namespace.
    pub pid_ns: bool,
    /// Inside it: a network namespace.
    pub net_ns: bool,
    /// Inside it: an IPC namespace.
    pub ipc_ns: bool,
    /// Inside it: a UTS namespace.
    pub uts_ns: bool,
    /// `mount_setattr(2)` exists (recursive read-only bind mounts).
    pub mount_setattr: bool,
    /// `pidfd_open(2)` exists (the deadline wait).
    pub pidfd: bool,
    /// Landlock ABI version, `None` if Landlock is off.
    pub landlock_abi: Option<u32>,
    /// Seccomp filter mode with `SECCOMP_RET_ERRNO` is available.
    pub seccomp: bool,
    /// `/dev/kvm` opened read-write and answered `KVM_GET_API_VERSION`.
    pub kvm: bool,
    /// A cgroup v2 hierarchy is mounted (not used yet; rlimits are).
    pub cgroup_v2: bool,
}

impl ProbeReport {
    /// Whether everything [`crate::NamespaceSandbox`] cannot do without is here.
    pub fn namespaces_usable(&self) -> bool {
        self.user_ns && self.mount_ns && self.pid_ns && self.mount_setattr && self.pidfd
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "kernel={} root={} user_ns={} mount_ns={} pid_ns={} net_ns={} ipc_ns={} uts_ns={} \
             mount_setattr={} pidfd={} landlock_abi={} seccomp={} kvm={} cgroup_v2={}",
            self.kernel,
            yn(self.caller_is_root),
            yn(self.user_ns),
            yn(self.mount_ns),
            yn(self.pid_ns),
            yn(self.net_ns),
            yn(self.ipc_ns),
            yn(self.uts_ns),
            yn(self.mount_setattr),
            yn(self.pidfd),
            self.landlock_abi
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            yn(self.seccomp),
            yn(self.kvm),
            yn(self.cgroup_v2),
        )
    }
}

const NS_FLAGS: [CloneFlags; 5] = [
    CloneFlags::CLONE_NEWNS,
    CloneFlags::CLONE_NEWPID,
    CloneFlags::CLONE_NEWNET,
    CloneFlags::CLONE_NEWIPC,
    CloneFlags::CLONE_NEWUTS,
];

/// Forks a child that (as `nobody` if we are root) creates a user namespace
/// and then each other namespace in turn, and reports a bitmask:
/// bit 0 user, bits 1.. the [`NS_FLAGS`].
fn probe_namespaces(is_root: bool) -> u8 {
    let Ok((reader, writer)) = nix::unistd::pipe() else {
        return 0;
    };
    let wfd = writer.as_raw_fd();
    let mut cmd = Command::new("/");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the hook runs in the forked child and calls only
    // async-signal-safe functions (setgroups, setres[ug]id, unshare, write,
    // _exit) on values copied in before the fork. It exits instead of
    // returning, so nothing is ever executed.
    unsafe {
        cmd.pre_exec(move || {
            let id = DEFAULT_SANDBOX_ID;
            if is_root
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(id, id, id) != 0
                    || libc::setresuid(id, id, id) != 0)
            {
                libc::_exit(1);
            }
            let mut mask = 0u8;
            if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                mask |= 1;
                for (i, flag) in NS_FLAGS.iter().enumerate() {
                    if libc::unshare(flag.bits()) == 0 {
                        mask |= 2 << i;
                    }
                }
            }
            libc::write(wfd, (&mask as *const u8).cast(), 1);
            libc::_exit(0)
        });
    }
    let spawned = cmd.spawn();
    drop(writer);
    let Ok(mut child) = spawned else {
        return 0;
    };
    let mut buf = [0u8; 1];
    let mut reader = std::fs::File::from(reader);
    let got = reader.read(&mut buf).unwrap_or(0);
    let _ = child.wait();
    if got == 1 { buf[0] } else { 0 }
}

fn syscall_exists(nr: libc::c_long) -> bool {
    // SAFETY: called with an invalid descriptor (-1) and null pointers, the
    // call fails with EBADF/EINVAL/EFAULT if it exists, ENOSYS if not; it
    // touches no memory of ours.
    let rc = unsafe { libc::syscall(nr, -1, 0, 0, 0, 0) };
    rc == 0 || nix::errno::Errno::last() != nix::errno::Errno::ENOSYS
}

fn pidfd_works() -> bool {
    // SAFETY: pidfd_open on our own pid; the descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0u32) };
    if fd >= 0 {
        // SAFETY: closing the descriptor just returned.
        unsafe { libc::close(fd as i32) };
    }
    fd >= 0
}

fn seccomp_works() -> bool {
    // SAFETY: PR_GET_SECCOMP only reads our own mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    let actions =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    mode >= 0 && actions.split_whitespace().any(|a| a == "errno")
}

fn kvm_works() -> bool {
    use std::os::fd::AsRawFd as _;
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    let Ok(kvm) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    else {
        return false;
    };
    // SAFETY: KVM_GET_API_VERSION takes no argument and returns an int.
    let v = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    v == 12
}

/// Measures which isolation layers work here, by trying each one in a
/// throw-away child process. Takes a few milliseconds.
pub fn probe() -> ProbeReport {
    let is_root = nix::unistd::geteuid().is_root();
    let ns = probe_namespaces(is_root);
    let bit = |i: u32| ns & (1 << i) != 0;
    ProbeReport {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        caller_is_root: is_root,
        user_ns: bit(0),
        mount_ns: bit(1),
        pid_ns: bit(2),
        net_ns: bit(3),
        ipc_ns: bit(4),
        uts_ns: bit(5),
        mount_setattr: syscall_exists(libc::SYS_mount_setattr),
        pidfd: pidfd_works(),
        landlock_abi: landlock::abi_version(),
        seccomp: seccomp_works(),
        kvm: kvm_works(),
        cgroup_v2: std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
    }
}
