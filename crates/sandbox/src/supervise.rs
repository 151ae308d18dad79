//! The parent's side of a run: read the output pipes with a cap, wait for the
//! exit with a deadline, kill at the deadline, reap with resource usage.
//!
//! One thread, one `poll(2)` over the two pipes and a pidfd of the child:
//! the wait is a single armed deadline, not a polling loop.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::spec::{Captured, ExitStatus, ResourceUsage};

/// How long to keep draining the pipes after the sandbox is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What supervision observed.
#[derive(Debug)]
pub struct Supervised {
    pub status: ExitStatus,
    pub timed_out: bool,
    pub stdout: Captured,
    pub stderr: Captured,
    pub usage: ResourceUsage,
}

/// A capped sink for one stream.
struct Stream {
    fd: Option<OwnedFd>,
    out: Captured,
    cap: usize,
}

impl Stream {
    fn new(fd: OwnedFd, cap: usize) -> io::Result<Self> {
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(Self {
            fd: Some(fd),
            out: Captured::default(),
            cap,
        })
    }

    /// Reads what is available; closes the stream at end of file.
    fn pump(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        while let Some(fd) = &self.fd {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => self.fd = None,
                Ok(n) => {
                    self.out.total_bytes += n as u64;
                    let room = self.cap.saturating_sub(self.out.bytes.len());
                    let keep = room.min(n);
                    self.out.bytes.extend_from_slice(&buf[..keep]);
                    if keep < n {
                        self.out.truncated = true;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn remaining(deadline: Instant) -> PollTimeout {
    let ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}

/// Supervises `child` (spawned with piped stdout and stderr) until it exits
/// or `wall_clock` after `start` passes, when it is killed with `SIGKILL`.
pub fn supervise(
    mut child: Child,
    start: Instant,
    wall_clock: Duration,
    cap: usize,
) -> io::Result<Supervised> {
    let take = |fd: Option<OwnedFd>| fd.ok_or_else(|| io::Error::other("stdio not piped"));
    let stdout = take(child.stdout.take().map(OwnedFd::from))?;
    let stderr = take(child.stderr.take().map(OwnedFd::from))?;
    supervise_streams(child, stdout, stderr, start, wall_clock, cap)
}

/// Like [`supervise`], with the command's two output streams read from
/// `stdout` and `stderr` instead of the child's own stdio (the microVM
/// runner's guest writes them through QEMU to pipes of its own).
pub fn supervise_streams(
    mut child: Child,
    stdout: OwnedFd,
    stderr: OwnedFd,
    start: Instant,
    wall_clock: Duration,
    cap: usize,
) -> io::Result<Supervised> {
    let pid = child.id();
    let pidfd = pidfd_open(pid)?;
    let mut out = Stream::new(stdout, cap)?;
    let mut err = Stream::new(stderr, cap)?;
    let deadline = start + wall_clock;

    let mut exited = false;
    let mut timed_out = false;
    while !exited {
        if Instant::now() >= deadline {
            // Killing the intermediate fires the command's parent-death
            // signal; PID 1 dying takes its whole PID namespace with it.
            child.kill()?;
            timed_out = true;
            break;
        }
        let (ro, re) = (out.fd.is_some(), err.fd.is_some());
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if let Some(fd) = &out.fd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &err.fd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, remaining(deadline)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        exited = fds[0].any().unwrap_or(false);
        drop(fds);
        if ro {
            out.pump()?;
        }
        if re {
            err.pump()?;
        }
    }

    let (status, rusage) = wait4(pid)?;
    let wall = start.elapsed();
    // The command and its namespace are gone; whatever is still in the pipes
    // is read now. A bounded grace covers a pipe leaked to a process outside.
    let drain_until = Instant::now() + DRAIN_GRACE;
    while out.fd.is_some() || err.fd.is_some() {
        if Instant::now() >= drain_until {
            break;
        }
        let mut fds = Vec::with_capacity(2);
        for s in [&out, &err] {
            if let Some(fd) = &s.fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, remaining(drain_until)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        drop(fds);
        out.pump()?;
        err.pump()?;
    }
    // `child` was reaped by wait4 above; forget it without waiting again.
    drop(child);

    Ok(Supervised {
        status,
        timed_out,
        stdout: out.out,
        stderr: err.out,
        usage: ResourceUsage {
            wall,
            user_cpu: timeval(rusage.ru_utime),
            system_cpu: timeval(rusage.ru_stime),
            max_rss_bytes: (rusage.ru_maxrss.max(0) as u64) * 1024,
        },
    })
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::new(tv.tv_sec.max(0) as u64, (tv.tv_usec.max(0) as u32) * 1000)
}

/// Reaps `pid`, returning its status and the resource usage of it and the
/// descendants it reaped (the command and everything the command waited for).
fn wait4(pid: u32) -> io::Result<(ExitStatus, libc::rusage)> {
    let mut status = 0;
    // SAFETY: `rusage` is plain old data; all-zero is valid.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child into stack values.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut rusage) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let status = if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    };
    Ok((status, rusage))
}

/// Reads the 5-byte failure report `[stage, errno (le i32)]`, if any.
pub fn read_report(fd: &OwnedFd) -> Option<(u8, i32)> {
    let mut buf = [0u8; 5];
    // SAFETY: reading into a stack buffer of the stated size.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    (n == 5).then(|| {
        let errno = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
        (buf[0], errno)
    })
}
