//! Helpers shared by the protocol decoders.

use serde_json::{Value, json};

use crate::ModelError;
use crate::types::{ChatDelta, Role, ToolSpec};

/// What a decoder makes of one frame.
pub type Decoded = Result<Vec<ChatDelta>, ModelError>;

pub fn malformed(provider: &str, detail: impl std::fmt::Display) -> ModelError {
    ModelError::Malformed {
        provider: provider.to_owned(),
        detail: detail.to_string(),
    }
}

/// A tool call's arguments as a JSON object. Protocols send either an object
/// or a string holding one; anything else is an invalid tool call.
pub fn parse_arguments(
    provider: &str,
    tool: &str,
    raw: Option<Value>,
) -> Result<Value, ModelError> {
    let invalid = |detail: String| ModelError::InvalidToolArguments {
        provider: provider.to_owned(),
        tool: tool.to_owned(),
        detail,
    };
    let value = match raw {
        None | Some(Value::Null) => return Ok(Value::Object(Default::default())),
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Ok(Value::Object(Default::default()));
        }
        Some(Value::String(text)) => {
            serde_json::from_str::<Value>(&text).map_err(|e| invalid(format!("not JSON ({e})")))?
        }
        Some(other) => other,
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(invalid(format!("expected an object, got `{value}`")))
    }
}

/// An `f32` setting as the decimal a person wrote (`0.2`, not
/// `0.20000000298023224`).
pub fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// The role as OpenAI-style chat APIs (OpenAI, Ollama) name it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// Tools in the OpenAI `{"type":"function","function":{...}}` shape, which
/// Ollama's `/api/chat` accepts too.
pub fn function_tools(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|t| {
            json!({ "type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters } })
        })
        .collect()
}
