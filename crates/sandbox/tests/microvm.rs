//! Behaviour of the microVM runner: each test boots real guests under QEMU
//! (KVM where it can boot a stock kernel, else TCG). Without the assets of
//! `scripts/install-microvm` every test says it skipped and passes.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opticlaw_sandbox::microvm::MicroVmSandbox;
use opticlaw_sandbox::{ExitStatus, Limits, Network, RunSpec, Sandbox, SandboxError};
use tempfile::TempDir;

/// A boot under TCG on a busy machine can take a while: generous limit.
const BOOT_BUDGET: Duration = Duration::from_secs(120);

/// Guests boot one at a time: under TCG each is a CPU-bound thread, and
/// several at once on a small machine would stretch boots past the
/// wall-clock test's budget.
static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn sandbox() -> Option<(MutexGuard<'static, ()>, MicroVmSandbox)> {
    let turn = ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("microvm-cache");
    match MicroVmSandbox::new(cache) {
        Ok(vm) => Some((turn, vm)),
        Err(SandboxError::Unavailable { layer, reason }) => {
            eprintln!(
                "SKIPPED: the microVM runner is unavailable ({layer}: {reason}); run scripts/install-microvm"
            );
            None
        }
        Err(e) => panic!("microVM sandbox: {e}"),
    }
}

/// A directory the guest's user may write to by file permissions (QEMU
/// runs as that uid), so only the runner's grants decide.
fn dir_for(vm: &MicroVmSandbox) -> TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = vm.identity();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
    }
    dir
}

fn sh(script: &str) -> RunSpec {
    RunSpec::new(["/bin/sh", "-c", script]).limits(Limits {
        wall_clock: BOOT_BUDGET,
        ..Limits::default()
    })
}

#[test]
fn output_and_exit_code_come_back() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let out = vm
        .run(&sh(
            "echo out; echo err >&2; id -u; ulimit -t; ulimit -u; exit 7",
        ))
        .unwrap();
    assert_eq!(out.status, ExitStatus::Exited(7), "{out:?}");
    assert!(!out.timed_out);
    // The command ran as nobody with the spec's CPU and process rlimits.
    assert_eq!(out.stdout.text(), "out\n65534\n10\n64\n", "{out:?}");
    assert_eq!(out.stderr.text(), "err\n");
    assert!(out.isolation.no_new_privs && out.isolation.net_ns);
}

#[test]
fn output_is_capped_like_the_namespace_runner() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let mut spec = sh("yes 0123456789 | head -c 100000; echo tail >&2");
    spec.limits.output_bytes = 1000;
    let out = vm.run(&spec).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.bytes.len(), 1000);
    assert!(out.stdout.truncated);
    assert_eq!(out.stdout.total_bytes, 100_000);
    assert_eq!(out.stderr.text(), "tail\n");
}

#[test]
fn writes_land_only_in_the_granted_dir() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let granted = dir_for(&vm);
    // Writable for QEMU's uid by permissions, but not granted.
    let other = dir_for(&vm);
    let script = format!(
        "echo hello > note.txt && mkdir sub && echo nested > sub/n.txt; \
         echo x > {o}/escape; echo x > /escape; echo x > /tmp/scratch; echo done",
        o = other.path().display()
    );
    let out = vm
        .run(&sh(&script).writable(granted.path()).workdir(granted.path()))
        .unwrap();
    assert_eq!(out.stdout.text(), "done\n", "{out:?}");
    assert_eq!(
        std::fs::read_to_string(granted.path().join("note.txt")).unwrap(),
        "hello\n"
    );
    assert!(granted.path().join("sub/n.txt").is_file());
    assert!(!other.path().join("escape").exists());
    assert!(!Path::new("/escape").exists());
    // The guest is root of nothing on the host: files belong to QEMU's uid.
    let meta = std::fs::metadata(granted.path().join("note.txt")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), vm.identity().0);
    assert_eq!(
        out.isolation.writable_dirs,
        [granted.path().display().to_string()]
    );
}

#[test]
fn host_files_are_not_visible() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let home = dir_for(&vm);
    let secret = home.path().join("api_token");
    std::fs::write(&secret, "sk-live-very-secret\n").unwrap();
    let script = format!(
        "cat {s}; ls {h}; cat /etc/shadow; ls /home /root /usr; echo probed",
        s = secret.display(),
        h = home.path().display()
    );
    let out = vm.run(&sh(&script)).unwrap();
    assert!(out.stdout.text().ends_with("probed\n"), "{out:?}");
    let everything = format!("{}{}", out.stdout.text(), out.stderr.text());
    assert!(!everything.contains("sk-live"), "{everything}");
    assert!(everything.contains("No such file"), "{everything}");
}

#[test]
fn no_network_unless_granted() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // QEMU's user-mode network forwards 10.0.2.2 to the host's loopback.
    let script =
        format!("ls /sys/class/net; echo hi | nc -w 5 10.0.2.2 {port} && echo connected; echo end");
    let out = vm.run(&sh(&script)).unwrap();
    assert_eq!(out.stdout.text(), "lo\nend\n", "{out:?}");
    assert!(!out.stdout.text().contains("connected"));

    // The same command with the network granted does connect, so the
    // check above could fail.
    listener.set_nonblocking(false).unwrap();
    let accept = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).unwrap();
        got
    });
    let out = vm.run(&sh(&script).network(Network::Full)).unwrap();
    assert_eq!(out.stdout.text(), "eth0\nlo\nconnected\nend\n", "{out:?}");
    assert_eq!(accept.join().unwrap(), "hi\n");
    assert!(!out.isolation.net_ns);
}

#[test]
fn wall_clock_limit_kills_the_vm() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let granted = dir_for(&vm);
    let mut spec = sh("touch started; sleep 600; touch finished")
        .writable(granted.path())
        .workdir(granted.path());
    spec.limits.wall_clock = Duration::from_secs(60);
    let t = Instant::now();
    let out = vm.run(&spec).unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.status, ExitStatus::Signaled(libc_sigkill()));
    assert!(t.elapsed() < Duration::from_secs(90), "{:?}", t.elapsed());
    // It was running (booted and started) when it was killed.
    assert!(granted.path().join("started").exists(), "{out:?}");
    assert!(!granted.path().join("finished").exists());
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

#[test]
fn output_imitating_the_framing_cannot_forge_the_exit_status() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    // The command prints the status frame on both streams and tries to
    // write it to every port and the console itself, then fails.
    let script = "printf 'exit=0\\n'; printf 'exit=0\\n' >&2; \
                  for d in /dev/vport0p3 /dev/vport0p1 /dev/console /dev/ttyS0; do \
                    echo exit=0 > $d && echo wrote $d; done; exit 3";
    let out = vm.run(&sh(script)).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(3), "{out:?}");
    assert_eq!(out.stdout.text(), "exit=0\n", "{out:?}");
    assert!(out.stderr.text().starts_with("exit=0\n"), "{out:?}");
    assert!(out.stderr.text().contains("Permission denied"), "{out:?}");
}

#[test]
fn a_workdir_outside_the_guest_is_refused_before_booting() {
    let Some((_turn, vm)) = sandbox() else {
        return;
    };
    let err = vm.run(&sh("true").workdir("/etc")).unwrap_err();
    assert!(matches!(err, SandboxError::InvalidSpec(_)), "{err}");
}
