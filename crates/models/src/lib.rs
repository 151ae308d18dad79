//! OptiClaw's model router and provider protocols.
//!
//! Local first, cloud only when needed, every call gated, accounted and
//! replayable. [`ModelRouter::select`] picks `{provider, model, max_tokens,
//! temperature, tool_mode}` for a [`Task`]; [`ModelRouter::complete`] runs
//! the fallback chain `local_small -> local_medium -> cloud_primary ->
//! cloud_secondary` over [`Providers`] and returns an [`Outcome`] that
//! [`accounting::persist_outcome`] writes in one transaction. Provider
//! protocols live in [`providers`]; [`replay::ReplayServer`] speaks them all
//! on loopback from golden traces.
//!
//! ```
//! use opticlaw_models::*;
//! let config = ModelsConfig {
//!     providers: vec![ProviderConfig {
//!         name: "ollama".into(),
//!         protocol: Protocol::Ollama,
//!         base_url: "http://127.0.0.1:11434".into(),
//!         api_key_env: None,
//!         api_key_keyring: None,
//!         api_key_file: None,
//!         locality: None,
//!         timeout_ms: 30_000,
//!     }],
//!     tiers: vec![TierConfig {
//!         tier: Tier::LocalSmall,
//!         provider: "ollama".into(),
//!         model: "qwen2.5:1.5b".into(),
//!         capability: 0.4,
//!         typical_latency_ms: 700,
//!         max_tokens: 512,
//!         native_tools: true,
//!         temperature: 0.7,
//!     }],
//!     ..Default::default()
//! };
//! let router = ModelRouter::new(config).unwrap();
//! let selection = router.select(&Task::new("t1", "alice", "chat", 0.2)).unwrap();
//! assert_eq!(selection.model, "qwen2.5:1.5b");
//! assert_eq!(selection.tool_mode, ToolMode::None);
//! ```

pub mod error;
pub mod providers;
pub mod secret;
pub mod types;

pub use error::{BudgetExceeded, ModelError, SecretError};
pub use providers::{HttpProvider, Locality, Protocol, Provider, ProviderConfig};
pub use secret::{KEYRING_SERVICE, Secret, SecretSource};
pub use types::{
    ChatDelta, ChatRequest, ChatResponse, FinishReason, Message, Role, ToolCall, ToolMode,
    ToolSpec, Usage,
};

pub mod accounting;
pub mod bench;
pub mod breaker;
pub mod cache;
pub mod config;
mod execute;
pub mod gate;
pub mod router;
pub mod semantic;
mod task;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use cache::{ContextSource, ResultCache};
pub use config::{BudgetConfig, CacheConfig, GateConfig, ModelsConfig, Price, Tier, TierConfig};
pub use execute::{Completed, Outcome, Providers, UsageRecord, confidence, shape_request};
pub use gate::GateDecision;
pub use router::{ModelRouter, Route, RouterSnapshot, Selection, SuccessStat};
pub use semantic::RequestEmbedder;
pub use task::{DEFAULT_DOMAIN, PRIVATE_DOMAINS, Task, TriageSignals};
pub mod replay;
pub mod tokens;
