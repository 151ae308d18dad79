//! Ollama's native chat API: `POST /api/chat`, NDJSON streaming.
//!
//! Each line is a JSON object with `message.content` (a piece of text) and,
//! when the model calls tools, `message.tool_calls[].function.{name,arguments}`
//! with `arguments` already an object. The last line has `done: true`,
//! `done_reason`, and the token counts `prompt_eval_count` (input) and
//! `eval_count` (output). An error arrives as `{"error": "..."}`.

use serde_json::{Value, json};

use super::framing::Frame;
use super::wire::{Decoded, decimal, function_tools, malformed, parse_arguments, role_name};
use crate::types::{ChatDelta, ChatRequest, FinishReason, Role, ToolCall, Usage};

pub const PATH: &str = "/api/chat";

/// The request body for `request`.
pub fn body(request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let mut out = json!({ "role": role_name(m.role), "content": m.content });
            if !m.tool_calls.is_empty() {
                out["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({ "function": { "name": c.name, "arguments": c.arguments } }))
                    .collect();
            }
            if let Some(name) = &m.tool_name
                && m.role == Role::Tool
            {
                out["tool_name"] = json!(name);
            }
            out
        })
        .collect();
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": request.stream,
        "options": { "temperature": decimal(request.temperature), "num_predict": request.max_tokens },
    });
    if !request.tools.is_empty() {
        body["tools"] = function_tools(&request.tools);
    }
    body
}

/// Decodes NDJSON lines (a non-streamed reply is one such line).
#[derive(Debug, Default)]
pub struct Decoder {
    calls: usize,
    done: bool,
}

impl Decoder {
    pub fn on_frame(&mut self, provider: &str, frame: Frame) -> Decoded {
        let Frame::Line(line) = frame else {
            return Ok(Vec::new());
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| malformed(provider, e))?;
        if let Some(error) = value.get("error") {
            let detail = error
                .as_str()
                .map(str::to_owned)
                .unwrap_or(error.to_string());
            return Err(crate::ModelError::Provider {
                provider: provider.to_owned(),
                detail,
            });
        }
        let mut out = Vec::new();
        let message = value.get("message");
        if let Some(text) = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            && !text.is_empty()
        {
            out.push(ChatDelta::Text(text.to_owned()));
        }
        if let Some(calls) = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
        {
            for call in calls {
                let function = call.get("function").unwrap_or(&Value::Null);
                let name = function
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| malformed(provider, "tool call without a name"))?
                    .to_owned();
                let arguments =
                    parse_arguments(provider, &name, function.get("arguments").cloned())?;
                self.calls += 1;
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{}", self.calls));
                out.push(ChatDelta::ToolCall(ToolCall {
                    id,
                    name,
                    arguments,
                }));
            }
        }
        match value.get("done").and_then(Value::as_bool) {
            Some(true) => {
                let usage = Usage {
                    input_tokens: value
                        .get("prompt_eval_count")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    output_tokens: value.get("eval_count").and_then(Value::as_u64).unwrap_or(0),
                };
                out.push(ChatDelta::Usage(usage));
                let finish = match value.get("done_reason").and_then(Value::as_str) {
                    Some("length") => FinishReason::Length,
                    _ if self.calls > 0 => FinishReason::ToolCalls,
                    Some("stop") | None => FinishReason::Stop,
                    Some(_) => FinishReason::Other,
                };
                out.push(ChatDelta::Done(finish));
                self.done = true;
            }
            Some(false) => {}
            None => return Err(malformed(provider, "line without `done`")),
        }
        Ok(out)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}
