//! Behaviour of the namespace sandbox. Each test would fail if the layer it
//! names were missing; where a layer cannot work on this machine the test
//! asserts that the probe and the run's report say so instead.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use opticlaw_sandbox::{ExitStatus, Limits, NamespaceSandbox, Network, RunSpec, Sandbox};
use tempfile::TempDir;

fn sandbox() -> NamespaceSandbox {
    NamespaceSandbox::new().expect("namespaces are available on this machine")
}

/// A fresh directory the sandbox user may write to (by file permissions), so
/// that only the sandbox's own layers can stop a write. It lives outside
/// `/tmp` (which the sandbox replaces with a private tmpfs anyway).
fn dir_for(sandbox: &NamespaceSandbox) -> TempDir {
    // The checkout may itself live under /tmp (CI clones anywhere), and the
    // sandbox hides the host's /tmp: then use /var/tmp.
    let target_tmp = env!("CARGO_TARGET_TMPDIR");
    let base = if Path::new(target_tmp).starts_with("/tmp") {
        "/var/tmp"
    } else {
        target_tmp
    };
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = sandbox.identity();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
    }
    dir
}

fn sh(script: &str) -> RunSpec {
    RunSpec::new(["/bin/sh", "-c", script])
}

fn perl(code: &str) -> RunSpec {
    RunSpec::new(["/usr/bin/perl", "-e", code])
}

fn with_limits(spec: RunSpec, f: impl FnOnce(&mut Limits)) -> RunSpec {
    let mut limits = spec.limits.clone();
    f(&mut limits);
    spec.limits(limits)
}

#[test]
fn granted_dir_is_writable() {
    let sb = sandbox();
    let granted = dir_for(&sb);
    let spec = sh("echo hello > note.txt && mkdir sub && echo nested > sub/n.txt")
        .writable(granted.path())
        .workdir(granted.path());
    let out = sb.run(&spec).unwrap();
    assert!(out.status.success(), "{out:?}");
    let note = std::fs::read_to_string(granted.path().join("note.txt")).unwrap();
    assert_eq!(note, "hello\n");
    assert!(granted.path().join("sub/n.txt").exists());
}

#[test]
fn command_cannot_write_outside_granted_dir() {
    let sb = sandbox();
    let granted = dir_for(&sb);
    // Writable for the sandbox uid by permissions, but not granted.
    let other = dir_for(&sb);
    let host_tmp = format!("/tmp/opticlaw-escape-{}", std::process::id());
    let script = format!(
        "echo x > {o}/escape; echo x > {t}; echo x > /etc/opticlaw-escape; \
         mkdir {o}/d; ln -s /etc {o}/l; echo done",
        o = other.path().display(),
        t = host_tmp,
    );
    let out = sb.run(&sh(&script).writable(granted.path())).unwrap();
    assert_eq!(out.stdout.text(), "done\n", "{out:?}");
    assert!(out.isolation.read_only_root);
    assert!(
        std::fs::read_dir(other.path()).unwrap().next().is_none(),
        "something was written outside the grant"
    );
    assert!(!Path::new(&host_tmp).exists(), "the host /tmp was written");
    assert!(!Path::new("/etc/opticlaw-escape").exists());
    assert!(
        out.stderr.text().contains("Read-only file system"),
        "{out:?}"
    );
}

#[test]
fn landlock_alone_blocks_writes_outside_grants() {
    let sb = sandbox();
    let other = dir_for(&sb);
    let mut spec = sh(&format!("echo x > {}/escape", other.path().display()));
    spec.read_only_root = false;
    let out = sb.run(&spec).unwrap();
    match sb.probe_report().landlock_abi {
        Some(abi) => {
            assert_eq!(out.isolation.landlock_abi, Some(abi));
            assert!(!out.status.success(), "{out:?}");
            assert!(!other.path().join("escape").exists());
            assert!(out.stderr.text().contains("Permission denied"), "{out:?}");
        }
        None => assert_eq!(out.isolation.landlock_abi, None),
    }
}

#[test]
fn command_has_no_network() {
    let sb = sandbox();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let connect = RunSpec::new(["/bin/bash", "-c", script.as_str()]);

    let out = sb.run(&connect).unwrap();
    assert!(out.isolation.net_ns);
    assert!(!out.stdout.text().contains("connected"), "{out:?}");
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );

    // The same command with the host network does connect: the test above
    // fails if the network namespace is missing.
    let out = sb.run(&connect.network(Network::Full)).unwrap();
    assert!(!out.isolation.net_ns);
    assert_eq!(out.stdout.text(), "connected\n", "{out:?}");
}

#[test]
fn fork_bomb_is_capped_by_process_limit() {
    let sb = sandbox();
    // A bounded bomb: 200 forks, each child sleeping, so the machine is safe
    // even if the limit were missing.
    let code = "my $n = 0; for (1..200) { my $p = fork(); last unless defined $p; \
                if ($p == 0) { sleep 30; exit 0 } $n++ } print \"forked=$n\\n\"";
    let spec = with_limits(perl(code), |l| {
        l.max_processes = Some(16);
        l.wall_clock = Duration::from_secs(60);
    });
    let started = Instant::now();
    let out = sb.run(&spec).unwrap();
    let text = out.stdout.text();
    let forked: u32 = text
        .trim()
        .strip_prefix("forked=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {out:?}"));
    assert!(forked < 16, "forked {forked} processes past a limit of 16");
    // perl exits after printing; PID 1 exiting takes the sleepers with it
    // (well before they would wake, even on a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(20), "{out:?}");
    assert!(!out.timed_out);
}

#[test]
fn runaway_command_is_killed_at_timeout() {
    let sb = sandbox();
    let granted = dir_for(&sb);
    let script = format!(
        "(sleep 1.5; touch {}/survivor) & sleep 60",
        granted.path().display()
    );
    let spec = with_limits(sh(&script).writable(granted.path()), |l| {
        l.wall_clock = Duration::from_millis(300)
    });
    let started = Instant::now();
    let out = sb.run(&spec).unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.status, ExitStatus::Signaled(libc_sigkill()));
    // Far less than the 60 s it asked for, even on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(20), "{out:?}");
    // The background child was in the same PID namespace and died with it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !granted.path().join("survivor").exists(),
        "a process outlived the timeout"
    );
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

#[test]
fn memory_hog_is_killed_by_memory_limit() {
    let sb = sandbox();
    let code = "my $x = \"x\" x (512 * 1024 * 1024); print \"allocated\\n\"";
    let limited = with_limits(perl(code), |l| l.memory_bytes = Some(256 << 20));
    let out = sb.run(&limited).unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(!out.stdout.text().contains("allocated"), "{out:?}");
    assert!(out.stderr.text().contains("Out of memory"), "{out:?}");

    // Control: with room to spare the same program succeeds.
    let roomy = with_limits(perl(code), |l| l.memory_bytes = Some(2 << 30));
    let out = sb.run(&roomy).unwrap();
    assert_eq!(out.stdout.text(), "allocated\n", "{out:?}");
}

#[test]
fn output_is_truncated_at_cap() {
    let sb = sandbox();
    let spec = with_limits(sh("yes | head -c 100000; echo err >&2"), |l| {
        l.output_bytes = 1000
    });
    let out = sb.run(&spec).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.bytes.len(), 1000);
    assert!(out.stdout.truncated);
    assert_eq!(out.stdout.total_bytes, 100_000);
    assert_eq!(out.stderr.text(), "err\n");
    assert!(!out.stderr.truncated);
}

#[test]
fn ptrace_is_denied_by_seccomp() {
    let sb = sandbox();
    #[cfg(target_arch = "x86_64")]
    const SYS_PTRACE: u32 = 101;
    #[cfg(target_arch = "aarch64")]
    const SYS_PTRACE: u32 = 117;
    // PTRACE_TRACEME succeeds for any process unless something forbids it.
    let code =
        format!("my $r = syscall({SYS_PTRACE}, 0, 0, 0, 0); print \"r=$r errno=\", $!+0, \"\\n\"");
    let out = sb.run(&perl(&code)).unwrap();
    if !sb.probe_report().seccomp {
        assert!(
            !out.isolation.seccomp,
            "report claims seccomp the probe did not find"
        );
        return;
    }
    assert!(out.isolation.seccomp);
    assert_eq!(out.stdout.text(), "r=-1 errno=1\n", "{out:?}");
}

#[test]
fn exit_code_and_stderr_are_reported() {
    let sb = sandbox();
    let out = sb.run(&sh("echo out; echo oops >&2; exit 3")).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(3));
    assert_eq!(out.stdout.text(), "out\n");
    assert_eq!(out.stderr.text(), "oops\n");
    assert!(!out.timed_out);
}

#[test]
fn command_is_pid_1_and_sees_only_its_namespace() {
    let sb = sandbox();
    let out = sb
        .run(&sh("echo $$; ls /proc | grep -c '^[0-9]'; hostname"))
        .unwrap();
    let lines: Vec<String> = out.stdout.text().lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "1", "{out:?}");
    // sh, ls, grep and maybe hostname: a handful, not the host's processes.
    let visible: u32 = lines[1].parse().unwrap();
    assert!(visible <= 5, "saw {visible} processes: {out:?}");
    assert_eq!(lines[2], "sandbox");
}

#[test]
fn host_secrets_and_devices_are_hidden() {
    let sb = sandbox();
    let out = sb
        .run(&sh(
            "cat /etc/shadow; ls /dev; test -e /dev/kvm && echo kvm-visible; id -u",
        ))
        .unwrap();
    let text = out.stdout.text();
    assert!(!text.contains("root:"), "{out:?}");
    assert!(!text.contains("kvm-visible"), "{out:?}");
    assert!(text.contains("null"), "{out:?}");
    let uid = text.lines().last().unwrap_or_default();
    assert_ne!(uid, "0", "the command ran as root: {out:?}");
}

#[test]
fn probe_measures_this_machine() {
    let report = opticlaw_sandbox::probe();
    println!("{report}");
    assert!(
        report.user_ns && report.mount_ns && report.pid_ns,
        "{report}"
    );
    assert!(!report.kernel.is_empty());
}

#[test]
fn cpu_hog_is_killed_by_cpu_limit() {
    let sb = sandbox();
    let spec = with_limits(sh("while :; do :; done"), |l| {
        l.cpu_seconds = Some(1);
        // Far beyond the CPU limit: on a loaded machine the hog gets a
        // fraction of a core, and the kernel's SIGKILL comes at the hard
        // limit (one second past the soft one) of CPU, not of wall time.
        l.wall_clock = Duration::from_secs(120);
    });
    let out = sb.run(&spec).unwrap();
    assert!(
        !out.timed_out,
        "the CPU limit, not the timeout, must stop it: {out:?}"
    );
    let xcpu = nix::sys::signal::Signal::SIGXCPU as i32;
    assert!(
        matches!(out.status, ExitStatus::Signaled(s) if s == xcpu || s == libc_sigkill()),
        "{out:?}"
    );
    assert!(out.usage.user_cpu + out.usage.system_cpu >= Duration::from_millis(900));
}

#[test]
fn setup_failure_is_fail_closed_and_names_the_stage() {
    let sb = sandbox();
    let err = sb
        .run(&sh("echo ran").workdir("/nonexistent-opticlaw-dir"))
        .unwrap_err();
    match err {
        opticlaw_sandbox::SandboxError::Setup { stage, .. } => {
            assert_eq!(stage, "enter the working directory")
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
}

#[test]
fn symlinked_or_dotted_grant_is_refused() {
    let sb = sandbox();
    let base = dir_for(&sb);
    let link = base.path().join("etc-link");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let dotted = base.path().join("..").join("..");
    for grant in [link, dotted] {
        let err = sb.run(&sh("true").writable(&grant)).unwrap_err();
        assert!(
            matches!(err, opticlaw_sandbox::SandboxError::InvalidSpec(_)),
            "{grant:?}: {err:?}"
        );
    }
}

#[test]
fn symlink_inside_grant_does_not_escape() {
    let sb = sandbox();
    let granted = dir_for(&sb);
    // Writable for the sandbox uid by permissions, reachable through a link.
    let other = dir_for(&sb);
    std::os::unix::fs::symlink(other.path(), granted.path().join("out")).unwrap();
    let spec = sh("echo x > out/escape; ln -s /etc/passwd pw; echo x >> pw; echo done")
        .writable(granted.path())
        .workdir(granted.path());
    let out = sb.run(&spec).unwrap();
    assert_eq!(out.stdout.text(), "done\n", "{out:?}");
    assert!(!other.path().join("escape").exists(), "{out:?}");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.ends_with("x\n"), "/etc/passwd was appended to");
}

#[test]
fn hidden_dir_is_empty_inside_even_through_a_symlink_in_the_grant() {
    let sb = sandbox();
    let granted = dir_for(&sb);
    let secrets = dir_for(&sb);
    std::fs::write(secrets.path().join("api_token"), "s3cret-token\n").unwrap();
    std::os::unix::fs::symlink(secrets.path().join("api_token"), granted.path().join("t")).unwrap();
    let script = format!(
        "cat {0}/api_token; cat t; ls -A {0} | wc -l; echo x > {0}/new",
        secrets.path().display()
    );
    let spec = sh(&script)
        .writable(granted.path())
        .workdir(granted.path())
        .hidden(secrets.path());
    let out = sb.run(&spec).unwrap();
    assert!(!out.stdout.text().contains("s3cret"), "{out:?}");
    assert_eq!(out.stdout.text().trim(), "0", "{out:?}");
    assert!(!secrets.path().join("new").exists());

    // Without hiding, the same file is readable when permissions allow it:
    // the test above fails if the tmpfs is missing.
    std::fs::set_permissions(
        secrets.path().join("api_token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let open = sb
        .run(&sh(&format!("cat {}/api_token", secrets.path().display())))
        .unwrap();
    assert_eq!(open.stdout.text(), "s3cret-token\n", "{open:?}");
}

#[test]
fn hiding_a_dir_that_holds_a_grant_is_refused() {
    let sb = sandbox();
    let outer = dir_for(&sb);
    let inner = outer.path().join("work");
    std::fs::create_dir(&inner).unwrap();
    let err = sb
        .run(&sh("true").writable(&inner).hidden(outer.path()))
        .unwrap_err();
    assert!(
        matches!(&err, opticlaw_sandbox::SandboxError::InvalidSpec(m) if m.contains("holds the granted dir")),
        "{err:?}"
    );
}
