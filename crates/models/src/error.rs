//! Errors of this crate. Messages name the provider and what went wrong,
//! never a key: provider bodies quoted here are scrubbed of secrets first.

use std::time::Duration;

/// Anything that can go wrong between a task and a model's reply.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{provider}: no reply within {after_ms} ms")]
    Timeout { provider: String, after_ms: u64 },
    #[error("{provider}: rate limited (HTTP 429){}", retry_hint(.retry_after))]
    RateLimited {
        provider: String,
        retry_after: Option<Duration>,
    },
    #[error("{provider}: HTTP {status}: {body}")]
    Http {
        provider: String,
        status: u16,
        /// The start of the body, scrubbed of secrets.
        body: String,
    },
    #[error("{provider}: cannot reach the server: {detail}")]
    Transport { provider: String, detail: String },
    #[error("{provider}: the stream ended before the reply was complete")]
    StreamDropped { provider: String },
    #[error("{provider}: malformed reply: {detail}")]
    Malformed { provider: String, detail: String },
    #[error("{provider}: tool call `{tool}` has invalid arguments: {detail}")]
    InvalidToolArguments {
        provider: String,
        tool: String,
        detail: String,
    },
    #[error("{provider}: the model refused to answer")]
    Refused { provider: String },
    #[error("{provider}: reply confidence {confidence:.2} is below the floor {floor:.2}")]
    LowConfidence {
        provider: String,
        confidence: f32,
        floor: f32,
    },
    #[error("{provider}: provider error: {detail}")]
    Provider { provider: String, detail: String },
    #[error("{0}")]
    Budget(#[from] BudgetExceeded),
    #[error("no model may take this task: {0}")]
    NoRoute(String),
    #[error("every model in the fallback chain failed; last error: {last}")]
    Exhausted {
        /// How many models were tried.
        tried: usize,
        last: Box<ModelError>,
    },
    #[error("unknown provider `{0}` in the model configuration")]
    UnknownProvider(String),
    #[error("secret unavailable: {0}")]
    Secret(#[from] SecretError),
    #[error("invalid model configuration: {0}")]
    Config(String),
}

impl ModelError {
    /// The provider this error came from, when there is one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Self::Timeout { provider, .. }
            | Self::RateLimited { provider, .. }
            | Self::Http { provider, .. }
            | Self::Transport { provider, .. }
            | Self::StreamDropped { provider }
            | Self::Malformed { provider, .. }
            | Self::InvalidToolArguments { provider, .. }
            | Self::Refused { provider }
            | Self::LowConfidence { provider, .. }
            | Self::Provider { provider, .. } => Some(provider),
            _ => None,
        }
    }

    /// Whether another model could do better: provider failures fall back,
    /// budget and routing refusals do not.
    pub fn falls_back(&self) -> bool {
        self.provider().is_some()
    }

    /// A short machine-readable kind, recorded as the outcome of a call.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Http { .. } => "http_error",
            Self::Transport { .. } => "transport",
            Self::StreamDropped { .. } => "stream_dropped",
            Self::Malformed { .. } => "malformed",
            Self::InvalidToolArguments { .. } => "invalid_tool_arguments",
            Self::Refused { .. } => "refused",
            Self::LowConfidence { .. } => "low_confidence",
            Self::Provider { .. } => "provider_error",
            Self::Budget(_) => "budget",
            Self::NoRoute(_) => "no_route",
            Self::Exhausted { .. } => "exhausted",
            Self::UnknownProvider(_) => "unknown_provider",
            Self::Secret(_) => "secret",
            Self::Config(_) => "config",
        }
    }
}

fn retry_hint(after: &Option<Duration>) -> String {
    match after {
        Some(after) => format!("; retry after {} s", after.as_secs()),
        None => String::new(),
    }
}

/// A budget cap was hit. The message says which cap, how much was spent and
/// what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{scope} budget reached: spent ${spent_usd:.4} of ${cap_usd:.4} on {day} (UTC); this call would cost about ${needed_usd:.4}. Raise `models.budget.{setting}` or wait until tomorrow (UTC)"
)]
pub struct BudgetExceeded {
    /// `per-user daily (alice)` or `daily`.
    pub scope: String,
    pub setting: &'static str,
    pub day: String,
    pub spent_usd: f64,
    pub cap_usd: f64,
    pub needed_usd: f64,
}

/// A key could not be loaded. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read the key file {path}: {detail}")]
    File { path: String, detail: String },
    #[error("the key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: String, mode: u32 },
    #[error("{0} is empty")]
    Empty(String),
    #[error(
        "the OS keyring has no key named {0} (store one with `opticlaw models add --api-key-keyring {0} --key-from-stdin`)"
    )]
    MissingKeyring(String),
    #[error("the OS keyring entry {name} cannot be used: {detail}")]
    Keyring { name: String, detail: String },
}
