//! The `[models]` configuration section.
//!
//! ```toml
//! [models]
//! allow_private_cloud = false
//!
//! [[models.providers]]
//! name = "ollama"
//! protocol = "ollama"                 # ollama | openai_compatible | openai | anthropic
//! base_url = "http://127.0.0.1:11434"
//!
//! [[models.providers]]
//! name = "openai"
//! protocol = "openai"
//! base_url = "https://api.openai.com"
//! api_key_env = "OPENAI_API_KEY"      # or api_key_keyring = "openai" (OS keyring entry), or
//!                                     # api_key_file = "/home/me/.config/opticlaw/openai.key" (mode 0600)
//!
//! [[models.tiers]]
//! tier = "local_small"                # local_small | local_medium | cloud_primary | cloud_secondary
//! provider = "ollama"
//! model = "qwen2.5:1.5b"
//! capability = 0.35                   # 0..1: the hardest task complexity it handles
//! typical_latency_ms = 700
//! max_tokens = 512
//! native_tools = true
//!
//! [models.prices."gpt-4o"]
//! input_per_mtok = 2.5                # US dollars per million tokens
//! output_per_mtok = 10.0
//!
//! [models.budget]
//! per_user_daily_usd = 1.0
//! daily_usd = 5.0
//!
//! [models.gate]
//! default_task_value_usd = 0.05
//! latency_usd_per_s = 0.001
//! slo_miss_usd = 0.05
//! min_confidence = 0.4
//!
//! [models.breaker]
//! failure_threshold = 3
//! cooldown_ms = 30000
//!
//! [models.cache]
//! capacity = 512
//! semantic = false                    # also reuse replies to requests that mean the same
//! semantic_threshold = 0.92           # cosine similarity of the last user message, 0..1
//! # embedding_model_dir = ".cache/models/all-MiniLM-L6-v2"  # default: found as opticlaw-memory does
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::providers::ProviderConfig;

/// Everything the router needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    pub providers: Vec<ProviderConfig>,
    /// Tiers in any order; the fallback order is always
    /// `local_small -> local_medium -> cloud_primary -> cloud_secondary`.
    pub tiers: Vec<TierConfig>,
    /// Price per model name. A model without a price costs nothing (local).
    pub prices: BTreeMap<String, Price>,
    pub budget: BudgetConfig,
    pub gate: GateConfig,
    pub breaker: BreakerConfig,
    pub cache: CacheConfig,
    /// Let tasks marked private go to cloud models. Off by default.
    pub allow_private_cloud: bool,
}

/// The four rungs of the fallback ladder, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    LocalSmall,
    LocalMedium,
    CloudPrimary,
    CloudSecondary,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalSmall => "local_small",
            Self::LocalMedium => "local_medium",
            Self::CloudPrimary => "cloud_primary",
            Self::CloudSecondary => "cloud_secondary",
        }
    }
}

/// One rung: which model of which provider, and what it is good for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub tier: Tier,
    pub provider: String,
    pub model: String,
    /// The hardest task complexity (0..1) this model is trusted with before
    /// any history; history per domain moves it (see [`crate::router`]).
    pub capability: f32,
    /// Typical time to a complete reply, for the latency SLO and penalty.
    #[serde(default = "default_latency")]
    pub typical_latency_ms: u64,
    /// Output cap sent as `max_tokens`.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Whether the model takes tools natively (else tools are prompted).
    #[serde(default = "yes")]
    pub native_tools: bool,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
}

fn default_latency() -> u64 {
    2_000
}
fn default_max_tokens() -> u32 {
    1_024
}
fn yes() -> bool {
    true
}
fn default_temperature() -> f32 {
    0.7
}

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

/// Spending caps in US dollars per UTC day; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub per_user_daily_usd: Option<f64>,
    pub daily_usd: Option<f64>,
}

/// Value-gate tuning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// What a good answer is worth when the task does not say.
    pub default_task_value_usd: f64,
    /// What a second of waiting costs the user.
    pub latency_usd_per_s: f64,
    /// Extra penalty when the expected latency misses the task's SLO.
    pub slo_miss_usd: f64,
    /// Replies below this confidence fall back to the next rung.
    pub min_confidence: f32,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            default_task_value_usd: 0.05,
            latency_usd_per_s: 0.001,
            slo_miss_usd: 0.05,
            min_confidence: 0.4,
        }
    }
}

/// Result cache size and its semantic layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub capacity: usize,
    /// Turn on the semantic layer (the daemon then loads the embedding
    /// model at start, and refuses to start without one).
    pub semantic: bool,
    /// Least cosine similarity between two last user messages for one's
    /// cached reply to answer the other.
    pub semantic_threshold: f32,
    /// Directory of all-MiniLM-L6-v2 (as written by
    /// `scripts/fetch-embedding-model`); `None` looks where opticlaw-memory
    /// does (`$OPTICLAW_EMBEDDING_MODEL_DIR`, then `.cache/models/...`).
    pub embedding_model_dir: Option<std::path::PathBuf>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 512,
            semantic: false,
            semantic_threshold: 0.92,
            embedding_model_dir: None,
        }
    }
}
