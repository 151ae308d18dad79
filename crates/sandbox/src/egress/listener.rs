//! Getting a listening socket that lives in the sandbox's network namespace
//! into the supervisor, without privileges.
//!
//! A socket belongs for life to the network namespace it was created in.
//! The sandbox's first child, once it has unshared its namespaces (and so
//! holds every capability in its new user namespace), brings `lo` up, binds
//! `127.0.0.1:PORT` there and sends the descriptor to the supervisor over a
//! `SOCK_SEQPACKET` socketpair with `SCM_RIGHTS` (unix(7)). The supervisor
//! accepts on it from its own namespace: connections come from inside the
//! sandbox, dials go out from the host. `setns(2)` into the child's
//! namespace would need `CAP_SYS_ADMIN` in the supervisor's own user
//! namespace, which an unprivileged daemon lacks.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// The supervisor's end of the channel and the child's end, which the child
/// inherits across `fork`.
#[derive(Debug)]
pub struct Channel {
    parent: OwnedFd,
    child: OwnedFd,
}

impl Channel {
    pub fn new() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills the two-element array we pass.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned these two descriptors to us.
        let (parent, child) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self { parent, child })
    }

    /// The descriptor the child sends on.
    pub fn child_fd(&self) -> RawFd {
        self.child.as_raw_fd()
    }

    /// Closes the child's end (after the spawn) and takes the listener the
    /// child sent, which is already queued once the spawn has returned.
    pub fn receive(self) -> io::Result<TcpListener> {
        drop(self.child);
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 8];
        // SAFETY: `msghdr` is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `msg` refers to live stack buffers of the
        // stated sizes.
        let n = unsafe {
            libc::recvmsg(
                self.parent.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: walking the control buffer the kernel filled, with the
        // CMSG_* helpers that bound every access by `msg_controllen`.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
                || (*cmsg).cmsg_len < libc::CMSG_LEN(4) as usize
            {
                return Err(io::Error::other(
                    "the sandbox sent no listening socket for the egress proxy",
                ));
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            Ok(TcpListener::from(OwnedFd::from_raw_fd(fd)))
        }
    }
}

/// In the sandbox's first child, after `unshare`: binds `127.0.0.1:port`
/// in the new network namespace, listens, sends the socket on `channel` and
/// closes it, so no process in the sandbox holds it.
///
/// Async-signal-safe: system calls on stack data only (see `child`).
pub fn bind_and_send(channel: RawFd, port: u16) -> Result<(), Errno> {
    // SAFETY: plain socket call; the descriptor is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(Errno::last());
    }
    let result = bind_listen(sock, port).and_then(|()| send_fd(channel, sock));
    // SAFETY: closing the socket opened above; the supervisor has its copy.
    unsafe { libc::close(sock) };
    result
}

fn bind_listen(sock: RawFd, port: u16) -> Result<(), Errno> {
    // SAFETY: `sockaddr_in` is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    // SAFETY: binding our socket to a stack address of the stated size.
    let rc = unsafe {
        libc::bind(
            sock,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    // SAFETY: listen on our own socket.
    if rc < 0 || unsafe { libc::listen(sock, 128) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn send_fd(channel: RawFd, fd: RawFd) -> Result<(), Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // u64 elements keep the buffer aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    // SAFETY: all-zero `msghdr` is valid; every pointer set below refers to
    // live stack buffers, and CMSG_SPACE(4) (24 bytes) fits in `control`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(channel, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}
