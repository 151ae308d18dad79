//! OpenAI chat completions, `POST /v1/chat/completions`, as spoken by OpenAI
//! itself and by OpenAI-compatible servers (llama.cpp server, LM Studio,
//! vLLM).
//!
//! Streaming is SSE: each `data:` event is a `chat.completion.chunk` whose
//! `choices[0].delta` holds a piece of `content`, or pieces of
//! `tool_calls[]` keyed by `index` (the `id` and `function.name` in the
//! first piece, `function.arguments` as string fragments). `finish_reason`
//! arrives on the last choice chunk; with `stream_options.include_usage` a
//! final chunk with empty `choices` carries `usage.{prompt_tokens,
//! completion_tokens}`; the stream ends with `data: [DONE]`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::framing::Frame;
use super::wire::{Decoded, decimal, function_tools, malformed, parse_arguments, role_name};
use crate::types::{ChatDelta, ChatRequest, FinishReason, Role, ToolCall, Usage};

pub const PATH: &str = "/v1/chat/completions";

/// Which dialect: OpenAI's own API names the output cap
/// `max_completion_tokens`; compatible servers know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Compatible,
}

/// The request body for `request`.
pub fn body(request: &ChatRequest, dialect: Dialect) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| match m.role {
            Role::Tool => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.content,
            }),
            Role::Assistant if !m.tool_calls.is_empty() => json!({
                "role": "assistant",
                "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
                "tool_calls": m.tool_calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments.to_string() },
                })).collect::<Vec<_>>(),
            }),
            role => json!({ "role": role_name(role), "content": m.content }),
        })
        .collect();
    let cap = match dialect {
        Dialect::OpenAi => "max_completion_tokens",
        Dialect::Compatible => "max_tokens",
    };
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "temperature": decimal(request.temperature),
        "stream": request.stream,
    });
    body[cap] = json!(request.max_tokens);
    if request.stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    if !request.tools.is_empty() {
        body["tools"] = function_tools(&request.tools);
    }
    body
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Decodes SSE chunks, or a whole non-streamed completion.
#[derive(Debug, Default)]
pub struct Decoder {
    calls: BTreeMap<u64, PartialCall>,
    finish: Option<FinishReason>,
    done: bool,
}

impl Decoder {
    pub fn on_frame(&mut self, provider: &str, frame: Frame) -> Decoded {
        let data = match frame {
            Frame::Event { data, .. } => data,
            // A non-streamed reply: the whole body.
            Frame::Line(line) => return self.whole(provider, &line),
        };
        if data.trim() == "[DONE]" {
            return self.finish(provider);
        }
        let chunk: Value = serde_json::from_str(&data).map_err(|e| malformed(provider, e))?;
        check_error(provider, &chunk)?;
        let mut out = Vec::new();
        if let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(text) = delta.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                out.push(ChatDelta::Text(text.to_owned()));
            }
            if delta.get("refusal").is_some_and(|r| !r.is_null()) {
                self.finish = Some(FinishReason::Refusal);
            }
            for piece in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = piece.get("index").and_then(Value::as_u64).unwrap_or(0);
                let call = self.calls.entry(index).or_default();
                if let Some(id) = piece.get("id").and_then(Value::as_str) {
                    call.id = id.to_owned();
                }
                let function = piece.get("function").unwrap_or(&Value::Null);
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    call.name.push_str(name);
                }
                if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                    call.arguments.push_str(args);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str)
                && self.finish != Some(FinishReason::Refusal)
            {
                self.finish = Some(finish_reason(reason));
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            out.push(ChatDelta::Usage(usage_of(usage)));
        }
        Ok(out)
    }

    fn finish(&mut self, provider: &str) -> Decoded {
        let mut out = Vec::new();
        for (index, call) in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                return Err(malformed(provider, "tool call without a name"));
            }
            let arguments = parse_arguments(provider, &call.name, Some(json!(call.arguments)))?;
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id
            };
            out.push(ChatDelta::ToolCall(ToolCall {
                id,
                name: call.name,
                arguments,
            }));
        }
        let has_calls = !out.is_empty();
        let finish = match self.finish {
            Some(reason) => reason,
            None if has_calls => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        out.push(ChatDelta::Done(finish));
        self.done = true;
        Ok(out)
    }

    fn whole(&mut self, provider: &str, body: &str) -> Decoded {
        let value: Value = serde_json::from_str(body).map_err(|e| malformed(provider, e))?;
        check_error(provider, &value)?;
        let choice = value
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .ok_or_else(|| malformed(provider, "completion without choices"))?;
        let message = choice.get("message").unwrap_or(&Value::Null);
        let mut out = Vec::new();
        if let Some(text) = message.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            out.push(ChatDelta::Text(text.to_owned()));
        }
        for (index, call) in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let function = call.get("function").unwrap_or(&Value::Null);
            let entry = self.calls.entry(index as u64).or_default();
            entry.id = call
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            entry.name = function
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            entry.arguments = function
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
        }
        self.finish = if message.get("refusal").is_some_and(|r| !r.is_null()) {
            Some(FinishReason::Refusal)
        } else {
            choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(finish_reason)
        };
        if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
            out.push(ChatDelta::Usage(usage_of(usage)));
        }
        out.extend(self.finish(provider)?);
        Ok(out)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn check_error(provider: &str, value: &Value) -> Result<(), crate::ModelError> {
    match value.get("error") {
        Some(error) if !error.is_null() => Err(crate::ModelError::Provider {
            provider: provider.to_owned(),
            detail: error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string()),
        }),
        _ => Ok(()),
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::Refusal,
        _ => FinishReason::Other,
    }
}

fn usage_of(usage: &Value) -> Usage {
    Usage {
        input_tokens: usage
            .get("prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        output_tokens: usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    }
}
