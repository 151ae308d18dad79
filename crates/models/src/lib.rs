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
