//! Golden traces and the scripted provider server that replays them.
//!
//! A trace (JSON, kept under `crates/models/tests/golden/`) is a list of
//! turns. Each turn says which protocol should be called, optionally the
//! exact request body expected, the reply in the internal form, and
//! optionally a fault to inject:
//!
//! ```json
//! { "name": "weather", "repeat": false, "turns": [
//!   { "protocol": "openai",
//!     "request": { "model": "gpt-4o", "messages": [ ... ], "stream": true, ... },
//!     "reply": { "text": "", "tool_calls": [{ "id": "call_1", "name": "get_weather",
//!                "arguments": { "city": "Paris" } }], "finish_reason": "tool_calls",
//!                "usage": { "input_tokens": 80, "output_tokens": 12 } },
//!     "fault": null } ] }
//! ```
//!
//! [`ReplayServer`] binds `127.0.0.1:0` and answers `POST /api/chat`
//! (Ollama NDJSON), `POST /v1/chat/completions` (OpenAI SSE) and
//! `POST /v1/messages` (Anthropic SSE), streamed or not as the request asks,
//! consuming the turns in order. It records every request it receives, so
//! tests assert the exact requests sent. Faults: an HTTP status (with
//! `Retry-After`), a delay before answering (timeouts), a stream dropped
//! after some frames, a malformed frame, and a 401 echoing the credentials
//! it was sent (to prove they never reach an error message). When `usage`
//! is absent, the reply reports [`crate::tokens`] estimates of the request
//! received and the reply text.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::providers::{Protocol, anthropic, ollama, openai};
use crate::tokens;
use crate::types::{FinishReason, Usage};

/// A recorded conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Start again from the first turn when the last is used (for
    /// `opticlaw serve --model replay:FILE`).
    #[serde(default)]
    pub repeat: bool,
    pub turns: Vec<Turn>,
}

impl Trace {
    /// One text reply, on whichever endpoint is called, as often as asked.
    pub fn repeating(text: &str) -> Self {
        Self {
            name: "repeating".into(),
            description: String::new(),
            repeat: true,
            turns: vec![Turn {
                protocol: None,
                input: None,
                request: None,
                reply: ScriptedReply {
                    text: text.to_owned(),
                    ..Default::default()
                },
                fault: None,
            }],
        }
    }

    /// Reads a trace file.
    pub fn load(path: &Path) -> Result<Self, ReplayError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| ReplayError::Parse {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }
}

/// One exchange of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The protocol expected; `None` answers whichever endpoint is called.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// The internal-form request that produced this turn (tests replay it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<crate::types::ChatRequest>,
    /// The exact request body expected (tests compare; the server does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(default)]
    pub reply: ScriptedReply,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// A reply in the internal form; the server renders it in each protocol.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScriptedReply {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    /// Fixed token counts; estimated when absent.
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
}

/// A scripted tool call. `arguments` is normally an object; a string is sent
/// raw (invalid JSON included) where the protocol carries strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// A fault to inject instead of (or into) the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds when given).
    Status {
        status: u16,
        #[serde(default)]
        retry_after_s: Option<u64>,
        #[serde(default)]
        body: Option<String>,
    },
    /// Wait this long before answering.
    Delay { ms: u64 },
    /// Send this many frames of the streamed reply, then cut the connection.
    DropAfter { frames: usize },
    /// Send one frame that is not valid JSON after the first frame.
    Malformed,
    /// 401 with a body that echoes the credentials received.
    EchoAuth,
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub path: String,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// Loading a trace failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the trace {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("the trace {path} is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("cannot bind the replay server on loopback: {0}")]
    Bind(#[from] std::io::Error),
}

struct Inner {
    trace: Trace,
    next: usize,
    requests: Vec<RecordedRequest>,
}

type Shared = Arc<Mutex<Inner>>;

/// The scripted provider server on loopback. Dropping it stops it.
pub struct ReplayServer {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl ReplayServer {
    /// Binds `127.0.0.1:0` and serves `trace` on the current tokio runtime.
    pub async fn start(trace: Trace) -> Result<Self, ReplayError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Inner {
            trace,
            next: 0,
            requests: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Loads a trace file and serves it.
    pub async fn from_file(path: &Path) -> Result<Self, ReplayError> {
        Self::start(Trace::load(path)?).await
    }

    /// `http://127.0.0.1:PORT`, the base URL for any provider config.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Replaces the script (and forgets nothing already recorded).
    pub fn set_trace(&self, trace: Trace) {
        let mut inner = self.lock();
        inner.trace = trace;
        inner.next = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let protocol = match path.as_str() {
        ollama::PATH => Protocol::Ollama,
        openai::PATH => Protocol::Openai,
        anthropic::PATH => Protocol::Anthropic,
        _ => return (StatusCode::NOT_FOUND, "unknown endpoint").into_response(),
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("request is not JSON: {e}")).into_response();
        }
    };
    let header_map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let turn = {
        let mut inner = shared.lock().unwrap_or_else(|p| p.into_inner());
        inner.requests.push(RecordedRequest {
            path: path.clone(),
            headers: header_map.clone(),
            body: request.clone(),
        });
        if inner.next >= inner.trace.turns.len() && inner.trace.repeat {
            inner.next = 0;
        }
        let turn = inner.trace.turns.get(inner.next).cloned();
        inner.next += 1;
        turn
    };
    let Some(turn) = turn else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "replay script exhausted").into_response();
    };
    if let Some(expected) = turn.protocol {
        let same_path = expected.path() == protocol.path();
        if !same_path {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "replay expected {expected:?} at {}, got {path}",
                    expected.path()
                ),
            )
                .into_response();
        }
    }
    let mut drop_after = None;
    let mut malformed = false;
    match &turn.fault {
        Some(Fault::Status {
            status,
            retry_after_s,
            body,
        }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = body.clone().unwrap_or_else(|| {
                json!({ "error": { "type": "scripted", "message": format!("scripted status {status}") } })
                    .to_string()
            });
            let mut response = (status, body).into_response();
            if let Some(after) = retry_after_s {
                response
                    .headers_mut()
                    .insert("retry-after", after.to_string().parse().expect("digits"));
            }
            return response;
        }
        Some(Fault::EchoAuth) => {
            let echoed: Vec<String> = ["authorization", "x-api-key"]
                .iter()
                .filter_map(|h| header_map.get(*h).map(|v| format!("{h}: {v}")))
                .collect();
            let body = json!({ "error": { "message": format!("invalid credentials: {}", echoed.join(", ")) } });
            return (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
        }
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Some(Fault::DropAfter { frames }) => drop_after = Some(*frames),
        Some(Fault::Malformed) => malformed = true,
        None => {}
    }
    let model = request["model"].as_str().unwrap_or("replay").to_owned();
    let usage = turn.reply.usage.unwrap_or_else(|| Usage {
        input_tokens: tokens::estimate_body(&request),
        output_tokens: tokens::estimate(&turn.reply.text)
            + turn
                .reply
                .tool_calls
                .iter()
                .map(|c| tokens::estimate(&c.name) + tokens::estimate(&c.arguments.to_string()))
                .sum::<u64>(),
    });
    let streamed = request["stream"]
        .as_bool()
        .unwrap_or(protocol == Protocol::Ollama);
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let reply = &turn.reply;
    let (content_type, mut frames) = match (protocol, streamed) {
        (Protocol::Ollama, true) => (
            "application/x-ndjson",
            render::ollama_stream(&model, reply, usage),
        ),
        (Protocol::Ollama, false) => (
            "application/json",
            vec![render::ollama_whole(&model, reply, usage)],
        ),
        (Protocol::Anthropic, true) => (
            "text/event-stream",
            render::anthropic_stream(&model, reply, usage),
        ),
        (Protocol::Anthropic, false) => (
            "application/json",
            vec![render::anthropic_whole(&model, reply, usage)],
        ),
        (_, true) => (
            "text/event-stream",
            render::openai_stream(&model, reply, usage, include_usage),
        ),
        (_, false) => (
            "application/json",
            vec![render::openai_whole(&model, reply, usage)],
        ),
    };
    if malformed {
        let bad = match protocol {
            Protocol::Ollama => "{\"message\": {\"content\": \"unterminated\n".to_owned(),
            _ if streamed => "data: {\"choices\": [{\"delta\": \n\n".to_owned(),
            _ => "{\"choices\": [".to_owned(),
        };
        if streamed {
            frames.insert(1.min(frames.len()), bad);
        } else {
            frames = vec![bad];
        }
    }
    let body = match drop_after {
        Some(n) => {
            frames.truncate(n);
            // Let the first frames reach the client, then cut the connection.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "scripted drop",
                ))
            });
            Body::from_stream(futures_util::stream::iter(frames.into_iter().map(Ok)).chain(cut))
        }
        None => Body::from_stream(futures_util::stream::iter(
            frames.into_iter().map(Ok::<_, std::io::Error>),
        )),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .body(body)
        .expect("static response parts")
}

/// Rendering the internal form in each protocol's wire format.
mod render {
    use super::*;

    const CREATED_AT: &str = "2025-01-01T00:00:00Z";

    fn pieces(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for ch in text.chars() {
            current.push(ch);
            if ch == ' ' {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    fn finish(reply: &ScriptedReply) -> FinishReason {
        reply
            .finish_reason
            .unwrap_or(if reply.tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            })
    }

    fn args_string(args: &Value) -> String {
        match args {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        }
    }

    fn sse(event: Option<&str>, data: &Value) -> String {
        match event {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        }
    }

    pub fn ollama_stream(model: &str, reply: &ScriptedReply, usage: Usage) -> Vec<String> {
        let mut out: Vec<String> = pieces(&reply.text)
            .into_iter()
            .map(|p| {
                json!({ "model": model, "created_at": CREATED_AT,
                        "message": { "role": "assistant", "content": p }, "done": false })
                .to_string()
                    + "\n"
            })
            .collect();
        if !reply.tool_calls.is_empty() {
            let calls: Vec<Value> = reply
                .tool_calls
                .iter()
                .map(|c| json!({ "function": { "name": c.name, "arguments": c.arguments } }))
                .collect();
            out.push(
                json!({ "model": model, "created_at": CREATED_AT,
                        "message": { "role": "assistant", "content": "", "tool_calls": calls },
                        "done": false })
                .to_string()
                    + "\n",
            );
        }
        out.push(ollama_done(model, reply, usage, json!("")) + "\n");
        out
    }

    fn ollama_done(model: &str, reply: &ScriptedReply, usage: Usage, content: Value) -> String {
        let reason = match finish(reply) {
            FinishReason::Length => "length",
            _ => "stop",
        };
        json!({ "model": model, "created_at": CREATED_AT,
                "message": { "role": "assistant", "content": content },
                "done": true, "done_reason": reason, "total_duration": 1_000_000,
                "prompt_eval_count": usage.input_tokens, "eval_count": usage.output_tokens })
        .to_string()
    }

    pub fn ollama_whole(model: &str, reply: &ScriptedReply, usage: Usage) -> String {
        let mut value: Value =
            serde_json::from_str(&ollama_done(model, reply, usage, json!(reply.text)))
                .expect("own JSON");
        if !reply.tool_calls.is_empty() {
            value["message"]["tool_calls"] = reply
                .tool_calls
                .iter()
                .map(|c| json!({ "function": { "name": c.name, "arguments": c.arguments } }))
                .collect();
        }
        value.to_string()
    }

    fn openai_finish(reply: &ScriptedReply) -> &'static str {
        match finish(reply) {
            FinishReason::Stop | FinishReason::Other => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::Refusal => "content_filter",
        }
    }

    pub fn openai_stream(
        model: &str,
        reply: &ScriptedReply,
        usage: Usage,
        include_usage: bool,
    ) -> Vec<String> {
        let chunk = |delta: Value, finish: Value| {
            sse(
                None,
                &json!({ "id": "chatcmpl-replay", "object": "chat.completion.chunk", "created": 1_735_689_600,
                         "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] }),
            )
        };
        let mut out = vec![chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
        )];
        for p in pieces(&reply.text) {
            out.push(chunk(json!({ "content": p }), Value::Null));
        }
        for (index, call) in reply.tool_calls.iter().enumerate() {
            out.push(chunk(
                json!({ "tool_calls": [{ "index": index, "id": call.id, "type": "function",
                                         "function": { "name": call.name, "arguments": "" } }] }),
                Value::Null,
            ));
            let args = args_string(&call.arguments);
            let mid = args
                .char_indices()
                .nth(args.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for part in [&args[..mid], &args[mid..]] {
                out.push(chunk(
                    json!({ "tool_calls": [{ "index": index, "function": { "arguments": part } }] }),
                    Value::Null,
                ));
            }
        }
        out.push(chunk(json!({}), json!(openai_finish(reply))));
        if include_usage {
            out.push(sse(
                None,
                &json!({ "id": "chatcmpl-replay", "object": "chat.completion.chunk", "created": 1_735_689_600,
                         "model": model, "choices": [],
                         "usage": { "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                                    "total_tokens": usage.total() } }),
            ));
        }
        out.push("data: [DONE]\n\n".to_owned());
        out
    }

    pub fn openai_whole(model: &str, reply: &ScriptedReply, usage: Usage) -> String {
        let mut message = json!({ "role": "assistant",
            "content": if reply.text.is_empty() { Value::Null } else { json!(reply.text) } });
        if !reply.tool_calls.is_empty() {
            message["tool_calls"] = reply
                .tool_calls
                .iter()
                .map(|c| json!({ "id": c.id, "type": "function",
                                 "function": { "name": c.name, "arguments": args_string(&c.arguments) } }))
                .collect();
        }
        json!({ "id": "chatcmpl-replay", "object": "chat.completion", "created": 1_735_689_600, "model": model,
                "choices": [{ "index": 0, "message": message, "finish_reason": openai_finish(reply) }],
                "usage": { "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                           "total_tokens": usage.total() } })
        .to_string()
    }

    fn anthropic_stop(reply: &ScriptedReply) -> &'static str {
        match finish(reply) {
            FinishReason::Stop | FinishReason::Other => "end_turn",
            FinishReason::Length => "max_tokens",
            FinishReason::ToolCalls => "tool_use",
            FinishReason::Refusal => "refusal",
        }
    }

    pub fn anthropic_stream(model: &str, reply: &ScriptedReply, usage: Usage) -> Vec<String> {
        let mut out = vec![
            sse(
                Some("message_start"),
                &json!({ "type": "message_start", "message": {
                    "id": "msg_replay", "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": { "input_tokens": usage.input_tokens, "output_tokens": 1 } } }),
            ),
            sse(Some("ping"), &json!({ "type": "ping" })),
        ];
        let mut index = 0;
        if !reply.text.is_empty() {
            out.push(sse(
                Some("content_block_start"),
                &json!({ "type": "content_block_start", "index": index,
                         "content_block": { "type": "text", "text": "" } }),
            ));
            for p in pieces(&reply.text) {
                out.push(sse(
                    Some("content_block_delta"),
                    &json!({ "type": "content_block_delta", "index": index,
                             "delta": { "type": "text_delta", "text": p } }),
                ));
            }
            out.push(sse(
                Some("content_block_stop"),
                &json!({ "type": "content_block_stop", "index": index }),
            ));
            index += 1;
        }
        for call in &reply.tool_calls {
            out.push(sse(
                Some("content_block_start"),
                &json!({ "type": "content_block_start", "index": index,
                         "content_block": { "type": "tool_use", "id": call.id, "name": call.name, "input": {} } }),
            ));
            let args = args_string(&call.arguments);
            let mid = args
                .char_indices()
                .nth(args.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for part in [&args[..mid], &args[mid..]] {
                out.push(sse(
                    Some("content_block_delta"),
                    &json!({ "type": "content_block_delta", "index": index,
                             "delta": { "type": "input_json_delta", "partial_json": part } }),
                ));
            }
            out.push(sse(
                Some("content_block_stop"),
                &json!({ "type": "content_block_stop", "index": index }),
            ));
            index += 1;
        }
        out.push(sse(
            Some("message_delta"),
            &json!({ "type": "message_delta",
                     "delta": { "stop_reason": anthropic_stop(reply), "stop_sequence": null },
                     "usage": { "output_tokens": usage.output_tokens } }),
        ));
        out.push(sse(
            Some("message_stop"),
            &json!({ "type": "message_stop" }),
        ));
        out
    }

    pub fn anthropic_whole(model: &str, reply: &ScriptedReply, usage: Usage) -> String {
        let mut content = Vec::new();
        if !reply.text.is_empty() {
            content.push(json!({ "type": "text", "text": reply.text }));
        }
        for c in &reply.tool_calls {
            content.push(
                json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments }),
            );
        }
        json!({ "id": "msg_replay", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": anthropic_stop(reply), "stop_sequence": null,
                "usage": { "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens } })
        .to_string()
    }
}
