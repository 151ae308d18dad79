//! The seccomp deny-list.
//!
//! Filters are compiled in the parent with `seccompiler` (rust-vmm, the
//! compiler Firecracker uses); the child only hands the finished BPF to the
//! kernel ([`SeccompPlan::apply`]), which is a single syscall per filter.
//!
//! The filter is a deny list, not an allow list: the sandbox runs arbitrary
//! shells and interpreters, and the namespaces, read-only tree and Landlock
//! carry the main weight. What it removes is kernel attack surface and the
//! ways out of the sandbox's own setup: tracing other processes, mounting,
//! new namespaces, loading kernels, modules or BPF, the keyring, swap, reboot.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::SandboxError;

/// System calls that fail with `EPERM` inside the sandbox.
pub const DENIED_SYSCALLS: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsmount", libc::SYS_fsmount),
    ("fsconfig", libc::SYS_fsconfig),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("quotactl", libc::SYS_quotactl),
];

/// `clone` flags that would create a namespace.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// Compiled filters, ready to install in a child.
#[derive(Debug, Clone)]
pub struct SeccompPlan {
    filters: Vec<BpfProgram>,
}

fn arch() -> Result<seccompiler::TargetArch, SandboxError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e| SandboxError::Seccomp(format!("{e:?}")))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: u32) -> Result<BpfProgram, SandboxError> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        arch()?,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))
}

impl SeccompPlan {
    /// Compiles the deny list: [`DENIED_SYSCALLS`] and `clone` with any
    /// namespace flag return `EPERM`; `clone3` returns `ENOSYS` (its flags sit
    /// in memory a filter cannot read, and C libraries fall back to `clone`).
    pub fn new() -> Result<Self, SandboxError> {
        let mut deny: BTreeMap<i64, Vec<SeccompRule>> = DENIED_SYSCALLS
            .iter()
            .map(|&(_, nr)| (nr, Vec::new()))
            .collect();
        let clone_rules = NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let cond = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag as u64),
                    flag as u64,
                )?;
                SeccompRule::new(vec![cond])
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
        deny.insert(libc::SYS_clone, clone_rules);
        let clone3: BTreeMap<i64, Vec<SeccompRule>> =
            [(libc::SYS_clone3, Vec::new())].into_iter().collect();
        Ok(Self {
            filters: vec![
                compile(deny, libc::EPERM as u32)?,
                compile(clone3, libc::ENOSYS as u32)?,
            ],
        })
    }

    /// Installs the filters on the calling thread. `no_new_privs` must be set.
    ///
    /// Async-signal-safe: the programs were compiled in the parent; this only
    /// passes pointers to them to `seccomp(2)`.
    pub fn apply(&self) -> io::Result<()> {
        for program in &self.filters {
            let fprog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: `fprog` points at a live BPF program; the kernel copies
            // it and keeps no reference.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
