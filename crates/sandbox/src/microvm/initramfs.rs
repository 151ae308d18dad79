//! The guest's root file system: an initramfs (newc cpio) of busybox, the
//! kernel modules and [`INIT`], cached by content hash, plus a small
//! per-run archive appended to it (the kernel unpacks concatenated cpio
//! archives in order) that holds what to run.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use cpio::newc::Builder;
use sha2::{Digest, Sha256};

use super::assets::{Assets, BASE_MODULES, NETWORK_MODULES};

/// PID 1 of the guest. It mounts the pseudo file systems, loads the
/// drivers, waits for the three output ports, sources the per-run
/// `/opticlaw/setup` (mounts, network), runs `/opticlaw/exec` as `nobody`
/// with `no_new_privs` and its stdout/stderr on their ports, writes
/// `exit=<code>` on the status port and powers off. Only this script (root)
/// can open the status port (devtmpfs makes it root-only), so nothing the
/// command prints or writes can forge its exit status. Setup failures go
/// to the status port as `setup=<stage>` and to the serial console.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {
    echo "opticlaw-init: setup failed: $1" >/dev/console
    [ -c /dev/vport0p3 ] && echo "setup=$1" >/dev/vport0p3
    poweroff -f
}
mount -t proc -o nosuid,nodev,noexec proc /proc || fail proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail sys
mount -t devtmpfs -o nosuid,noexec devtmpfs /dev || fail dev
mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m tmpfs /tmp || fail tmp
for module in $(cat /opticlaw/modules); do
    insmod "/lib/opticlaw/$module.ko" || fail "module $module"
done
# virtio-console announces its ports after the driver is up: wait (at most
# ~5 s of guest time) for all three to appear.
tries=0
while [ ! -c /dev/vport0p1 ] || [ ! -c /dev/vport0p2 ] || [ ! -c /dev/vport0p3 ]; do
    tries=$((tries + 1))
    [ "$tries" -gt 500 ] && fail ports
    usleep 10000
done
chmod 0600 /dev/vport0p1 /dev/vport0p2 /dev/vport0p3
. /opticlaw/setup
# The host kills QEMU at the wall-clock limit; this guest-side limit (twice
# it, plus 10 s) stops the guest too if the host process died meanwhile.
timeout -s KILL "$(cat /opticlaw/wall_seconds)" \
    su -s /bin/sh nobody -c 'exec setpriv --nnp /bin/sh /opticlaw/exec' \
    </dev/null >/dev/vport0p1 2>/dev/vport0p2
echo "exit=$?" >/dev/vport0p3
poweroff -f
"#;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

const DIR: u32 = 0o040000;
const FILE: u32 = 0o100000;
const CHAR: u32 = 0o020000;

/// Appends newc entries to a buffer; inode numbers are made unique.
struct Archive<W: Write> {
    out: W,
    ino: u32,
}

impl<W: Write> Archive<W> {
    fn new(out: W, first_ino: u32) -> Self {
        Self {
            out,
            ino: first_ino,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> io::Result<()> {
        self.ino += 1;
        let size = u32::try_from(data.len()).map_err(|_| io::Error::other("file too large"))?;
        let mut writer = Builder::new(name)
            .ino(self.ino)
            .mode(mode)
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1)
            .write(&mut self.out, size);
        writer.write_all(data)?;
        writer.finish()?;
        Ok(())
    }

    fn dir(&mut self, name: &str, perms: u32) -> io::Result<()> {
        self.entry(name, DIR | perms, &[], (0, 0))
    }

    fn file(&mut self, name: &str, perms: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, FILE | perms, data, (0, 0))
    }

    fn finish(self) -> io::Result<W> {
        cpio::newc::trailer(self.out)
    }
}

/// The base image's content: what goes in, read once to hash and write.
struct BaseContent {
    busybox: Vec<u8>,
    modules: Vec<(String, Vec<u8>)>,
}

impl BaseContent {
    fn read(assets: &Assets) -> io::Result<Self> {
        let busybox = std::fs::read(&assets.busybox)?;
        let modules = BASE_MODULES
            .iter()
            .chain(NETWORK_MODULES)
            .map(|m| {
                Ok((
                    m.to_string(),
                    std::fs::read(assets.modules.join(format!("{m}.ko")))?,
                ))
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { busybox, modules })
    }

    fn hash(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            INIT.as_bytes(),
            PASSWD.as_bytes(),
            GROUP.as_bytes(),
            &self.busybox,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        for (name, data) in &self.modules {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((data.len() as u64).to_le_bytes());
            h.update(data);
        }
        hex::encode(&h.finalize()[..12])
    }

    fn write(&self, out: impl Write) -> io::Result<()> {
        let mut a = Archive::new(out, 0);
        for dir in ["bin", "dev", "proc", "sys", "tmp", "etc", "root", "lib"] {
            a.dir(dir, 0o755)?;
        }
        a.dir("lib/opticlaw", 0o700)?;
        // The kernel opens /dev/console for PID 1 before /init runs.
        a.entry("dev/console", CHAR | 0o600, &[], (5, 1))?;
        a.file("bin/busybox", 0o755, &self.busybox)?;
        a.file("init", 0o700, INIT.as_bytes())?;
        a.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
        a.file("etc/group", 0o644, GROUP.as_bytes())?;
        for (name, data) in &self.modules {
            a.file(&format!("lib/opticlaw/{name}.ko"), 0o600, data)?;
        }
        a.finish()?.flush()
    }
}

/// Returns the cached base image for `assets` in `cache_dir`
/// (`initramfs-<hash>.cpio`), building it first if it is not there.
pub fn base_image(assets: &Assets, cache_dir: &Path) -> io::Result<PathBuf> {
    let content = BaseContent::read(assets)?;
    let path = cache_dir.join(format!("initramfs-{}.cpio", content.hash()));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir)?;
    let partial = tempfile::NamedTempFile::new_in(cache_dir)?;
    content.write(BufWriter::new(partial.as_file()))?;
    partial.as_file().sync_all()?;
    partial.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// What one run adds to the base image: shell text the init script
/// sources as root (`setup`) and runs as `nobody` (`exec`), and the
/// modules to load.
pub struct RunFiles {
    pub modules: Vec<&'static str>,
    /// The guest's own wall-clock limit for the command, in seconds.
    pub wall_seconds: u64,
    pub setup: String,
    pub exec: String,
}

/// Writes `base` followed by the run's own archive to `path`.
pub fn write_run_image(base: &Path, run: &RunFiles, path: &Path) -> io::Result<()> {
    std::fs::copy(base, path)?;
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    let mut a = Archive::new(BufWriter::new(file), 1 << 20);
    a.dir("opticlaw", 0o755)?;
    a.file("opticlaw/modules", 0o400, run.modules.join("\n").as_bytes())?;
    a.file("opticlaw/setup", 0o400, run.setup.as_bytes())?;
    a.file(
        "opticlaw/wall_seconds",
        0o400,
        run.wall_seconds.to_string().as_bytes(),
    )?;
    // Read by `sh` running as nobody: readable, but owned by root.
    a.file("opticlaw/exec", 0o444, run.exec.as_bytes())?;
    a.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_newc_with_a_trailer_and_unique_inodes() {
        let mut a = Archive::new(Vec::new(), 0);
        a.dir("opticlaw", 0o755).unwrap();
        a.file("opticlaw/exec", 0o444, b"exit 3\n").unwrap();
        let bytes = a.finish().unwrap();
        let mut names = Vec::new();
        let mut inos = Vec::new();
        let mut rest: &[u8] = &bytes;
        loop {
            let mut reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            names.push(reader.entry().name().to_owned());
            inos.push(reader.entry().ino());
            let mut data = Vec::new();
            io::Read::read_to_end(&mut reader, &mut data).unwrap();
            if names.len() == 2 {
                assert_eq!(data, b"exit 3\n");
                assert_eq!(reader.entry().mode(), FILE | 0o444);
            }
            rest = reader.finish().unwrap();
        }
        assert_eq!(names, ["opticlaw", "opticlaw/exec"]);
        assert_ne!(inos[0], inos[1]);
    }
}
