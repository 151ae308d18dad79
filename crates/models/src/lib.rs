//! OptiClaw's model router and provider protocols.

pub mod error;
pub mod providers;
pub mod secret;
pub mod types;

pub use error::{BudgetExceeded, ModelError, SecretError};
pub use providers::{HttpProvider, Locality, Protocol, Provider, ProviderConfig};
pub use secret::{Secret, SecretSource};
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
mod task;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use cache::{ContextSource, ResultCache};
pub use config::{BudgetConfig, CacheConfig, GateConfig, ModelsConfig, Price, Tier, TierConfig};
pub use execute::{Completed, Outcome, Providers, UsageRecord, confidence, shape_request};
pub use gate::GateDecision;
pub use router::{ModelRouter, Route, RouterSnapshot, Selection, SuccessStat};
pub use task::Task;
pub mod replay;
pub mod tokens;
