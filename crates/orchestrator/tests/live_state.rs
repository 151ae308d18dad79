//! The state the orchestrator keeps in memory while a task runs is the
//! log's fold: at every quiet point it equals what a restart would rebuild.

mod common;

use std::time::Duration;

use common::*;
use opticlaw_orchestrator::plans::GraphBuilder;
use opticlaw_orchestrator::{OrchestratorConfig, State, TaskView, journal};
use serde_json::json;

/// Reads `task` from the log on a connection of its own, as a restarted
/// daemon would.
fn from_the_log(h: &Harness, task: &str) -> TaskView {
    let conn = opticlaw_store::rusqlite::Connection::open(&h.db).unwrap();
    journal::load(&conn, task).unwrap()
}

const READS_LOW_WRITES_ASK: &str = r#"
[[policy]]
tool = "file.read"
scope = "read"
tier = 1
[[policy]]
tool = "file.write"
scope = "write"
tier = 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_equals_the_log_through_retries_approvals_and_completion() {
    let h = harness(READS_LOW_WRITES_ASK, far_retries());
    std::fs::write(h.grant.join("seed.txt"), "seed").unwrap();
    std::fs::create_dir(h.grant.join("sub")).unwrap();
    let graph = GraphBuilder::new("read, then write after approval")
        // Reading a directory fails in a way worth retrying.
        .tool("flaky", &[], "file.read", json!({ "path": "sub" }))
        .tool("seed", &[], "file.read", json!({ "path": "seed.txt" }))
        .tool(
            "w",
            &["seed"],
            "file.write",
            json!({ "path": "out.txt", "content": "done" }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    let quiet = h
        .orch
        .wait_for(&task, |v| {
            v.node("flaky").retry_at_ms.is_some()
                && v.node("seed").state == Some(State::Completed)
                && v.node("w").state == Some(State::Blocked)
        })
        .await
        .unwrap();
    let live = h
        .orch
        .live_view(&task)
        .expect("a running task is in memory");
    assert_eq!(live, quiet);
    assert_eq!(live, from_the_log(&h, &task));
    assert_eq!(live.state, State::Blocked);
    assert_eq!(live.node("flaky").attempt, 1);
    assert!(live.node("w").approval_id.is_some());

    let id = approval_id(&h.told).await;
    h.orch.approve(&id, &alice(), None).await.unwrap();
    h.orch
        .wait_for(&task, |v| v.node("w").state == Some(State::Completed))
        .await
        .unwrap();
    let live = h.orch.live_view(&task).expect("still waiting for a retry");
    assert_eq!(live, from_the_log(&h, &task));
    assert_eq!(live.state, State::Running);
    assert!(live.node("w").completed_seq.is_some());
    assert_eq!(
        std::fs::read_to_string(h.grant.join("out.txt")).unwrap(),
        "done"
    );

    // A restarted orchestrator rebuilds the same view from the log.
    let (restarted, _) = open(&h.db, &h.grant, READS_LOW_WRITES_ASK, far_retries());
    assert_eq!(restarted.live_view(&task), None, "nothing read yet");
    assert_eq!(restarted.load(&task).await.unwrap(), live);
    assert_eq!(restarted.live_view(&task), Some(live));
}

/// Retries far enough away that a task holds still while compared.
fn far_retries() -> OrchestratorConfig {
    OrchestratorConfig {
        retry_base: Duration::from_secs(600),
        ..OrchestratorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_leaves_memory_and_is_read_from_the_log() {
    let h = harness(LOW_POLICY, OrchestratorConfig::default());
    std::fs::write(h.grant.join("a.txt"), "a").unwrap();
    let graph = GraphBuilder::new("read")
        .tool("r", &[], "file.read", json!({ "path": "a.txt" }))
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Completed);
    assert_eq!(h.orch.live_view(&task), None);
    assert_eq!(view, from_the_log(&h, &task));
}
