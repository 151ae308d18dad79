//! Per-host network grants through the orchestrator: the policy lists the
//! hosts a shell node may be granted, the node's token carries them, the
//! sandbox's proxy admits only those, and every connection is audited.
//! A real HTTP server (python3's http.server) on loopback, curl inside the
//! sandbox.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use opticlaw_orchestrator::State;
use opticlaw_orchestrator::plans::GraphBuilder;
use serde_json::json;

/// `python3 -m http.server` serving `dir` on a free loopback port; its
/// request log (stderr) goes to `dir/../NAME.log`.
struct PyServer {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl PyServer {
    fn start(dir: &Path, name: &str) -> Self {
        let log = dir.parent().unwrap().join(format!("{name}.log"));
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner {line:?}"));
        Self { child, port, log }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_present() -> bool {
    let present = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !sandbox_available() || !present("curl") || !present("python3") {
        eprintln!("skipped: needs the namespace sandbox, curl and python3");
        return false;
    }
    true
}

/// Shell at tier 1, allowed to be granted `host` only.
fn policy(host: &str) -> String {
    format!("[[policy]]\ntool = \"shell\"\nscope = \"exec\"\ntier = 1\nhosts = [\"{host}\"]\n")
}

fn served(name: &str) -> (tempfile::TempDir, PyServer) {
    let dir = test_dir();
    let root = dir.path().join("site");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hello through the proxy\n").unwrap();
    let server = PyServer::start(&root, name);
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_host_is_reached_after_approval_and_every_connection_is_audited() {
    if !tools_present() {
        return;
    }
    let (_site, granted) = served("granted");
    let (_other_site, other) = served("other");
    let host = format!("127.0.0.1:{}", granted.port);
    let h = harness(&policy(&host), fast_retries(1));
    let command = format!(
        "curl -sS --max-time 10 -o got.txt http://{host}/hello.txt; \
         curl -sS --max-time 10 -o - -w '%{{http_code}}' http://127.0.0.1:{}/hello.txt > other.txt",
        other.port
    );
    let graph = GraphBuilder::new("fetch")
        .tool(
            "f",
            &[],
            "shell",
            json!({ "command": command, "hosts": [host] }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();

    // Network makes it tier 2: nothing runs before the user approves, and
    // the prompt names the host.
    let prompt = h.told.containing("/approve ").await;
    assert!(prompt.contains(&host), "{prompt}");
    assert!(granted.requests().is_empty(), "ran before approval");
    let id = prompt.split("/approve ").nth(1).unwrap();
    let id = id.split_whitespace().next().unwrap().to_owned();
    h.orch.approve(&id, &alice(), None).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();

    assert_eq!(view.state, State::Completed, "{:?}", view.node("f"));
    assert_eq!(
        std::fs::read_to_string(h.grant.join("got.txt")).unwrap(),
        "hello through the proxy\n"
    );
    assert!(granted.requests().contains("GET /hello.txt"));
    // The other server, not granted, got nothing; the command got a 403.
    assert!(other.requests().is_empty(), "{}", other.requests());
    let refused = std::fs::read_to_string(h.grant.join("other.txt")).unwrap();
    assert!(refused.ends_with("403"), "{refused}");
    let kinds = audit_kinds(&h.db);
    assert_eq!(
        kinds.iter().filter(|k| *k == "egress_allowed").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "egress_refused").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_policy_does_not_list_is_refused_before_anything_runs() {
    if !tools_present() {
        return;
    }
    let (_site, server) = served("unlisted");
    let listed = format!("127.0.0.1:{}", server.port);
    let h = harness(&policy("api.example.com:443"), fast_retries(1));
    for hosts in [json!([listed]), json!(["api.example.com:443", listed])] {
        let graph = GraphBuilder::new("fetch")
            .tool(
                "f",
                &[],
                "shell",
                json!({ "command": format!("curl -sS http://{listed}/ > out.txt"), "hosts": hosts }),
            )
            .build();
        let task = h.orch.submit(graph, alice()).await.unwrap();
        let view = h.orch.wait_finished(&task).await.unwrap();
        assert_eq!(view.state, State::Failed);
        let error = view.node("f").error.clone().unwrap();
        assert!(error.contains("reach host"), "{error}");
    }
    assert!(!h.grant.join("out.txt").exists(), "the command ran");
    assert!(server.requests().is_empty());
    assert!(audit_kinds(&h.db).iter().any(|k| k == "refusal"));
}
