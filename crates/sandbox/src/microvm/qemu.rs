//! The QEMU command line of one run and the accelerator choice.
//!
//! Options from QEMU's manual (qemu-system-x86_64(1), "microvm" machine
//! docs in docs/system/i386/microvm.rst): `-M microvm` has no PCI, no
//! firmware tables beyond what Linux needs and only virtio-mmio devices;
//! `-nodefaults -no-user-config` leave out every default device and config
//! file; `-sandbox on` installs QEMU's own seccomp filter; `-runas` drops
//! QEMU to an unprivileged user once its devices are open.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How the guest's CPU is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    /// Hardware virtualization through `/dev/kvm` (`-enable-kvm -cpu host`).
    Kvm,
    /// QEMU's binary translator: no `/dev/kvm` needed, the same guest
    /// kernel boundary, several times slower.
    Tcg,
}

impl Accelerator {
    /// `"kvm"` or `"tcg"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Which accelerator to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceleratorChoice {
    /// KVM when [`kvm_usable`] says it can boot a stock kernel, else TCG.
    #[default]
    Auto,
    /// Only KVM: fail when it is unusable.
    Kvm,
    /// Always TCG.
    Tcg,
}

/// Whether `/dev/kvm` can run the (stock Debian) guest kernel: it must open
/// read-write and be backed by hardware virtualization (`kvm_intel` or
/// `kvm_amd`). A `/dev/kvm` served by `kvm_pvm` (pagetable-based
/// virtualization, found on nested cloud machines without VMX) runs only
/// guest kernels built for PVM: a stock kernel hangs right after its
/// real-mode setup, so it does not count.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let module = |name: &str| Path::new("/sys/module").join(name).exists();
    if module("kvm_intel") || module("kvm_amd") {
        return Ok(());
    }
    if module("kvm_pvm") {
        return Err(
            "/dev/kvm is kvm_pvm (no VMX/SVM here), which only boots PVM-built guest kernels"
                .into(),
        );
    }
    Err("/dev/kvm is served by neither kvm_intel nor kvm_amd".into())
}

/// Picks the accelerator for `choice`, with the reason when KVM is not used.
pub fn resolve(choice: AcceleratorChoice) -> Result<(Accelerator, Option<String>), String> {
    match choice {
        AcceleratorChoice::Tcg => Ok((Accelerator::Tcg, Some("configured".into()))),
        AcceleratorChoice::Kvm => kvm_usable().map(|()| (Accelerator::Kvm, None)),
        AcceleratorChoice::Auto => Ok(match kvm_usable() {
            Ok(()) => (Accelerator::Kvm, None),
            Err(why) => (Accelerator::Tcg, Some(why)),
        }),
    }
}

/// Guest descriptors QEMU inherits: the three output ports' pipes, then
/// one pinned directory per grant.
pub const STDOUT_FD: i32 = 3;
pub const STDERR_FD: i32 = 4;
pub const STATUS_FD: i32 = 5;
pub const FIRST_GRANT_FD: i32 = 6;

/// Everything the command line depends on.
pub struct VmPlan<'a> {
    pub accel: Accelerator,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub console_log: &'a Path,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub grants: usize,
    pub network: bool,
    /// Host user QEMU drops to (`-runas`), for a root caller.
    pub run_as: Option<&'a str>,
}

/// QEMU option values separate their own options with commas; a comma in
/// a value is written twice.
fn value(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// The kernel command line. `quiet` keeps the console short; `panic=-1`
/// with `-no-reboot` turns a guest panic into QEMU exiting.
fn kernel_cmdline(accel: Accelerator) -> String {
    let mut cmdline = String::from(
        "console=ttyS0 quiet panic=-1 reboot=t pci=off mitigations=off cryptomgr.notests \
         i8042.noaux i8042.nokbd 8250.nr_uarts=1 random.trust_cpu=on",
    );
    if accel == Accelerator::Tcg {
        // Without KVM's clock, microvm has no HPET or ACPI PM timer to
        // calibrate the TSC against: give its rate and skip the timer check
        // (the boot otherwise stalls there).
        cmdline.push_str(" tsc_early_khz=2000000 no_timer_check");
    }
    cmdline
}

/// The argument list (without the program).
pub fn args(plan: &VmPlan<'_>) -> Vec<OsString> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    match plan.accel {
        Accelerator::Kvm => push(&["-M", "microvm", "-enable-kvm", "-cpu", "host"]),
        Accelerator::Tcg => push(&[
            "-M",
            "microvm,pit=on,pic=on,rtc=on",
            "-accel",
            "tcg",
            "-cpu",
            "max",
        ]),
    }
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    // `-runas` needs setuid/setgid after the filter is in place, and then
    // leaves no way back to root; without it, deny them outright.
    push(&[
        "-sandbox",
        if plan.run_as.is_some() {
            "on,obsolete=deny,spawn=deny,resourcecontrol=deny"
        } else {
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
        },
    ]);
    let memory = format!("{}M", plan.memory_mib);
    let smp = plan.vcpus.to_string();
    push(&["-m", &memory, "-smp", &smp]);
    let kernel = plan.kernel.display().to_string();
    let initrd = plan.initrd.display().to_string();
    let cmdline = kernel_cmdline(plan.accel);
    push(&["-kernel", &kernel, "-initrd", &initrd, "-append", &cmdline]);
    let console = format!("file:{}", value(plan.console_log));
    push(&["-serial", &console]);
    push(&["-device", "virtio-serial-device,max_ports=4"]);
    for (id, fd, nr) in [
        ("out", STDOUT_FD, 1),
        ("err", STDERR_FD, 2),
        ("status", STATUS_FD, 3),
    ] {
        let chardev = format!("file,id={id},path=/dev/fd/{fd}");
        let port = format!("virtserialport,chardev={id},nr={nr},name=opticlaw.{id}");
        push(&["-chardev", &chardev, "-device", &port]);
    }
    for i in 0..plan.grants {
        let fd = FIRST_GRANT_FD + i as i32;
        // The grant's directory is opened through the descriptor the parent
        // pinned it with, so a rename after the check cannot swap it.
        let fsdev = format!("local,id=grant{i},path=/proc/self/fd/{fd},security_model=none");
        let dev = format!("virtio-9p-device,fsdev=grant{i},mount_tag=grant{i}");
        push(&["-fsdev", &fsdev, "-device", &dev]);
    }
    if plan.network {
        push(&[
            "-netdev",
            "user,id=net0",
            "-device",
            "virtio-net-device,netdev=net0",
        ]);
    }
    if let Some(user) = plan.run_as {
        push(&["-runas", user]);
    }
    a.into_iter().map(OsString::from).collect()
}

/// The run's scratch files, in a private temporary directory.
pub struct RunDir {
    pub dir: tempfile::TempDir,
}

impl RunDir {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("opticlaw-vm-").tempdir()?,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
