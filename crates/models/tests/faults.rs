//! Provider faults: each one either falls back to the next rung or ends in
//! a clear error, and every attempt is recorded.

mod common;

use common::{fault_turn, ladder, request, text_turn, trace};
use opticlaw_models::replay::{Fault, ReplayServer, ScriptedReply, Turn};
use opticlaw_models::{FinishReason, ModelError, ModelRouter, Outcome, Providers, Task, Tier};
use serde_json::json;

async fn run(turns: Vec<Turn>, timeout_ms: u64, task: &Task) -> (Outcome, ReplayServer) {
    let server = ReplayServer::start(trace(turns)).await.unwrap();
    let config = ladder(&server.base_url(), timeout_ms);
    let providers = Providers::from_config(&config).unwrap();
    let router = ModelRouter::new(config).unwrap();
    let mut req = request("What is on my calendar?");
    if task.needs_tools {
        req.tools = vec![common::weather_tool()];
    }
    let outcome = router.complete(task, &req, &providers).await;
    (outcome, server)
}

fn easy() -> Task {
    Task::new("t1", "alice", "chat", 0.2)
}

fn assert_fell_back(outcome: &Outcome, kind: &str) {
    let done = outcome.result.as_ref().expect("the fallback answered");
    assert_eq!(done.selection.tier, Tier::LocalMedium);
    assert_eq!(done.response.text, "ok");
    assert_eq!(outcome.usage.len(), 2, "both attempts are recorded");
    assert_eq!(outcome.usage[0].outcome, kind);
    assert_eq!(outcome.usage[1].outcome, "ok");
    assert_eq!(
        outcome.usage[1].reason,
        format!("fallback after {kind} on ollama")
    );
}

#[tokio::test]
async fn timeout_falls_back_to_the_next_rung() {
    let (outcome, _server) = run(
        vec![fault_turn(Fault::Delay { ms: 3_000 }), text_turn("ok")],
        300,
        &easy(),
    )
    .await;
    assert_fell_back(&outcome, "timeout");
}

#[tokio::test]
async fn server_error_500_falls_back() {
    let (outcome, _server) = run(
        vec![
            fault_turn(Fault::Status {
                status: 500,
                retry_after_s: None,
                body: None,
            }),
            text_turn("ok"),
        ],
        5_000,
        &easy(),
    )
    .await;
    assert_fell_back(&outcome, "http_error");
}

#[tokio::test]
async fn stream_dropped_midway_falls_back() {
    let mut dropped = text_turn("one two three four five");
    dropped.fault = Some(Fault::DropAfter { frames: 2 });
    let (outcome, _server) = run(vec![dropped, text_turn("ok")], 5_000, &easy()).await;
    assert_fell_back(&outcome, "stream_dropped");
}

#[tokio::test]
async fn malformed_json_falls_back() {
    let mut bad = text_turn("one two three");
    bad.fault = Some(Fault::Malformed);
    let (outcome, _server) = run(vec![bad, text_turn("ok")], 5_000, &easy()).await;
    assert_fell_back(&outcome, "malformed");
}

#[tokio::test]
async fn rate_limit_429_opens_the_breaker_for_retry_after_and_skips_the_provider() {
    let (outcome, server) = run(
        vec![
            fault_turn(Fault::Status {
                status: 429,
                retry_after_s: Some(30),
                body: None,
            }),
            text_turn("from the cloud"),
        ],
        5_000,
        &easy(),
    )
    .await;
    let done = outcome.result.as_ref().unwrap();
    // local_medium is on the same (rate-limited) provider: skipped, not called.
    assert_eq!(done.selection.tier, Tier::CloudPrimary);
    assert_eq!(server.request_count(), 2);
    assert_eq!(outcome.usage[0].outcome, "rate_limited");
    let (_, breaker) = &outcome.breakers[0];
    assert!(breaker.open_until_ms >= outcome.usage[0].at_ms + 30_000);
}

#[tokio::test]
async fn invalid_tool_call_arguments_fall_back_and_count_against_the_model() {
    let mut task = easy();
    task.needs_tools = true;
    let broken = common::tool_turn("get_weather", json!("{\"city\": "));
    let missing = common::tool_turn("get_weather", json!({ "town": "Paris" }));
    let good = common::tool_turn("get_weather", json!({ "city": "Paris" }));
    let (outcome, _server) = run(vec![broken, missing, good], 5_000, &task).await;
    let done = outcome.result.as_ref().unwrap();
    assert_eq!(done.selection.tier, Tier::CloudPrimary);
    assert_eq!(
        done.response.tool_calls[0].arguments,
        json!({ "city": "Paris" })
    );
    let kinds: Vec<_> = outcome.usage.iter().map(|u| u.outcome.as_str()).collect();
    assert_eq!(
        kinds,
        ["invalid_tool_arguments", "invalid_tool_arguments", "ok"]
    );
    assert!(
        outcome
            .results
            .contains(&("qwen2.5:1.5b".into(), "chat".into(), false))
    );
    assert!(
        outcome
            .results
            .contains(&("qwen2.5:7b".into(), "chat".into(), false))
    );
}

#[tokio::test]
async fn refusal_and_empty_reply_fall_back() {
    let refused = Turn {
        reply: ScriptedReply {
            text: "I can't help with that.".into(),
            finish_reason: Some(FinishReason::Refusal),
            ..Default::default()
        },
        ..text_turn("")
    };
    // An empty reply from local_small has confidence 0: local_medium answers.
    let (outcome, _server) = run(vec![text_turn(""), text_turn("ok")], 5_000, &easy()).await;
    assert_fell_back(&outcome, "low_confidence");

    // Ollama has no refusal signal; a cloud model refuses (OpenAI
    // `content_filter`) and the next cloud rung answers.
    let mut hard = easy();
    hard.complexity = 0.8;
    let (outcome, _server) = run(vec![refused, text_turn("fine")], 5_000, &hard).await;
    let done = outcome.result.as_ref().unwrap();
    assert_eq!(done.selection.tier, Tier::CloudSecondary);
    assert_eq!(outcome.usage[0].outcome, "refused");
}

#[tokio::test]
async fn every_rung_failing_ends_in_a_clear_error_with_every_attempt_recorded() {
    let fail = || {
        fault_turn(Fault::Status {
            status: 500,
            retry_after_s: None,
            body: None,
        })
    };
    let (outcome, _server) = run(vec![fail(), fail(), fail(), fail()], 5_000, &easy()).await;
    let err = outcome.result.as_ref().unwrap_err();
    assert!(
        matches!(err, ModelError::Exhausted { tried: 4, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("every model in the fallback chain failed"),
        "{message}"
    );
    assert!(message.contains("anthropic: HTTP 500"), "{message}");
    assert_eq!(outcome.usage.len(), 4);
    assert_eq!(outcome.decisions.len(), 4);
}
