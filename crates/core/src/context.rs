use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a request may do and spend, attached by the policy gate (blueprint 4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionContext {
    pub request_id: Uuid,
    pub trust_tier: TrustTier,
    pub cost_budget: CostBudget,
    /// BCP 47 tag, e.g. `en-GB`.
    pub locale: String,
    /// Free-form constraints from policy (`no_network`, `private_data`, ...).
    #[serde(default)]
    pub constraints: Vec<String>,
}

impl ExecutionContext {
    /// The context of a request that may only reason and read (tier 0), with
    /// no money to spend: what every event gets until policy grants more.
    pub fn read_only(locale: &str) -> Self {
        Self {
            request_id: Uuid::now_v7(),
            trust_tier: TrustTier::ReadOnly,
            cost_budget: CostBudget::default(),
            locale: locale.to_owned(),
            constraints: Vec::new(),
        }
    }
}

/// Blueprint section 9: how much authority an action needs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TrustTier {
    /// Tier 0: read-only reasoning.
    ReadOnly,
    /// Tier 1: low-risk actions (drafts, local reads).
    LowRisk,
    /// Tier 2: side effects; the user approves each one.
    SideEffect,
    /// Tier 3: high-risk, financial or admin; approval plus a second factor.
    HighRisk,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostBudget {
    /// Money the request may spend on model calls, in US dollars.
    pub max_usd: f64,
    pub max_tokens: u64,
    /// Wall-clock limit in milliseconds (0: the router's default).
    pub max_ms: u64,
}
