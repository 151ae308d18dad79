//! Stopping a task revokes the capability tokens minted for it: a runner
//! presented one afterwards (a cancelled task, a denied approval, and after
//! a restart) refuses it before anything runs, and the revocation is
//! audited.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opticlaw_orchestrator::plans::GraphBuilder;
use opticlaw_orchestrator::tools::{Tool, ToolCall, ToolError};
use opticlaw_orchestrator::{Orchestrator, OrchestratorConfig, Parts, State, Timers};
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{TokenError, TokenMinter};
use opticlaw_security::{Policy, PolicyConfig};
use opticlaw_store::{StoreHandle, Synchronous};
use serde_json::{Value, json};

/// A tool that keeps the token of its first call and holds that call until
/// released; every later call returns at once. It counts its runs.
struct Gate {
    tokens: Mutex<Vec<String>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
    runs: Mutex<u32>,
}

impl Tool for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn scope(&self) -> &'static str {
        "run"
    }
    fn resource(&self, _: &Value) -> Result<String, ToolError> {
        Ok("gate".into())
    }
    fn replay_safe(&self) -> bool {
        true
    }
    fn run(&self, call: &ToolCall<'_>) -> Result<Value, ToolError> {
        *self.runs.lock().unwrap() += 1;
        // Taken before the token is shown: only the first call holds.
        let release = self.release.lock().unwrap().take();
        self.tokens.lock().unwrap().push(call.token.to_owned());
        if let Some(release) = release {
            let _ = release.recv_timeout(Duration::from_secs(20));
        }
        Ok(json!({}))
    }
}

const POLICY: &str = r#"
[[policy]]
tool = "gate"
scope = "run"
tier = 1
[[policy]]
tool = "file.write"
scope = "write"
tier = 2
"#;

struct Setup {
    dir: tempfile::TempDir,
    orch: Orchestrator,
    gate: Arc<Gate>,
    told: Arc<Told>,
    release: mpsc::Sender<()>,
}

fn open_with_gate(dir: &std::path::Path, gate: Arc<Gate>) -> (Orchestrator, Arc<Told>) {
    let db = dir.join("o.db");
    let store = StoreHandle::open_with(
        &db,
        Synchronous::Normal,
        &[
            opticlaw_security::COMPONENT,
            opticlaw_orchestrator::COMPONENT,
        ],
    )
    .unwrap();
    let grants = opticlaw_orchestrator::tools::GrantedDirs::new(&[dir.to_path_buf()]).unwrap();
    let policy: PolicyConfig = toml::from_str(POLICY).unwrap();
    let told = Arc::new(Told::default());
    let orch = Orchestrator::new(Parts {
        store,
        minter: TokenMinter::new(SigningKey::load_or_create(&db.with_extension("key")).unwrap()),
        tools: vec![
            gate,
            Arc::new(opticlaw_orchestrator::tools::FileWrite::new(grants)),
        ],
        policy: Policy::from_config(&policy).unwrap(),
        totp: None,
        notifier: Some(told.clone()),
        timers: Timers::InProcess,
        config: OrchestratorConfig::default(),
    });
    (orch, told)
}

fn setup() -> Setup {
    let dir = test_dir();
    let (release, held) = mpsc::channel();
    let gate = Arc::new(Gate {
        tokens: Mutex::new(Vec::new()),
        release: Mutex::new(Some(held)),
        runs: Mutex::new(0),
    });
    let (orch, told) = open_with_gate(dir.path(), gate.clone());
    Setup {
        dir,
        orch,
        gate,
        told,
        release,
    }
}

/// The token of the gate's first call, once that call is running.
async fn held_token(gate: &Gate) -> String {
    for _ in 0..500 {
        if let Some(token) = gate.tokens.lock().unwrap().first() {
            return token.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gate never ran");
}

/// Presents `token` to the orchestrator's own gate runner, as a replay.
fn present(orch: &Orchestrator, token: &str) -> Result<Value, ToolError> {
    let args = json!({});
    orch.runner("gate").unwrap().execute(&ToolCall {
        token,
        args: &args,
        key: "replayed",
        resumed: false,
        timeout: Duration::from_secs(5),
    })
}

fn assert_revoked(result: Result<Value, ToolError>) {
    assert!(
        matches!(result, Err(ToolError::Token(TokenError::Revoked))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_tasks_token_is_refused_by_the_runner_even_after_a_restart() {
    let s = setup();
    let graph = GraphBuilder::new("hold the gate")
        .tool("g", &[], "gate", json!({}))
        .tool("after", &["g"], "gate", json!({}))
        .build();
    let task = s.orch.submit(graph, alice()).await.unwrap();
    let token = held_token(&s.gate).await;
    // Valid while the task runs: the runner accepts it (and runs).
    assert!(present(&s.orch, &token).is_ok());
    assert_eq!(*s.gate.runs.lock().unwrap(), 2);

    s.orch.cancel(&task, "alice").await.unwrap();
    assert_revoked(present(&s.orch, &token));
    assert_eq!(
        *s.gate.runs.lock().unwrap(),
        2,
        "a revoked token ran the tool"
    );
    s.release.send(()).unwrap();
    let view = s.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert_eq!(view.node("after").state, Some(State::Failed), "{view:#?}");
    s.told.containing("cancelled by alice").await;
    let kinds = audit_kinds(&s.dir.path().join("o.db"));
    assert!(kinds.contains(&"tokens_revoked".to_owned()), "{kinds:?}");

    // A restarted daemon loads the revocation from the store.
    drop(s.orch);
    let (restarted, _) = open_with_gate(s.dir.path(), s.gate.clone());
    restarted.resume_all().await.unwrap();
    assert_revoked(present(&restarted, &token));
    assert_eq!(*s.gate.runs.lock().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_approval_revokes_the_tokens_of_its_task() {
    let s = setup();
    let graph = GraphBuilder::new("gate, and a write that needs approval")
        .tool("g", &[], "gate", json!({}))
        .tool(
            "w",
            &[],
            "file.write",
            json!({ "path": "no.txt", "content": "x" }),
        )
        .build();
    let task = s.orch.submit(graph, alice()).await.unwrap();
    let token = held_token(&s.gate).await;
    let id = approval_id(&s.told).await;
    s.orch.deny(&id, &alice()).await.unwrap();
    assert_revoked(present(&s.orch, &token));
    assert_eq!(*s.gate.runs.lock().unwrap(), 1);
    s.release.send(()).unwrap();
    let view = s.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert!(!s.dir.path().join("no.txt").exists());
}
