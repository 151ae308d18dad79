//! After a crash: state comes back from the log, and a call that may have
//! taken effect is either replayed harmlessly or not repeated at all.

mod common;

use common::*;
use opticlaw_orchestrator::engine::idempotency_key;
use opticlaw_orchestrator::plans::GraphBuilder;
use opticlaw_orchestrator::{OrchestratorConfig, State, journal};
use opticlaw_security::idempotency;
use serde_json::{Value, json};

/// Records `graph` with its only node left `running` and its idempotency
/// key started: what a kill -9 in the middle of the call leaves behind.
async fn crashed_mid_call(h: &Harness, graph: opticlaw_core::TaskGraph, prepared: Value) -> String {
    let task = graph.task_id.to_string();
    let node = graph.nodes[0].id.clone();
    let t = task.clone();
    h.orch
        .store()
        .call(move |conn| {
            let step = |from, to, detail: Value| {
                journal::transition(conn, &t, Some(&node), Some(from), to, &detail, 1).unwrap();
            };
            journal::insert_task(conn, &graph, &alice(), 1).unwrap();
            journal::transition(
                conn,
                &t,
                None,
                Some(State::Planned),
                State::Running,
                &Value::Null,
                1,
            )
            .unwrap();
            step(State::Planned, State::Approved, json!({ "tier": 1 }));
            let key = idempotency_key(&t, &node, 0, 1);
            step(
                State::Approved,
                State::Running,
                json!({ "attempt": 1, "prepared": prepared, "key": key }),
            );
            idempotency::begin(conn, &key, chrono::Utc::now()).unwrap();
            Ok(())
        })
        .await
        .unwrap();
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_append_is_written_exactly_once_after_a_restart() {
    for effect_happened in [false, true] {
        let h = harness(LOW_POLICY, OrchestratorConfig::default());
        let file = h.grant.join("log.txt");
        std::fs::write(&file, if effect_happened { "a\nb\n" } else { "a\n" }).unwrap();
        let args = json!({ "path": "log.txt", "content": "b\n", "mode": "append" });
        let graph = GraphBuilder::new("append")
            .tool("w", &[], "file.write", args.clone())
            .build();
        let mut prepared = args;
        prepared["offset"] = json!(2);
        let task = crashed_mid_call(&h, graph, prepared).await;

        let (restarted, _) = open(&h.db, &h.grant, LOW_POLICY, OrchestratorConfig::default());
        assert_eq!(restarted.resume_all().await.unwrap(), 1);
        let view = restarted.wait_finished(&task).await.unwrap();
        assert_eq!(view.state, State::Completed, "{view:#?}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "a\nb\n",
            "effect_happened={effect_happened}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_shell_command_is_not_run_again_after_a_restart() {
    if !sandbox_available() {
        eprintln!("skipped: the namespace sandbox is unavailable here");
        return;
    }
    let h = harness(LOW_POLICY, OrchestratorConfig::default());
    let args = json!({ "command": "echo ran >> count" });
    let graph = GraphBuilder::new("count")
        .tool("s", &[], "shell", args.clone())
        .build();
    let task = crashed_mid_call(&h, graph, args).await;

    let (restarted, told) = open(&h.db, &h.grant, LOW_POLICY, OrchestratorConfig::default());
    restarted.resume_all().await.unwrap();
    let view = restarted.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert!(!h.grant.join("count").exists(), "the command ran again");
    assert!(
        view.node("s")
            .error
            .as_ref()
            .unwrap()
            .contains("not repeated")
    );
    let letters = restarted.dead_letters(true).await.unwrap();
    assert_eq!(letters.len(), 1, "a person decides: it is dead-lettered");
    told.containing("dead-letter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_whose_task_was_never_closed_is_rolled_back_once_after_a_restart() {
    let h = harness(LOW_POLICY, OrchestratorConfig::default());
    let file = h.grant.join("log.txt");
    std::fs::write(&file, "a\n").unwrap();
    let append = |text: &str| json!({ "path": "log.txt", "content": text, "mode": "append" });
    let graph = GraphBuilder::new("half done")
        .tool_with_undo(
            "a",
            &[],
            ("file.write", append("a\n")),
            ("file.write", append("undo a\n")),
        )
        .tool("b", &["a"], "file.read", json!({ "path": "missing.txt" }))
        .build();
    let task = graph.task_id.to_string();
    let t = task.clone();
    // `a` completed, `b` failed, then the crash: the task is still running.
    h.orch
        .store()
        .call(move |conn| {
            let step = |node: &str, from, to, detail: Value| {
                journal::transition(conn, &t, Some(node), Some(from), to, &detail, 1).unwrap();
            };
            journal::insert_task(conn, &graph, &alice(), 1).unwrap();
            journal::transition(
                conn,
                &t,
                None,
                Some(State::Planned),
                State::Running,
                &Value::Null,
                1,
            )
            .unwrap();
            step("a", State::Planned, State::Approved, Value::Null);
            step(
                "a",
                State::Approved,
                State::Running,
                json!({ "attempt": 1 }),
            );
            step(
                "a",
                State::Running,
                State::Completed,
                json!({ "output": {} }),
            );
            step("b", State::Planned, State::Approved, Value::Null);
            step(
                "b",
                State::Approved,
                State::Running,
                json!({ "attempt": 1 }),
            );
            step(
                "b",
                State::Running,
                State::Failed,
                json!({ "error": "missing.txt does not exist" }),
            );
            Ok(())
        })
        .await
        .unwrap();

    for _ in 0..2 {
        let (restarted, _) = open(&h.db, &h.grant, LOW_POLICY, OrchestratorConfig::default());
        restarted.resume_all().await.unwrap();
        let view = restarted.wait_finished(&task).await.unwrap();
        assert_eq!(view.state, State::RolledBack);
        assert_eq!(view.node("a").state, Some(State::RolledBack));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nundo a\n");
    assert_eq!(h.orch.dead_letters(true).await.unwrap().len(), 1);
}
