//! What runs between `fork` and `exec`.
//!
//! `std::process::Command` forks, wires stdio, then calls our `pre_exec`
//! hook in the child, then `execve`s. The hook ([`ChildPlan::run_in_child`])
//! does the whole setup in two processes:
//!
//! 1. **The intermediate** (the process `Command` forked) drops to the sandbox
//!    uid if the caller is root, `unshare`s the user, mount, PID, IPC, UTS and
//!    (unless networking is allowed) network namespaces, writes its uid/gid
//!    maps, and forks again. It never returns from the hook: it closes every
//!    descriptor above 2, waits for the command and exits with the command's
//!    status (re-raising the signal if it was killed), so the parent sees the
//!    command's status on the pid `Command` gave it.
//! 2. **The command process** is PID 1 of the new PID namespace. It builds the
//!    mount tree, applies rlimits, `no_new_privs`, Landlock and seccomp, and
//!    returns `Ok` so `Command` execs the program. `PR_SET_PDEATHSIG` ties it
//!    to the intermediate: when the parent kills the intermediate at the
//!    timeout, the command dies, and with PID 1 gone the kernel kills every
//!    other process in the namespace.
//!
//! # Soundness
//!
//! The parent may be multi-threaded (tokio), so after `fork` the child may
//! only call async-signal-safe functions: another thread could have held the
//! allocator lock at the moment of the fork. Everything here is therefore
//! computed in the parent ([`ChildPlan`] owns every `CString`, the compiled
//! BPF and the Landlock rule list) and the hook only issues system calls on
//! that borrowed data: no allocation, no locks, no `std::io` printing, no
//! panics on purpose (errors are returned as `io::Error::from_raw_os_error`,
//! which does not allocate).
//!
//! Failures are fail-closed: a step that errors aborts the run before `exec`,
//! and its stage and errno are written to a report pipe so the parent can say
//! which layer failed.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{ForkResult, Gid, Uid};

use crate::landlock::LandlockPlan;
use crate::seccomp::SeccompPlan;

/// The setup steps, in order; reported to the parent on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    DropPrivileges = 1,
    Unshare,
    IdMaps,
    Fork,
    DeathSignal,
    MountPrivate,
    MountBase,
    PivotBase,
    BindRoot,
    ReadOnlyRoot,
    PrivateTmp,
    MinimalDev,
    Grant,
    MountProc,
    DetachOldRoot,
    PivotNewRoot,
    Workdir,
    Hostname,
    Loopback,
    Rlimits,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Hide,
    Egress,
}

impl Stage {
    const ALL: [Stage; 25] = [
        Stage::DropPrivileges,
        Stage::Unshare,
        Stage::IdMaps,
        Stage::Fork,
        Stage::DeathSignal,
        Stage::MountPrivate,
        Stage::MountBase,
        Stage::PivotBase,
        Stage::BindRoot,
        Stage::ReadOnlyRoot,
        Stage::PrivateTmp,
        Stage::MinimalDev,
        Stage::Grant,
        Stage::MountProc,
        Stage::DetachOldRoot,
        Stage::PivotNewRoot,
        Stage::Workdir,
        Stage::Hostname,
        Stage::Loopback,
        Stage::Rlimits,
        Stage::NoNewPrivs,
        Stage::Landlock,
        Stage::Seccomp,
        Stage::Hide,
        Stage::Egress,
    ];

    /// Decodes the byte written to the report pipe.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u8 == b)
    }

    /// A short human name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Stage::DropPrivileges => "drop to the sandbox uid",
            Stage::Unshare => "unshare namespaces",
            Stage::IdMaps => "write uid/gid maps",
            Stage::Fork => "fork into the PID namespace",
            Stage::DeathSignal => "set parent-death signal",
            Stage::MountPrivate => "make mounts private",
            Stage::MountBase => "mount the staging tmpfs",
            Stage::PivotBase => "pivot into the staging tmpfs",
            Stage::BindRoot => "bind the host tree",
            Stage::ReadOnlyRoot => "make the host tree read-only",
            Stage::PrivateTmp => "mount a private /tmp",
            Stage::MinimalDev => "build a minimal /dev",
            Stage::Grant => "bind a granted directory writable",
            Stage::MountProc => "mount /proc",
            Stage::DetachOldRoot => "detach the old root",
            Stage::PivotNewRoot => "pivot into the new root",
            Stage::Workdir => "enter the working directory",
            Stage::Hostname => "set the hostname",
            Stage::Loopback => "bring up loopback",
            Stage::Rlimits => "set rlimits",
            Stage::NoNewPrivs => "set no_new_privs",
            Stage::Landlock => "enforce Landlock",
            Stage::Seccomp => "install seccomp filter",
            Stage::Hide => "hide a directory under an empty tmpfs",
            Stage::Egress => "bind the egress proxy socket",
        }
    }
}

/// A granted directory: bound from the old root onto the same path in the new.
#[derive(Debug)]
pub struct GrantMount {
    /// `/oldroot/<dir>`.
    pub source: CString,
    /// `/newroot/<dir>`.
    pub target: CString,
    /// `/newroot/...` ancestors to create when the target lies on a tmpfs.
    pub mkdirs: Vec<CString>,
    /// `O_PATH` descriptor the parent opened on the checked directory; the
    /// bound target must be the same inode, or the grant moved in between.
    pub pin_fd: RawFd,
}

/// Everything the child needs, computed in the parent.
#[derive(Debug)]
pub struct ChildPlan {
    /// `(uid, gid)` to switch to before unsharing (root callers only).
    pub drop_to: Option<(u32, u32)>,
    /// Namespaces to create.
    pub unshare: nix::sched::CloneFlags,
    /// `"<uid> <uid> 1\n"` for `/proc/self/uid_map`.
    pub uid_map: CString,
    /// `"<gid> <gid> 1\n"` for `/proc/self/gid_map`.
    pub gid_map: CString,
    /// Recursively remount the host tree read-only.
    pub read_only_root: bool,
    /// tmpfs options for the private `/tmp`.
    pub tmp_options: CString,
    /// Granted directories, parents before children.
    pub grants: Vec<GrantMount>,
    /// `/newroot/<dir>` of each hidden directory.
    pub hidden: Vec<CString>,
    /// Working directory inside the sandbox.
    pub workdir: CString,
    /// Bring up `lo` (only with a new network namespace).
    pub loopback: bool,
    /// `(resource, soft, hard)` limits.
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// Landlock ruleset, when the kernel has Landlock.
    pub landlock: Option<LandlockPlan>,
    /// Seccomp filters, when the kernel has seccomp.
    pub seccomp: Option<SeccompPlan>,
    /// Write end of the report pipe (close-on-exec).
    pub report_fd: RawFd,
    /// `(channel, port)`: bind the egress proxy's socket on `127.0.0.1:port`
    /// in the new network namespace and send it on `channel`.
    pub egress: Option<(RawFd, u16)>,
}

/// Device nodes bound into the minimal `/dev`.
pub const DEVICES: [&CStr; 5] = [c"null", c"zero", c"full", c"random", c"urandom"];
/// The same nodes as seen inside the sandbox (Landlock grants writes to them).
pub const DEVICE_PATHS: [&CStr; 5] = [
    c"/dev/null",
    c"/dev/zero",
    c"/dev/full",
    c"/dev/random",
    c"/dev/urandom",
];

type Step<T = ()> = Result<T, (Stage, Errno)>;

fn at<T>(stage: Stage, r: nix::Result<T>) -> Step<T> {
    r.map_err(|e| (stage, e))
}

fn mount(
    stage: Stage,
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: MsFlags,
    data: Option<&CStr>,
) -> Step {
    at(
        stage,
        nix::mount::mount(source, target, fstype, flags, data),
    )
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on a whole subtree (there is no libc wrapper).
fn set_attr_recursive(stage: Stage, path: &CStr, attrs: u64) -> Step {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and `attr` is a live struct whose size
    // is passed alongside it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        Err((stage, Errno::last()))
    } else {
        Ok(())
    }
}

/// Writes `data` to the file at `path` (for the `/proc/self/*_map` files).
fn write_file(stage: Stage, path: &CStr, data: &CStr) -> Step {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err((stage, Errno::last()));
    }
    let bytes = data.to_bytes();
    // SAFETY: `bytes` is a live slice of the stated length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let err = Errno::last();
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    if n != bytes.len() as isize {
        return Err((stage, err));
    }
    Ok(())
}

fn mkdir(path: &CStr, mode: libc::mode_t) {
    // SAFETY: `path` is NUL-terminated. Failure (EEXIST, EROFS) is left for
    // the following mount to report.
    unsafe { libc::mkdir(path.as_ptr(), mode) };
}

impl ChildPlan {
    /// The `pre_exec` hook. Runs in the intermediate; returns only in the
    /// command process (or on a setup error).
    ///
    /// Only async-signal-safe calls are made; see the module docs.
    pub fn run_in_child(&self) -> io::Result<()> {
        match self.intermediate() {
            Ok(()) => Ok(()),
            Err((stage, errno)) => {
                let mut msg = [0u8; 5];
                msg[0] = stage as u8;
                msg[1..].copy_from_slice(&(errno as i32).to_le_bytes());
                // SAFETY: writing a stack buffer to a descriptor we were given.
                unsafe { libc::write(self.report_fd, msg.as_ptr().cast(), msg.len()) };
                Err(io::Error::from_raw_os_error(errno as i32))
            }
        }
    }

    fn intermediate(&self) -> Step {
        // No core files from either process (the intermediate re-raises the
        // command's fatal signal on itself).
        at(Stage::Rlimits, setrlimit(Resource::RLIMIT_CORE, 0, 0))?;
        if let Some((uid, gid)) = self.drop_to {
            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
            at(Stage::DropPrivileges, nix::unistd::setgroups(&[]))?;
            at(Stage::DropPrivileges, nix::unistd::setresgid(gid, gid, gid))?;
            at(Stage::DropPrivileges, nix::unistd::setresuid(uid, uid, uid))?;
            // Changing uid cleared "dumpable", which makes /proc/self/* owned
            // by root; restore it so we may write our own id maps.
            at(Stage::DropPrivileges, nix::sys::prctl::set_dumpable(true))?;
        }
        at(Stage::Unshare, nix::sched::unshare(self.unshare))?;
        if self.unshare.contains(nix::sched::CloneFlags::CLONE_NEWUSER) {
            write_file(Stage::IdMaps, c"/proc/self/setgroups", c"deny")?;
            write_file(Stage::IdMaps, c"/proc/self/uid_map", &self.uid_map)?;
            write_file(Stage::IdMaps, c"/proc/self/gid_map", &self.gid_map)?;
        }
        if let Some((channel, port)) = self.egress {
            // Before the fork: the command never holds the socket.
            loopback_up().map_err(|e| (Stage::Egress, e))?;
            crate::egress::listener::bind_and_send(channel, port)
                .map_err(|e| (Stage::Egress, e))?;
        }
        // SAFETY: this process is the single-threaded child of a fork, but
        // locks other parent threads held at that fork may still look taken,
        // so both branches continue with async-signal-safe calls only (the
        // rule the whole hook follows); `fork` itself is async-signal-safe.
        match at(Stage::Fork, unsafe { nix::unistd::fork() })? {
            ForkResult::Child => self.command_process(),
            ForkResult::Parent { child } => forward_exit(child.as_raw()),
        }
    }

    fn command_process(&self) -> Step {
        at(
            Stage::DeathSignal,
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL),
        )?;
        self.build_mount_tree()?;
        at(Stage::Workdir, nix::unistd::chdir(self.workdir.as_c_str()))?;
        at(Stage::Hostname, nix::unistd::sethostname("sandbox"))?;
        if self.loopback {
            loopback_up().map_err(|e| (Stage::Loopback, e))?;
        }
        for &(resource, soft, hard) in &self.rlimits {
            at(Stage::Rlimits, setrlimit(resource, soft, hard))?;
        }
        at(Stage::NoNewPrivs, nix::sys::prctl::set_no_new_privs())?;
        if let Some(landlock) = &self.landlock {
            landlock
                .apply()
                .map_err(|e| (Stage::Landlock, errno_of(&e)))?;
        }
        if let Some(seccomp) = &self.seccomp {
            seccomp
                .apply()
                .map_err(|e| (Stage::Seccomp, errno_of(&e)))?;
        }
        Ok(())
    }

    /// Builds the sandbox's file tree, the way bubblewrap does: pivot into a
    /// staging tmpfs (the host tree moves to `/oldroot`), assemble `/newroot`
    /// from binds of `/oldroot`, then pivot into `/newroot` and detach the rest.
    fn build_mount_tree(&self) -> Step {
        let none = None::<&CStr>;
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        mount(Stage::MountPrivate, none, c"/", none, private, none)?;
        let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(
            Stage::MountBase,
            Some(c"tmpfs"),
            c"/tmp",
            Some(c"tmpfs"),
            nosuid_nodev,
            Some(c"mode=0755,size=64k"),
        )?;
        at(Stage::PivotBase, nix::unistd::chdir(c"/tmp"))?;
        mkdir(c"newroot", 0o755);
        mkdir(c"oldroot", 0o755);
        at(Stage::PivotBase, nix::unistd::pivot_root(c".", c"oldroot"))?;
        at(Stage::PivotBase, nix::unistd::chdir(c"/"))?;

        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(
            Stage::BindRoot,
            Some(c"/oldroot"),
            c"/newroot",
            none,
            bind,
            none,
        )?;
        if self.read_only_root {
            set_attr_recursive(
                Stage::ReadOnlyRoot,
                c"/newroot",
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            )?;
        }
        mount(
            Stage::PrivateTmp,
            Some(c"tmpfs"),
            c"/newroot/tmp",
            Some(c"tmpfs"),
            nosuid_nodev,
            Some(self.tmp_options.as_c_str()),
        )?;
        self.minimal_dev()?;
        for grant in &self.grants {
            for dir in &grant.mkdirs {
                mkdir(dir, 0o755);
            }
            mount(
                Stage::Grant,
                Some(grant.source.as_c_str()),
                grant.target.as_c_str(),
                none,
                bind,
                none,
            )?;
            set_attr_recursive(
                Stage::Grant,
                &grant.target,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )?;
            if !same_inode(grant.pin_fd, &grant.target) {
                return Err((Stage::Grant, Errno::EXDEV));
            }
        }
        // Hidden directories (the daemon's home, key stores) become an
        // empty read-only tmpfs: the host tree is visible read-only, and a
        // command running as the daemon's own uid could read its secrets.
        for target in &self.hidden {
            let hidden = nix::mount::mount(
                Some(c"tmpfs"),
                target.as_c_str(),
                Some(c"tmpfs"),
                nosuid_nodev | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
                Some(c"mode=0555,size=4k"),
            );
            // A directory absent from the new tree (say, under the private
            // /tmp) is hidden already.
            if hidden != Err(nix::errno::Errno::ENOENT) {
                at(Stage::Hide, hidden)?;
            }
        }
        mount(
            Stage::MountProc,
            Some(c"proc"),
            c"/newroot/proc",
            Some(c"proc"),
            nosuid_nodev | MsFlags::MS_NOEXEC,
            none,
        )?;
        mount(Stage::DetachOldRoot, none, c"/oldroot", none, private, none)?;
        at(
            Stage::DetachOldRoot,
            nix::mount::umount2(c"/oldroot", MntFlags::MNT_DETACH),
        )?;
        at(Stage::PivotNewRoot, nix::unistd::chdir(c"/newroot"))?;
        at(Stage::PivotNewRoot, nix::unistd::pivot_root(c".", c"."))?;
        at(
            Stage::PivotNewRoot,
            nix::mount::umount2(c".", MntFlags::MNT_DETACH),
        )?;
        at(Stage::PivotNewRoot, nix::unistd::chdir(c"/"))
    }

    /// A tmpfs `/dev` with only harmless nodes bound from the host (no
    /// `/dev/kvm`, no disks), plus the usual symlinks and `/dev/shm`.
    fn minimal_dev(&self) -> Step {
        let none = None::<&CStr>;
        let stage = Stage::MinimalDev;
        mount(
            stage,
            Some(c"tmpfs"),
            c"/newroot/dev",
            Some(c"tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some(c"mode=0755,size=64k"),
        )?;
        let mut target = [0u8; 64];
        let mut source = [0u8; 64];
        for dev in DEVICES {
            let target = join(&mut target, c"/newroot/dev/", dev);
            let source = join(&mut source, c"/oldroot/dev/", dev);
            // SAFETY: NUL-terminated path; the descriptor is closed at once.
            let fd = unsafe {
                libc::open(
                    target.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                )
            };
            if fd < 0 {
                return Err((stage, Errno::last()));
            }
            // SAFETY: closing the descriptor just opened.
            unsafe { libc::close(fd) };
            mount(stage, Some(source), target, none, MsFlags::MS_BIND, none)?;
        }
        for (link, to) in [
            (c"/newroot/dev/fd", c"/proc/self/fd"),
            (c"/newroot/dev/stdin", c"/proc/self/fd/0"),
            (c"/newroot/dev/stdout", c"/proc/self/fd/1"),
            (c"/newroot/dev/stderr", c"/proc/self/fd/2"),
        ] {
            // SAFETY: both paths are NUL-terminated literals.
            if unsafe { libc::symlink(to.as_ptr(), link.as_ptr()) } < 0 {
                return Err((stage, Errno::last()));
            }
        }
        mkdir(c"/newroot/dev/shm", 0o1777);
        // SAFETY: NUL-terminated literal path (mkdir's mode was masked by umask).
        if unsafe { libc::chmod(c"/newroot/dev/shm".as_ptr(), 0o1777) } < 0 {
            return Err((stage, Errno::last()));
        }
        if self.read_only_root {
            // Landlock grants writes to the device nodes; the directory
            // itself is frozen.
            mount(
                stage,
                none,
                c"/newroot/dev",
                none,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                none,
            )?;
        }
        Ok(())
    }
}

/// Concatenates two C strings into `buf` (no allocation).
fn join<'a>(buf: &'a mut [u8; 64], a: &CStr, b: &CStr) -> &'a CStr {
    let (a, b) = (a.to_bytes(), b.to_bytes());
    let len = (a.len() + b.len()).min(buf.len() - 1);
    let split = a.len().min(len);
    buf[..split].copy_from_slice(&a[..split]);
    buf[split..len].copy_from_slice(&b[..len - split]);
    buf[len] = 0;
    // The buffer holds exactly one NUL, at `len` (device names have none).
    CStr::from_bytes_with_nul(&buf[..=len]).unwrap_or(c"")
}

/// Whether `path` names the same inode as the descriptor `fd`.
fn same_inode(fd: RawFd, path: &CStr) -> bool {
    // SAFETY: `stat` is plain old data; both calls fill stack structs.
    unsafe {
        let mut a: libc::stat = std::mem::zeroed();
        let mut b: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut a) == 0
            && libc::stat(path.as_ptr(), &mut b) == 0
            && (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    }
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Sets `IFF_UP` on `lo` in the new network namespace, so that programs
/// talking to themselves over 127.0.0.1 work.
fn loopback_up() -> Result<(), Errno> {
    // SAFETY: plain socket call; the descriptor is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name[0] = b'l' as libc::c_char;
    ifr.ifr_name[1] = b'o' as libc::c_char;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` we own;
    // the flags member of the union is the one these requests use.
    let result = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            Err(Errno::last())
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &ifr) < 0 {
                Err(Errno::last())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    result
}

/// The intermediate's last act: close everything but stdio, wait for the
/// command and exit the way it did. Never returns.
fn forward_exit(child: libc::pid_t) -> ! {
    // SAFETY: close_range on our own descriptor table. Closing the write end
    // of `Command`'s exec-error pipe lets the parent's `spawn` return as soon
    // as the command has exec'd, instead of when it exits.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc < 0 {
        for fd in 3..4096 {
            // SAFETY: closing descriptors we may or may not hold is harmless.
            unsafe { libc::close(fd) };
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child into a stack integer.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child || Errno::last() != Errno::EINTR {
            break;
        }
    }
    // SAFETY: only async-signal-safe calls: signal, sigprocmask, kill, _exit.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}
