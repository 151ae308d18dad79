//! Anthropic's Messages API, `POST /v1/messages`, SSE streaming.
//!
//! The stream is `message_start` (with `message.usage.input_tokens`), then
//! per content block a `content_block_start` (`text`, or `tool_use` with
//! `id` and `name`), `content_block_delta`s (`text_delta.text` or
//! `input_json_delta.partial_json`) and a `content_block_stop`; then
//! `message_delta` (`delta.stop_reason`, cumulative `usage.output_tokens`)
//! and `message_stop`. `ping` events may come at any time; an `error` event
//! reports a failure mid-stream. System prompts go in the top-level `system`
//! field; tool results are `tool_result` blocks in a user message.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::framing::Frame;
use super::wire::{Decoded, decimal, malformed, parse_arguments};
use crate::types::{ChatDelta, ChatRequest, FinishReason, Role, ToolCall, Usage};

pub const PATH: &str = "/v1/messages";
/// The API version header value this module speaks.
pub const VERSION: &str = "2023-06-01";

/// The request body for `request`.
pub fn body(request: &ChatRequest) -> Value {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    // Anthropic wants user and assistant turns to alternate: consecutive
    // messages of one role (several tool results) become one message.
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = match m.role {
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                })],
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({ "type": "text", "text": m.content }));
                }
                for c in &m.tool_calls {
                    blocks.push(json!({
                        "type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments }));
                }
                ("assistant", blocks)
            }
            _ => ("user", vec![json!({ "type": "text", "text": m.content })]),
        };
        match messages.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, blocks)| {
            // A lone text block is sent as a plain string, as people write it.
            let content = match blocks.as_slice() {
                [one] if one["type"] == "text" => one["text"].clone(),
                _ => Value::Array(blocks),
            };
            json!({ "role": role, "content": content })
        })
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
        "temperature": decimal(request.temperature),
        "stream": request.stream,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
    }
    body
}

#[derive(Debug)]
struct PartialTool {
    id: String,
    name: String,
    json: String,
}

/// Decodes SSE events, or a whole non-streamed message.
#[derive(Debug, Default)]
pub struct Decoder {
    usage: Usage,
    tools: BTreeMap<u64, PartialTool>,
    finish: Option<FinishReason>,
    done: bool,
}

impl Decoder {
    pub fn on_frame(&mut self, provider: &str, frame: Frame) -> Decoded {
        let data = match frame {
            Frame::Event { data, .. } => data,
            Frame::Line(line) => return self.whole(provider, &line),
        };
        let event: Value = serde_json::from_str(&data).map_err(|e| malformed(provider, e))?;
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        let mut out = Vec::new();
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let usage = &event["message"]["usage"];
                self.usage.input_tokens = usage["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output_tokens = usage["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let block = &event["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        self.tools.insert(
                            index,
                            PartialTool {
                                id: block["id"].as_str().unwrap_or("").to_owned(),
                                name: block["name"].as_str().unwrap_or("").to_owned(),
                                json: String::new(),
                            },
                        );
                    }
                    Some("text") => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(ChatDelta::Text(text.to_owned()));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        out.push(ChatDelta::Text(
                            delta["text"].as_str().unwrap_or("").to_owned(),
                        ));
                    }
                    Some("input_json_delta") => {
                        let tool = self.tools.get_mut(&index).ok_or_else(|| {
                            malformed(provider, "input_json_delta for a block that is no tool_use")
                        })?;
                        tool.json
                            .push_str(delta["partial_json"].as_str().unwrap_or(""));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(tool) = self.tools.remove(&index) {
                    out.push(ChatDelta::ToolCall(tool_call(provider, tool)?));
                }
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.finish = Some(stop_reason(reason));
                }
                if let Some(output) = event["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = output;
                }
                if let Some(input) = event["usage"]["input_tokens"].as_u64() {
                    self.usage.input_tokens = input;
                }
            }
            "message_stop" => {
                out.push(ChatDelta::Usage(self.usage));
                out.push(ChatDelta::Done(self.finish.unwrap_or(FinishReason::Stop)));
                self.done = true;
            }
            "error" => {
                let error = &event["error"];
                return Err(crate::ModelError::Provider {
                    provider: provider.to_owned(),
                    detail: format!(
                        "{}: {}",
                        error["type"].as_str().unwrap_or("error"),
                        error["message"].as_str().unwrap_or("")
                    ),
                });
            }
            // `ping` and event types added later are ignored, as the API asks.
            _ => {}
        }
        Ok(out)
    }

    fn whole(&mut self, provider: &str, body: &str) -> Decoded {
        let value: Value = serde_json::from_str(body).map_err(|e| malformed(provider, e))?;
        if value["type"] == "error" {
            return self.on_frame(
                provider,
                Frame::Event {
                    event: "error".into(),
                    data: body.to_owned(),
                },
            );
        }
        let mut out = Vec::new();
        for block in value["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") => out.push(ChatDelta::Text(
                    block["text"].as_str().unwrap_or("").to_owned(),
                )),
                Some("tool_use") => {
                    let name = block["name"].as_str().unwrap_or("").to_owned();
                    let arguments = parse_arguments(provider, &name, block.get("input").cloned())?;
                    out.push(ChatDelta::ToolCall(ToolCall {
                        id: block["id"].as_str().unwrap_or("").to_owned(),
                        name,
                        arguments,
                    }));
                }
                _ => {}
            }
        }
        out.push(ChatDelta::Usage(Usage {
            input_tokens: value["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: value["usage"]["output_tokens"].as_u64().unwrap_or(0),
        }));
        let finish = value["stop_reason"]
            .as_str()
            .map(stop_reason)
            .unwrap_or(FinishReason::Stop);
        out.push(ChatDelta::Done(finish));
        self.done = true;
        Ok(out)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn tool_call(provider: &str, tool: PartialTool) -> Result<ToolCall, crate::ModelError> {
    if tool.name.is_empty() {
        return Err(malformed(provider, "tool_use block without a name"));
    }
    let arguments = parse_arguments(provider, &tool.name, Some(json!(tool.json)))?;
    Ok(ToolCall {
        id: tool.id,
        name: tool.name,
        arguments,
    })
}

fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::Refusal,
        _ => FinishReason::Other,
    }
}
