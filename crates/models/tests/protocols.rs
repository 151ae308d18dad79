//! Each protocol against golden traces: the exact request bodies sent, and
//! the normalized replies (text, tool calls, usage) read back from streams.
//!
//! Re-record the expected requests with `OPTICLAW_BLESS=1 cargo test -p
//! opticlaw-models --test protocols` (then review the diff).

mod common;

use common::golden;
use opticlaw_models::providers::{HttpProvider, Provider, collect};
use opticlaw_models::replay::{ReplayServer, Trace};
use opticlaw_models::{ChatResponse, FinishReason, Protocol, ToolCall};

async fn replay_golden(file: &str) {
    let path = golden(file);
    let mut trace = Trace::load(&path).unwrap();
    let server = ReplayServer::start(trace.clone()).await.unwrap();
    for (i, turn) in trace.turns.iter().enumerate() {
        let protocol = turn.protocol.unwrap();
        let config = common::provider("p", protocol, &server.base_url(), 5_000);
        let provider = HttpProvider::new(&config, None);
        let input = turn.input.clone().unwrap();
        let stream = provider.stream(&input).await.unwrap();
        let reply: ChatResponse = collect("p", stream).await.unwrap();
        let expected = &turn.reply;
        assert_eq!(reply.text, expected.text, "{file} turn {i}: text");
        let calls: Vec<ToolCall> = expected
            .tool_calls
            .iter()
            .map(|c| ToolCall {
                id: if protocol == Protocol::Ollama {
                    format!("call_{}", 1)
                } else {
                    c.id.clone()
                },
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            })
            .collect();
        assert_eq!(reply.tool_calls, calls, "{file} turn {i}: tool calls");
        assert_eq!(Some(reply.usage), expected.usage, "{file} turn {i}: usage");
        assert_eq!(
            Some(reply.finish_reason),
            expected.finish_reason,
            "{file} turn {i}"
        );
    }
    let received: Vec<_> = server.requests().into_iter().map(|r| r.body).collect();
    if std::env::var_os("OPTICLAW_BLESS").is_some() {
        for (turn, body) in trace.turns.iter_mut().zip(&received) {
            turn.request = Some(body.clone());
        }
        let text = serde_json::to_string_pretty(&trace).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    for (i, (turn, body)) in trace.turns.iter().zip(&received).enumerate() {
        assert_eq!(
            Some(body),
            turn.request.as_ref(),
            "{file} turn {i}: request body"
        );
    }
    assert_eq!(received.len(), trace.turns.len());
}

#[tokio::test]
async fn ollama_ndjson_tool_call_round_trip_matches_golden() {
    replay_golden("ollama_tool_call.json").await;
}

#[tokio::test]
async fn openai_sse_tool_call_with_streamed_arguments_matches_golden() {
    replay_golden("openai_tool_call.json").await;
}

#[tokio::test]
async fn openai_compatible_text_stream_with_usage_matches_golden() {
    replay_golden("openai_compatible_text.json").await;
}

#[tokio::test]
async fn anthropic_sse_text_and_tool_use_blocks_match_golden() {
    replay_golden("anthropic_tool_call.json").await;
}

#[tokio::test]
async fn non_streamed_replies_are_read_in_every_protocol() {
    for protocol in [
        Protocol::Ollama,
        Protocol::OpenaiCompatible,
        Protocol::Openai,
        Protocol::Anthropic,
    ] {
        let server = ReplayServer::start(common::trace(vec![common::text_turn("Hello there.")]))
            .await
            .unwrap();
        let provider = HttpProvider::new(
            &common::provider("p", protocol, &server.base_url(), 5_000),
            None,
        );
        let mut request = common::request("hi");
        request.model = "m".into();
        request.max_tokens = 32;
        request.stream = false;
        let reply = collect("p", provider.stream(&request).await.unwrap())
            .await
            .unwrap();
        assert_eq!(reply.text, "Hello there.", "{protocol:?}");
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        assert!(
            reply.usage.input_tokens > 0,
            "{protocol:?}: estimated usage reported"
        );
        assert_eq!(server.requests()[0].body["stream"], false);
    }
}

#[tokio::test]
async fn anthropic_requests_carry_version_and_key_headers() {
    let server = ReplayServer::start(common::trace(vec![common::text_turn("ok")]))
        .await
        .unwrap();
    let provider = HttpProvider::new(
        &common::provider("claude", Protocol::Anthropic, &server.base_url(), 5_000),
        Some(opticlaw_models::Secret::new("sk-ant-test")),
    );
    let mut request = common::request("hi");
    request.model = "claude-haiku".into();
    request.max_tokens = 16;
    collect("claude", provider.stream(&request).await.unwrap())
        .await
        .unwrap();
    let headers = &server.requests()[0].headers;
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert!(!headers.contains_key("authorization"));
}
