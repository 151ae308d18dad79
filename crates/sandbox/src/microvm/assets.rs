//! Finding what a microVM boots: QEMU, a guest kernel, its modules and a
//! static busybox. `scripts/install-microvm` puts the last three in
//! `<repo>/.cache/microvm` (from Debian's `linux-image-amd64` and
//! `busybox-static`, unpacked, never installed).

use std::path::{Path, PathBuf};

/// Directory, relative to a repository checkout, that
/// `scripts/install-microvm` fills.
pub const DEFAULT_ASSET_DIR: &str = ".cache/microvm";

/// Environment variable naming the asset directory.
pub const ASSET_DIR_ENV: &str = "OPTICLAW_MICROVM_DIR";

/// Kernel modules the guest loads, in dependency order (Debian builds
/// virtio, 9p and virtio-console as modules). The network driver's three
/// come last and are loaded only when a run is granted the network.
/// `scripts/install-microvm` keeps the same list.
pub const BASE_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "virtio_console",
];

/// Modules for a guest network card (loaded after [`BASE_MODULES`]).
pub const NETWORK_MODULES: &[&str] = &["failover", "net_failover", "virtio_net"];

/// The files a microVM is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assets {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The guest kernel: the uncompressed `vmlinux` when the install script
    /// could extract it (QEMU then boots it through its PVH entry and skips
    /// the decompressor), else the `vmlinuz` bzImage.
    pub kernel: PathBuf,
    /// Directory holding `<module>.ko` for every [`BASE_MODULES`] and
    /// [`NETWORK_MODULES`] entry.
    pub modules: PathBuf,
    /// A statically linked busybox: the guest's whole userland.
    pub busybox: PathBuf,
}

impl Assets {
    /// Finds the assets in `dir`, and QEMU on `PATH`; says what is missing.
    pub fn in_dir(dir: &Path) -> Result<Self, String> {
        let qemu = find_on_path("qemu-system-x86_64")
            .ok_or("qemu-system-x86_64 is not installed (run scripts/install-microvm)")?;
        let kernel = ["vmlinux", "vmlinuz"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no guest kernel in {}", dir.display()))?;
        let modules = dir.join("modules");
        let missing: Vec<&str> = BASE_MODULES
            .iter()
            .chain(NETWORK_MODULES)
            .copied()
            .filter(|m| !modules.join(format!("{m}.ko")).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "guest kernel modules missing in {}: {}",
                modules.display(),
                missing.join(", ")
            ));
        }
        let busybox = dir.join("busybox");
        if !busybox.is_file() {
            return Err(format!("no busybox at {}", busybox.display()));
        }
        Ok(Self {
            qemu,
            kernel,
            modules,
            busybox,
        })
    }

    /// Finds the assets in `$OPTICLAW_MICROVM_DIR`, else in
    /// [`DEFAULT_ASSET_DIR`] under the working directory or one of its
    /// ancestors.
    pub fn locate() -> Result<Self, String> {
        if let Some(dir) = std::env::var_os(ASSET_DIR_ENV) {
            return Self::in_dir(Path::new(&dir));
        }
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        let dir = cwd
            .ancestors()
            .map(|a| a.join(DEFAULT_ASSET_DIR))
            .find(|d| d.is_dir())
            .ok_or_else(|| {
                format!(
                    "no {DEFAULT_ASSET_DIR} in {} or above, and {ASSET_DIR_ENV} is unset (run scripts/install-microvm)",
                    cwd.display()
                )
            })?;
        Self::in_dir(&dir)
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
