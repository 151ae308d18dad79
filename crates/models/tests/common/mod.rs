//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use opticlaw_models::replay::{Fault, ScriptedCall, ScriptedReply, Trace, Turn};
use opticlaw_models::{
    ChatRequest, Message, ModelsConfig, Price, Protocol, ProviderConfig, Tier, TierConfig, ToolSpec,
};

pub fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

pub fn provider(name: &str, protocol: Protocol, base_url: &str, timeout_ms: u64) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        protocol,
        base_url: base_url.into(),
        api_key_env: None,
        api_key_keyring: None,
        api_key_file: None,
        locality: None,
        timeout_ms,
    }
}

pub fn tier(tier: Tier, provider: &str, model: &str, capability: f32) -> TierConfig {
    TierConfig {
        tier,
        provider: provider.into(),
        model: model.into(),
        capability,
        typical_latency_ms: 500,
        max_tokens: 256,
        native_tools: true,
        temperature: 0.7,
    }
}

/// Four rungs over one replay server: Ollama locally (small and medium), an
/// OpenAI-compatible "cloud" primary, and Anthropic secondary.
pub fn ladder(base_url: &str, timeout_ms: u64) -> ModelsConfig {
    let mut config = ModelsConfig {
        providers: vec![
            provider("ollama", Protocol::Ollama, base_url, timeout_ms),
            provider("openai", Protocol::Openai, base_url, timeout_ms),
            provider("anthropic", Protocol::Anthropic, base_url, timeout_ms),
        ],
        tiers: vec![
            tier(Tier::LocalSmall, "ollama", "qwen2.5:1.5b", 0.35),
            tier(Tier::LocalMedium, "ollama", "qwen2.5:7b", 0.6),
            tier(Tier::CloudPrimary, "openai", "gpt-4o", 0.9),
            tier(Tier::CloudSecondary, "anthropic", "claude-sonnet-4-5", 0.9),
        ],
        ..Default::default()
    };
    config.prices.insert(
        "gpt-4o".into(),
        Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
        },
    );
    config.prices.insert(
        "claude-sonnet-4-5".into(),
        Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        },
    );
    config
}

pub fn text_turn(text: &str) -> Turn {
    Turn {
        protocol: None,
        input: None,
        request: None,
        reply: ScriptedReply {
            text: text.into(),
            ..Default::default()
        },
        fault: None,
    }
}

pub fn fault_turn(fault: Fault) -> Turn {
    Turn {
        fault: Some(fault),
        ..text_turn("unused")
    }
}

pub fn tool_turn(name: &str, arguments: serde_json::Value) -> Turn {
    Turn {
        reply: ScriptedReply {
            tool_calls: vec![ScriptedCall {
                id: "call_1".into(),
                name: name.into(),
                arguments,
            }],
            ..Default::default()
        },
        ..text_turn("")
    }
}

pub fn trace(turns: Vec<Turn>) -> Trace {
    Trace {
        name: "test".into(),
        description: String::new(),
        repeat: false,
        turns,
    }
}

pub fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Current weather for a city.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"]
        }),
    }
}

pub fn request(text: &str) -> ChatRequest {
    ChatRequest {
        model: String::new(),
        messages: vec![Message::system("You are OptiClaw."), Message::user(text)],
        tools: vec![],
        max_tokens: 0,
        temperature: 0.0,
        stream: true,
    }
}

/// A clock tests move by hand.
#[derive(Clone)]
pub struct ManualClock(pub Arc<AtomicI64>);

impl ManualClock {
    pub fn new(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn clock(&self) -> opticlaw_models::router::Clock {
        let inner = self.0.clone();
        Arc::new(move || inner.load(Ordering::SeqCst))
    }
}

/// 2025-03-01T12:00:00Z.
pub const NOON: i64 = 1_740_830_400_000;
