//! What the router is asked to route.

use serde::{Deserialize, Serialize};

use crate::cache::ContextSource;

/// Classifier domains whose messages carry private data (accounts, cards,
/// balances): such tasks stay on local models unless the user allowed
/// cloud models for private data.
pub const PRIVATE_DOMAINS: [&str; 2] = ["banking", "credit_cards"];

/// The domain of a task no classifier domain describes.
pub const DEFAULT_DOMAIN: &str = "chat";

/// What triage learned about a message, as routing needs it. The daemon
/// fills it from `opticlaw_triage::Explanation` (this crate does not depend
/// on triage): the classifier's domain when in scope, its confidence,
/// expected tool need and urgency, and the entities found in the text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriageSignals {
    /// The classifier's domain (`banking`, `travel`, ...) when in scope.
    pub domain: Option<String>,
    /// Whether the classifier found the message in scope.
    pub in_scope: bool,
    /// Calibrated confidence of the top intent, 0..1.
    pub confidence: f32,
    /// Expected probability that a tool is needed, 0..1.
    pub tool_needed: f32,
    /// Expected urgency, 0..1.
    pub urgency: f32,
    /// Names, emails, URLs, quantities found in the text.
    pub entities: Vec<String>,
}

impl TriageSignals {
    /// The routing domain: the classifier's, else [`DEFAULT_DOMAIN`].
    pub fn domain(&self) -> &str {
        self.domain.as_deref().unwrap_or(DEFAULT_DOMAIN)
    }

    /// Private data: a domain of [`PRIVATE_DOMAINS`], or an email address
    /// among the entities (someone's contact details).
    pub fn private(&self) -> bool {
        PRIVATE_DOMAINS.contains(&self.domain())
            || self
                .entities
                .iter()
                .any(|e| e.contains('@') && !e.starts_with('@'))
    }

    /// Complexity 0..1 of answering `text`: the length-based estimate for
    /// the domain, raised for open-ended (out of scope or unsure) messages
    /// and for likely tool use.
    pub fn complexity(&self, text: &str) -> f32 {
        let base = crate::bench::estimate_complexity(self.domain(), text);
        let unsure = if self.in_scope {
            0.2 * (1.0 - self.confidence.clamp(0.0, 1.0))
        } else {
            0.15
        };
        (base + unsure + 0.2 * self.tool_needed.clamp(0.0, 1.0)).clamp(0.0, 1.0)
    }

    /// An urgent message wants a reply within this many ms (0: no SLO).
    pub fn latency_slo_ms(&self) -> u64 {
        if self.urgency >= 0.7 { 5_000 } else { 0 }
    }
}

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

    /// A task for `text` shaped by what triage found: its domain (under
    /// which the router keeps each model's success history), complexity,
    /// privacy and latency SLO (see [`TriageSignals`]).
    pub fn from_signals(id: &str, user_id: &str, text: &str, signals: &TriageSignals) -> Self {
        Self {
            private: signals.private(),
            latency_slo_ms: signals.latency_slo_ms(),
            ..Self::new(id, user_id, signals.domain(), signals.complexity(text))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(domain: Option<&str>, in_scope: bool, confidence: f32) -> TriageSignals {
        TriageSignals {
            domain: domain.map(str::to_owned),
            in_scope,
            confidence,
            ..Default::default()
        }
    }

    #[test]
    fn banking_and_emails_are_private_travel_is_not() {
        let bank = signals(Some("banking"), true, 0.9);
        let task = Task::from_signals("t", "u", "what is my balance", &bank);
        assert!(task.private);
        assert_eq!(task.domain, "banking");
        assert!(!signals(Some("travel"), true, 0.9).private());
        let email = TriageSignals {
            entities: vec!["sam@example.com".into()],
            ..signals(None, false, 0.2)
        };
        assert!(email.private());
        let mention = TriageSignals {
            entities: vec!["@sam".into()],
            ..signals(None, false, 0.2)
        };
        assert!(!mention.private());
        assert_eq!(mention.domain(), DEFAULT_DOMAIN);
    }

    #[test]
    fn unsure_open_ended_and_tool_needing_messages_are_harder() {
        let text = "book me a table";
        let sure = signals(Some("kitchen_and_dining"), true, 0.95).complexity(text);
        let unsure = signals(Some("kitchen_and_dining"), true, 0.3).complexity(text);
        let open = signals(None, false, 0.3).complexity(text);
        let tools = TriageSignals {
            tool_needed: 0.9,
            ..signals(Some("kitchen_and_dining"), true, 0.95)
        }
        .complexity(text);
        assert!(
            sure < unsure && sure < open && sure < tools,
            "{sure} {unsure} {open} {tools}"
        );
        let urgent = TriageSignals {
            urgency: 0.9,
            ..Default::default()
        };
        assert_eq!(
            Task::from_signals("t", "u", text, &urgent).latency_slo_ms,
            5_000
        );
        assert_eq!(
            Task::from_signals("t", "u", text, &TriageSignals::default()).latency_slo_ms,
            0
        );
    }
}
