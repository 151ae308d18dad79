//! What the router is asked to route.

use serde::{Deserialize, Serialize};

use crate::cache::ContextSource;

/// A unit of model work, described by what routing needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub user_id: String,
    /// `chat`, `code`, `plan`, `email`...: success is tracked per model and domain.
    pub domain: String,
    /// 0 (trivial) to 1 (frontier-hard), from triage or the planner.
    pub complexity: f32,
    /// Wanted time to a complete reply; 0 is none.
    pub latency_slo_ms: u64,
    /// The prompt holds private data: it stays on local models unless the
    /// user allowed cloud models for private data (here or in config).
    pub private: bool,
    pub allow_private_cloud: bool,
    /// Policy forbids the network: local models only.
    pub no_network: bool,
    pub needs_tools: bool,
    /// Estimated prompt size, for the cost estimate.
    pub est_input_tokens: u64,
    /// Output cap; 0 takes the rung's `max_tokens`.
    pub max_output_tokens: u32,
    /// What a good answer is worth; `None` takes the configured default.
    pub value_usd: Option<f64>,
    /// The most this one task may spend; `None` is no per-task cap.
    pub budget_usd: Option<f64>,
    /// The context the prompt was built from (for the cache).
    pub context: Vec<ContextSource>,
}

impl Task {
    /// A task with no constraints beyond the ones given.
    pub fn new(id: &str, user_id: &str, domain: &str, complexity: f32) -> Self {
        Self {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            domain: domain.to_owned(),
            complexity: complexity.clamp(0.0, 1.0),
            latency_slo_ms: 0,
            private: false,
            allow_private_cloud: false,
            no_network: false,
            needs_tools: false,
            est_input_tokens: 0,
            max_output_tokens: 0,
            value_usd: None,
            budget_usd: None,
            context: Vec::new(),
        }
    }

    /// A task carrying the policy of an [`opticlaw_core::ExecutionContext`]:
    /// its cost budget (`max_usd`, `max_tokens`, `max_ms` as the SLO) and the
    /// constraints `private_data`, `allow_private_cloud` and `no_network`.
    pub fn from_context(
        context: &opticlaw_core::ExecutionContext,
        user_id: &str,
        domain: &str,
        complexity: f32,
    ) -> Self {
        let has = |c: &str| context.constraints.iter().any(|x| x == c);
        let budget = &context.cost_budget;
        Self {
            private: has("private_data"),
            allow_private_cloud: has("allow_private_cloud"),
            no_network: has("no_network"),
            latency_slo_ms: budget.max_ms,
            max_output_tokens: u32::try_from(budget.max_tokens).unwrap_or(u32::MAX),
            budget_usd: Some(budget.max_usd),
            ..Self::new(&context.request_id.to_string(), user_id, domain, complexity)
        }
    }
}
