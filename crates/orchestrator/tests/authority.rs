//! What the orchestrator refuses: paths outside a grant, a sandboxed
//! command reaching out, approvals from the wrong person, tier 3 without
//! a second factor, and tokens not meant for a runner.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use opticlaw_orchestrator::plans::GraphBuilder;
use opticlaw_orchestrator::tools::{FileRead, GrantedDirs, Runner, Tool, ToolCall, ToolError};
use opticlaw_orchestrator::{OrchError, OrchestratorConfig, State};
use opticlaw_security::approval::{ApprovalError, Principal};
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{DEFAULT_TTL, Grant, TokenMinter};
use serde_json::json;

async fn read_outcome(h: &Harness, path: &str) -> (State, Option<String>) {
    let graph = GraphBuilder::new("read")
        .tool("r", &[], "file.read", json!({ "path": path }))
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    let node = view.node("r");
    (view.state, node.error.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_outside_the_grant_are_refused_whatever_the_path_trick() {
    let h = harness(LOW_POLICY, fast_retries(1));
    let secret = h.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    std::os::unix::fs::symlink(&secret, h.grant.join("link-out")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", h.grant.join("rel-out")).unwrap();
    std::fs::create_dir(h.grant.join("sub")).unwrap();
    std::os::unix::fs::symlink("/etc", h.grant.join("sub/etc")).unwrap();
    std::fs::write(h.grant.join("ok.txt"), "fine").unwrap();
    std::os::unix::fs::symlink("ok.txt", h.grant.join("link-in")).unwrap();

    for path in [
        "../secret.txt".to_owned(),
        secret.display().to_string(),
        "link-out".into(),
        "rel-out".into(),
        "sub/etc/passwd".into(),
        "/etc/passwd".into(),
        format!("{}/../secret.txt", h.grant.display()),
    ] {
        let (state, error) = read_outcome(&h, &path).await;
        assert_eq!(state, State::Failed, "{path} was read");
        let error = error.unwrap();
        assert!(!error.contains("top secret"), "{error}");
    }
    // A symlink that stays inside the grant is fine.
    let (state, _) = read_outcome(&h, "link-in").await;
    assert_eq!(state, State::Completed);
    assert!(
        audit_kinds(&h.db)
            .iter()
            .filter(|k| *k == "refusal")
            .count()
            >= 5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_command_writes_only_its_grant_and_has_no_network() {
    if !sandbox_available() {
        eprintln!("skipped: the namespace sandbox is unavailable here");
        return;
    }
    let h = harness(LOW_POLICY, fast_retries(1));
    let outside = h.dir.path().join("outside.txt");
    let command = format!(
        "echo in > inside.txt; echo out > {} 2>/dev/null; \
         if cat /sys/class/net/*/address 2>/dev/null | grep -qv 00:00:00:00:00:00; then echo net > net.txt; fi; \
         tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > ifaces.txt",
        outside.display()
    );
    let graph = GraphBuilder::new("probe")
        .tool("s", &[], "shell", json!({ "command": command }))
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(h.grant.join("inside.txt")).unwrap(),
        "in\n"
    );
    assert!(!outside.exists(), "wrote outside the grant");
    let ifaces = std::fs::read_to_string(h.grant.join("ifaces.txt")).unwrap();
    assert_eq!(ifaces.trim(), "lo", "only loopback in the sandbox");

    let graph = GraphBuilder::new("network")
        .tool(
            "n",
            &[],
            "shell",
            json!({ "command": "true", "network": true }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert!(view.node("n").error.as_ref().unwrap().contains("network"));
}

const WRITE_TIER_2: &str = r#"
[[policy]]
tool = "file.write"
scope = "write"
tier = 2
[[policy]]
tool = "shell"
scope = "exec"
tier = 3
"#;

/// The id in the approval prompt the user was sent.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_2_waits_for_the_same_user_in_the_same_chat() {
    let h = harness(WRITE_TIER_2, OrchestratorConfig::default());
    let graph = GraphBuilder::new("write a note")
        .tool(
            "w",
            &[],
            "file.write",
            json!({ "path": "note.txt", "content": "hello" }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    let view = h
        .orch
        .wait_for(&task, |v| v.node("w").state == Some(State::Blocked))
        .await
        .unwrap();
    assert_eq!(view.state, State::Blocked);
    assert!(!h.grant.join("note.txt").exists(), "ran before approval");
    let id = approval_id(&h.told).await;
    let prompt = h.told.texts().join("\n");
    assert!(
        prompt.contains("file.write") && prompt.contains("note.txt") && prompt.contains("hello"),
        "{prompt}"
    );

    for intruder in [
        Principal {
            chat_id: "chat-2".into(),
            ..alice()
        },
        Principal {
            user_id: "mallory".into(),
            ..alice()
        },
        Principal {
            source: "slack".into(),
            ..alice()
        },
    ] {
        match h.orch.approve(&id, &intruder, None).await {
            Err(OrchError::Approval(ApprovalError::WrongPrincipal(_))) => {}
            other => panic!("approval by {intruder:?}: {other:?}"),
        }
    }
    assert!(!h.grant.join("note.txt").exists());
    assert_eq!(
        audit_kinds(&h.db)
            .iter()
            .filter(|k| *k == "approval_refused")
            .count(),
        3
    );

    h.orch.approve(&id, &alice(), None).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Completed);
    assert_eq!(
        std::fs::read_to_string(h.grant.join("note.txt")).unwrap(),
        "hello"
    );
    assert!(
        h.orch.approve(&id, &alice(), None).await.is_err(),
        "approved twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_action_never_runs() {
    let h = harness(WRITE_TIER_2, OrchestratorConfig::default());
    let graph = GraphBuilder::new("write")
        .tool(
            "w",
            &[],
            "file.write",
            json!({ "path": "no.txt", "content": "x" }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    h.orch
        .wait_for(&task, |v| v.node("w").state == Some(State::Blocked))
        .await
        .unwrap();
    let id = approval_id(&h.told).await;
    h.orch.deny(&id, &alice()).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert!(!h.grant.join("no.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_3_needs_a_fresh_totp_code() {
    if !sandbox_available() {
        eprintln!("skipped: the namespace sandbox is unavailable here");
        return;
    }
    let h = harness(WRITE_TIER_2, OrchestratorConfig::default());
    let graph = GraphBuilder::new("admin")
        .tool(
            "s",
            &[],
            "shell",
            json!({ "command": "echo ran > ran.txt" }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    h.orch
        .wait_for(&task, |v| v.node("s").state == Some(State::Blocked))
        .await
        .unwrap();
    let id = approval_id(&h.told).await;
    assert!(h.told.texts().join("\n").contains("CODE"));
    assert!(matches!(
        h.orch.approve(&id, &alice(), None).await,
        Err(OrchError::Approval(ApprovalError::TotpRequired))
    ));
    assert!(matches!(
        h.orch.approve(&id, &alice(), Some("000000")).await,
        Err(OrchError::Approval(ApprovalError::TotpInvalid))
    ));
    assert!(!h.grant.join("ran.txt").exists());
    let code = totp().generate(chrono::Utc::now().timestamp() as u64);
    h.orch.approve(&id, &alice(), Some(&code)).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Completed);
    assert!(h.grant.join("ran.txt").exists());
}

#[test]
fn a_runner_refuses_tokens_for_another_runner_another_file_or_another_key() {
    let dir = test_dir();
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    std::fs::write(dir.path().join("b.txt"), "b").unwrap();
    let grant = dir.path().canonicalize().unwrap();
    let tool: Arc<dyn Tool> = Arc::new(FileRead::new(
        GrantedDirs::new(std::slice::from_ref(&grant)).unwrap(),
    ));
    let minter = TokenMinter::new(SigningKey::ephemeral());
    let runner = Runner::new(tool, minter.verifying_key());
    let mint = |minter: &TokenMinter, audience: &str, tool: &str, file: &str| {
        let grant = Grant {
            tool: tool.into(),
            scope: "read".into(),
            resource: grant.join(file).display().to_string(),
            audience: audience.into(),
            node: "t/n".into(),
        };
        minter
            .mint(&grant, chrono::Utc::now(), DEFAULT_TTL)
            .unwrap()
            .to_base64()
    };
    let args = json!({ "path": "a.txt" });
    let call = |token: &str| {
        runner.execute(&ToolCall {
            token,
            args: &args,
            key: "k",
            resumed: false,
            timeout: Duration::from_secs(1),
        })
    };
    assert!(call(&mint(&minter, "runner/file.read", "file.read", "a.txt")).is_ok());
    for token in [
        mint(&minter, "runner/shell", "file.read", "a.txt"),
        mint(&minter, "runner/file.read", "file.write", "a.txt"),
        mint(&minter, "runner/file.read", "file.read", "b.txt"),
        mint(
            &TokenMinter::new(SigningKey::ephemeral()),
            "runner/file.read",
            "file.read",
            "a.txt",
        ),
        "not a token".to_owned(),
    ] {
        assert!(matches!(call(&token), Err(ToolError::Token(_))), "{token}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_expires_and_the_action_never_runs() {
    let config = OrchestratorConfig {
        approval_ttl: chrono::Duration::milliseconds(100),
        ..OrchestratorConfig::default()
    };
    let h = harness(WRITE_TIER_2, config);
    let graph = GraphBuilder::new("write")
        .tool(
            "w",
            &[],
            "file.write",
            json!({ "path": "late.txt", "content": "x" }),
        )
        .build();
    let task = h.orch.submit(graph, alice()).await.unwrap();
    let view = h.orch.wait_finished(&task).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert!(view.node("w").error.as_ref().unwrap().contains("expired"));
    let id = approval_id(&h.told).await;
    assert!(h.orch.approve(&id, &alice(), None).await.is_err());
    assert!(!h.grant.join("late.txt").exists());
}
