//! A documented token estimate, for when no tokenizer is at hand.
//!
//! BPE tokenizers of current models average about four characters of
//! English per token; OpenAI's guidance adds about four tokens of framing
//! per chat message. [`estimate`] uses `ceil(chars / 4)` and
//! [`estimate_messages`] adds 4 per message. The replay server reports
//! these estimates as `usage` when a trace does not fix the numbers.

use crate::types::{ChatRequest, Message};

/// Per-message framing tokens.
pub const PER_MESSAGE: u64 = 4;

/// Estimated tokens of `text`.
pub fn estimate(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Estimated prompt tokens of `messages`.
pub fn estimate_messages(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| {
            let calls: u64 = m
                .tool_calls
                .iter()
                .map(|c| estimate(&c.name) + estimate(&c.arguments.to_string()))
                .sum();
            PER_MESSAGE + estimate(&m.content) + calls
        })
        .sum()
}

/// Estimated prompt tokens of a whole request, tool schemas included.
pub fn estimate_request(request: &ChatRequest) -> u64 {
    let tools: u64 = request
        .tools
        .iter()
        .map(|t| estimate(&t.name) + estimate(&t.description) + estimate(&t.parameters.to_string()))
        .sum();
    estimate_messages(&request.messages) + tools
}

/// Estimated prompt tokens of a provider request body in any of the
/// protocols: every string value except short enum-like fields (`role`,
/// `type`, `model`), plus the per-message framing.
pub fn estimate_body(body: &serde_json::Value) -> u64 {
    fn walk(value: &serde_json::Value, key: &str, total: &mut u64) {
        match value {
            serde_json::Value::String(s)
                if !matches!(
                    key,
                    "role" | "type" | "model" | "id" | "tool_call_id" | "tool_use_id"
                ) =>
            {
                *total += estimate(s);
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, key, total)),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    walk(v, k, total);
                }
            }
            _ => {}
        }
    }
    let mut total = 0;
    for field in ["system", "messages", "tools"] {
        if let Some(value) = body.get(field) {
            walk(value, field, &mut total);
        }
    }
    let messages = body
        .get("messages")
        .and_then(|m| m.as_array())
        .map_or(0, |m| m.len() as u64);
    total + PER_MESSAGE * messages
}

#[cfg(test)]
mod tests {
    #[test]
    fn four_characters_make_a_token() {
        assert_eq!(super::estimate(""), 0);
        assert_eq!(super::estimate("abcd"), 1);
        assert_eq!(super::estimate("abcde"), 2);
    }

    #[test]
    fn body_estimate_counts_contents_not_roles() {
        let body = serde_json::json!({
            "model": "m",
            "messages": [{ "role": "user", "content": "abcdefgh" }],
        });
        assert_eq!(super::estimate_body(&body), 2 + super::PER_MESSAGE);
    }
}
