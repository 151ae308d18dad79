//! Landlock through its three raw system calls.
//!
//! The `landlock` crate allocates while it builds a ruleset, and the ruleset
//! has to be built *inside* the child (after the new mount tree exists, so
//! that the rules name its inodes, e.g. the private `/tmp`). Between `fork`
//! and `exec` only async-signal-safe work is allowed, so this module keeps
//! to stack structs and syscalls: [`LandlockPlan`] is prepared in the parent
//! (all allocation happens there) and [`LandlockPlan::apply`] runs in the child.

use std::ffi::CString;
use std::io;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
const ACCESS_FS_REMOVE_DIR: u64 = 1 << 4;
const ACCESS_FS_REMOVE_FILE: u64 = 1 << 5;
const ACCESS_FS_MAKE_CHAR: u64 = 1 << 6;
const ACCESS_FS_MAKE_DIR: u64 = 1 << 7;
const ACCESS_FS_MAKE_REG: u64 = 1 << 8;
const ACCESS_FS_MAKE_SOCK: u64 = 1 << 9;
const ACCESS_FS_MAKE_FIFO: u64 = 1 << 10;
const ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
const ACCESS_FS_MAKE_SYM: u64 = 1 << 12;
const ACCESS_FS_REFER: u64 = 1 << 13;
const ACCESS_FS_TRUNCATE: u64 = 1 << 14;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// `struct landlock_ruleset_attr` (ABI 6 layout; older kernels get a prefix).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr`, which the kernel declares packed.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the running kernel offers, or `None` when
/// Landlock is not built in or not enabled at boot.
pub fn abi_version() -> Option<u32> {
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the
    // call only returns a number; it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

/// Rights that let a process change the file tree, for ABI `abi`.
fn write_rights(abi: u32) -> u64 {
    let mut rights = ACCESS_FS_WRITE_FILE
        | ACCESS_FS_REMOVE_DIR
        | ACCESS_FS_REMOVE_FILE
        | ACCESS_FS_MAKE_CHAR
        | ACCESS_FS_MAKE_DIR
        | ACCESS_FS_MAKE_REG
        | ACCESS_FS_MAKE_SOCK
        | ACCESS_FS_MAKE_FIFO
        | ACCESS_FS_MAKE_BLOCK
        | ACCESS_FS_MAKE_SYM;
    if abi >= 2 {
        rights |= ACCESS_FS_REFER;
    }
    if abi >= 3 {
        rights |= ACCESS_FS_TRUNCATE;
    }
    rights
}

/// A ruleset prepared in the parent: writes are handled (denied) everywhere
/// except beneath the listed directories and on the listed device files.
/// Reads and execution are not restricted by Landlock (the read-only mount
/// tree and DAC govern those).
#[derive(Debug)]
pub struct LandlockPlan {
    abi: u32,
    attr_size: usize,
    handled_fs: u64,
    scoped: u64,
    rules: Vec<(Target, u64)>,
}

/// What a rule names: a path opened in the child, or a directory descriptor
/// the parent opened (inherited across `fork`, closed at `exec`).
#[derive(Debug)]
pub enum Target {
    /// A path as seen inside the sandbox.
    Path(CString),
    /// An `O_PATH` descriptor pinning the directory's inode.
    Fd(libc::c_int),
}

impl LandlockPlan {
    /// Prepares a plan for ABI `abi` granting writes beneath `dirs` and to
    /// `files` (device nodes such as `/dev/null`).
    pub fn new(abi: u32, dirs: Vec<Target>, files: Vec<Target>) -> Self {
        let handled_fs = write_rights(abi);
        let file_rights = handled_fs & (ACCESS_FS_WRITE_FILE | ACCESS_FS_TRUNCATE);
        let (attr_size, scoped) = match abi {
            0..=3 => (8, 0),
            4 | 5 => (16, 0),
            _ => (24, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL),
        };
        let rules = dirs
            .into_iter()
            .map(|d| (d, handled_fs))
            .chain(files.into_iter().map(|f| (f, file_rights)))
            .collect();
        Self {
            abi,
            attr_size,
            handled_fs,
            scoped,
            rules,
        }
    }

    /// The ABI version this plan enforces.
    pub fn abi(&self) -> u32 {
        self.abi
    }

    /// Creates the ruleset, adds the rules and restricts the calling process.
    /// Requires `no_new_privs` (or `CAP_SYS_ADMIN`) already set.
    ///
    /// Async-signal-safe: only syscalls on data prepared by [`Self::new`].
    /// A path that does not exist in the sandbox is skipped (nothing to grant).
    pub fn apply(&self) -> io::Result<()> {
        let attr = RulesetAttr {
            handled_access_fs: self.handled_fs,
            handled_access_net: 0,
            scoped: self.scoped,
        };
        // SAFETY: `attr` is a live, initialised struct of at least
        // `attr_size` bytes (the size matches the ABI's struct prefix).
        let ruleset = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                self.attr_size,
                0u32,
            )
        };
        if ruleset < 0 {
            return Err(io::Error::last_os_error());
        }
        let ruleset = ruleset as libc::c_int;
        let result = self.add_rules_and_restrict(ruleset);
        // SAFETY: `ruleset` is a descriptor this function opened.
        unsafe { libc::close(ruleset) };
        result
    }

    fn add_rules_and_restrict(&self, ruleset: libc::c_int) -> io::Result<()> {
        for (target, access) in &self.rules {
            let (fd, owned) = match target {
                Target::Fd(fd) => (*fd, false),
                Target::Path(path) => {
                    // SAFETY: `path` is a valid NUL-terminated string owned by self.
                    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
                    if fd < 0 {
                        continue;
                    }
                    (fd, true)
                }
            };
            let rule = PathBeneathAttr {
                allowed_access: *access,
                parent_fd: fd,
            };
            // SAFETY: `rule` is a live packed struct as the kernel expects.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset,
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            let err = io::Error::last_os_error();
            if owned {
                // SAFETY: `fd` was opened above and is closed once.
                unsafe { libc::close(fd) };
            }
            if rc < 0 {
                return Err(err);
            }
        }
        // SAFETY: plain syscall on a descriptor we own.
        let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
