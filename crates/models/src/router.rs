//! `ModelRouter::select`: which model takes a task, and what to do when it
//! fails.
//!
//! For each rung of the ladder `local_small -> local_medium -> cloud_primary
//! -> cloud_secondary`, in that order, the router checks privacy (private
//! data stays local unless allowed), the provider's circuit breaker, the
//! model's effective capability for the task's domain, the budget caps, and
//! the value gate; every check is written down as a [`GateDecision`]. The
//! first rung capable of the task's complexity is the selection and the
//! capable rungs above it are the fallback chain.
//!
//! Effective capability blends the configured prior with the recorded
//! outcomes for `(model, domain)`:
//! `(4 * capability + successes) / (4 + attempts)`.
//!
//! All state (breakers, success counts, today's spending, the result cache)
//! is in memory behind one short-held lock; the daemon loads it from the
//! store at start ([`ModelRouter::restore`]) and persists each call's
//! [`crate::Outcome`] with [`crate::accounting::persist_outcome`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::breaker::{Breaker, BreakerState};
use crate::cache::ResultCache;
use crate::config::{ModelsConfig, Price, Tier, TierConfig};
use crate::error::{BudgetExceeded, ModelError};
use crate::gate::{self, GateDecision, GateInputs};
use crate::providers::Locality;
use crate::semantic::RequestEmbedder;
use crate::task::Task;
use crate::types::ToolMode;

/// Weight of the configured capability, in pseudo-observations.
const PRIOR_WEIGHT: f32 = 4.0;
/// Output tokens assumed for the cost estimate when the cap is larger.
const EXPECTED_OUTPUT_TOKENS: u64 = 400;

/// The router's answer: `{provider, model, max_tokens, temperature, tool_mode}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub provider: String,
    pub model: String,
    pub max_tokens: u32,
    pub temperature: f32,
    pub tool_mode: ToolMode,
    pub tier: Tier,
    pub locality: Locality,
    pub est_cost_usd: f64,
}

/// A selection, its fallbacks, and every decision that led there.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The selection first, then the fallbacks in ladder order.
    pub chain: Vec<Selection>,
    /// One decision per rung considered, allowed or not.
    pub decisions: Vec<GateDecision>,
    /// The first budget cap that refused a rung, if any.
    pub budget: Option<BudgetExceeded>,
}

impl Route {
    /// The selection, or why there is none (a budget message first).
    pub fn first(&self) -> Result<&Selection, ModelError> {
        if let Some(selection) = self.chain.first() {
            return Ok(selection);
        }
        if let Some(budget) = &self.budget {
            return Err(ModelError::Budget(budget.clone()));
        }
        let reasons: Vec<String> = self
            .decisions
            .iter()
            .map(|d| format!("{} ({}): {}", d.tier, d.model, d.reason))
            .collect();
        Err(ModelError::NoRoute(if reasons.is_empty() {
            "no model tiers are configured".to_owned()
        } else {
            reasons.join("; ")
        }))
    }
}

/// Attempts and successes of one model in one domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessStat {
    pub attempts: u64,
    pub successes: u64,
}

/// What the router remembers; loaded from the store at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterSnapshot {
    /// `(model, domain) -> stat`.
    pub stats: Vec<(String, String, SuccessStat)>,
    /// Today's spending per user (UTC day of the snapshot).
    pub spent_today_by_user: Vec<(String, f64)>,
    pub breakers: Vec<(String, Breaker)>,
}

/// Milliseconds since the epoch, from a replaceable clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub(crate) struct State {
    pub breakers: HashMap<String, Breaker>,
    pub stats: HashMap<String, HashMap<String, SuccessStat>>,
    pub spend_day: i64,
    pub spent_by_user: HashMap<String, f64>,
    pub spent_total: f64,
    pub cache: ResultCache,
}

impl State {
    pub fn roll_day(&mut self, day: i64) {
        if day != self.spend_day {
            self.spend_day = day;
            self.spent_by_user.clear();
            self.spent_total = 0.0;
        }
    }

    pub fn stat(&self, model: &str, domain: &str) -> SuccessStat {
        self.stats
            .get(model)
            .and_then(|d| d.get(domain))
            .copied()
            .unwrap_or_default()
    }
}

/// Routes tasks to models; see the module documentation.
pub struct ModelRouter {
    pub(crate) config: ModelsConfig,
    /// Tiers sorted in ladder order.
    tiers: Vec<TierConfig>,
    localities: HashMap<String, Locality>,
    pub(crate) state: Mutex<State>,
    pub(crate) clock: Clock,
    /// The semantic cache layer's embedder, when it is on.
    pub(crate) embedder: Option<Arc<dyn RequestEmbedder>>,
}

/// The UTC day number of an instant.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// `YYYY-MM-DD` of an instant (UTC).
pub fn day_string(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl ModelRouter {
    /// A router over `config`, reading the system clock.
    pub fn new(config: ModelsConfig) -> Result<Self, ModelError> {
        Self::with_clock(config, Arc::new(|| chrono::Utc::now().timestamp_millis()))
    }

    /// A router reading `clock` (tests move time by hand).
    pub fn with_clock(config: ModelsConfig, clock: Clock) -> Result<Self, ModelError> {
        let localities: HashMap<String, Locality> = config
            .providers
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.locality.unwrap_or(p.protocol.default_locality()),
                )
            })
            .collect();
        for tier in &config.tiers {
            if !localities.contains_key(&tier.provider) {
                return Err(ModelError::UnknownProvider(tier.provider.clone()));
            }
        }
        let threshold = config.cache.semantic_threshold;
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(ModelError::Config(format!(
                "models.cache.semantic_threshold: {threshold} is not in (0, 1]"
            )));
        }
        let mut tiers = config.tiers.clone();
        tiers.sort_by_key(|t| t.tier);
        let state = State {
            breakers: HashMap::new(),
            stats: HashMap::new(),
            spend_day: day_of(clock()),
            spent_by_user: HashMap::new(),
            spent_total: 0.0,
            cache: ResultCache::new(config.cache.capacity),
        };
        Ok(Self {
            config,
            tiers,
            localities,
            state: Mutex::new(state),
            clock,
            embedder: None,
        })
    }

    /// Turns on the semantic cache layer with `embedder` (see
    /// [`crate::semantic`]); the threshold is `config.cache.semantic_threshold`.
    pub fn with_embedder(mut self, embedder: Arc<dyn RequestEmbedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    pub fn config(&self) -> &ModelsConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Loads remembered stats, today's spending and breakers.
    pub fn restore(&self, snapshot: RouterSnapshot) {
        let mut state = self.lock();
        for (model, domain, stat) in snapshot.stats {
            state.stats.entry(model).or_default().insert(domain, stat);
        }
        state.roll_day(day_of(self.now()));
        for (user, spent) in snapshot.spent_today_by_user {
            state.spent_total += spent;
            state.spent_by_user.insert(user, spent);
        }
        state.breakers.extend(snapshot.breakers);
    }

    /// The price of `model` (free when unlisted: a local model).
    pub fn price(&self, model: &str) -> Price {
        self.config.prices.get(model).copied().unwrap_or_default()
    }

    /// Selects the model for `task`: the first rung of [`Self::route`].
    pub fn select(&self, task: &Task) -> Result<Selection, ModelError> {
        self.route(task).first().cloned()
    }

    /// The selection, its fallback chain, and every decision, at the
    /// router's clock.
    pub fn route(&self, task: &Task) -> Route {
        self.route_at(task, self.now())
    }

    /// [`Self::route`] at a given instant.
    pub fn route_at(&self, task: &Task, now_ms: i64) -> Route {
        let mut state = self.lock();
        state.roll_day(day_of(now_ms));
        let mut decisions = Vec::with_capacity(self.tiers.len());
        let mut allowed: Vec<(Selection, f32)> = Vec::new();
        let mut budget_refusal = None;
        let mut budget_blocked_capable = false;
        let value_usd = task
            .value_usd
            .unwrap_or(self.config.gate.default_task_value_usd);
        for tier in &self.tiers {
            let locality = self.localities[&tier.provider];
            let stat = state.stat(&tier.model, &task.domain);
            let capability = (PRIOR_WEIGHT * tier.capability + stat.successes as f32)
                / (PRIOR_WEIGHT + stat.attempts as f32);
            let max_tokens = match task.max_output_tokens {
                0 => tier.max_tokens,
                cap => cap.min(tier.max_tokens),
            };
            let est_output = EXPECTED_OUTPUT_TOKENS.min(u64::from(max_tokens));
            let est_cost_usd = self
                .price(&tier.model)
                .cost(task.est_input_tokens, est_output);
            let verdict = gate::evaluate(
                &GateInputs {
                    value_usd,
                    complexity: task.complexity,
                    capability,
                    est_cost_usd,
                    est_latency_ms: tier.typical_latency_ms,
                    latency_slo_ms: task.latency_slo_ms,
                },
                &self.config.gate,
            );
            let refusal = self.refusal(
                task,
                tier,
                locality,
                est_cost_usd,
                &state,
                now_ms,
                &mut budget_refusal,
            );
            let (ok, reason) = match refusal {
                Some((reason, by_budget)) => {
                    budget_blocked_capable |= by_budget && capability >= task.complexity;
                    (false, reason)
                }
                None if !verdict.allowed => (
                    false,
                    format!(
                        "value gate: expected gain ${:.5} <= cost ${:.5} + latency penalty ${:.5}",
                        verdict.expected_gain_usd, est_cost_usd, verdict.latency_penalty_usd
                    ),
                ),
                None => (
                    true,
                    format!(
                        "value gate: expected gain ${:.5} > cost ${:.5} + latency penalty ${:.5}",
                        verdict.expected_gain_usd, est_cost_usd, verdict.latency_penalty_usd
                    ),
                ),
            };
            decisions.push(GateDecision {
                task_id: task.id.clone(),
                user_id: task.user_id.clone(),
                domain: task.domain.clone(),
                tier: tier.tier.as_str().to_owned(),
                provider: tier.provider.clone(),
                model: tier.model.clone(),
                complexity: task.complexity,
                capability,
                p_success: verdict.p_success,
                expected_gain_usd: verdict.expected_gain_usd,
                est_cost_usd,
                est_latency_ms: tier.typical_latency_ms,
                latency_penalty_usd: verdict.latency_penalty_usd,
                allowed: ok,
                reason,
                at_ms: now_ms,
            });
            if ok {
                let tool_mode = match (task.needs_tools, tier.native_tools) {
                    (false, _) => ToolMode::None,
                    (true, true) => ToolMode::Native,
                    (true, false) => ToolMode::Prompted,
                };
                let temperature = if task.needs_tools || task.complexity >= 0.6 {
                    tier.temperature.min(0.2)
                } else {
                    tier.temperature
                };
                allowed.push((
                    Selection {
                        provider: tier.provider.clone(),
                        model: tier.model.clone(),
                        max_tokens,
                        temperature,
                        tool_mode,
                        tier: tier.tier,
                        locality,
                        est_cost_usd,
                    },
                    capability,
                ));
            }
        }
        drop(state);
        let capable: Vec<Selection> = allowed
            .iter()
            .filter(|(_, cap)| *cap >= task.complexity)
            .map(|(s, _)| s.clone())
            .collect();
        let chain = if capable.is_empty() && budget_blocked_capable {
            // A capable model exists but the budget forbids it: say so
            // rather than quietly answering with a weaker one.
            Vec::new()
        } else if capable.is_empty() {
            // Nothing is rated capable enough: best effort, strongest first.
            let mut all = allowed;
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            all.into_iter().map(|(s, _)| s).collect()
        } else {
            for decision in decisions.iter_mut() {
                if decision.allowed && decision.capability < task.complexity {
                    decision.allowed = false;
                    decision.reason = format!(
                        "capability {:.2} for `{}` is below complexity {:.2}",
                        decision.capability, task.domain, task.complexity
                    );
                }
            }
            capable
        };
        Route {
            chain,
            decisions,
            budget: budget_refusal,
        }
    }

    /// Why a rung may not take the task, before the value gate.
    #[allow(clippy::too_many_arguments)]
    fn refusal(
        &self,
        task: &Task,
        tier: &TierConfig,
        locality: Locality,
        est_cost_usd: f64,
        state: &State,
        now_ms: i64,
        budget_refusal: &mut Option<BudgetExceeded>,
    ) -> Option<(String, bool)> {
        if locality == Locality::Cloud {
            if task.no_network {
                return Some(("policy forbids the network (no_network)".to_owned(), false));
            }
            if task.private && !(task.allow_private_cloud || self.config.allow_private_cloud) {
                return Some(("private data stays on local models".to_owned(), false));
            }
        }
        if let Some(breaker) = state.breakers.get(&tier.provider)
            && let BreakerState::Open { until_ms } = breaker.peek(now_ms, &self.config.breaker)
        {
            let reason = format!(
                "circuit breaker for `{}` is open for {} ms more",
                tier.provider,
                until_ms - now_ms
            );
            return Some((reason, false));
        }
        if est_cost_usd > 0.0 {
            if let Some(cap) = task.budget_usd
                && est_cost_usd > cap
            {
                let reason =
                    format!("estimated cost ${est_cost_usd:.4} exceeds the task budget ${cap:.4}");
                return Some((reason, false));
            }
            let day = || day_string(now_ms);
            let user_spent = state
                .spent_by_user
                .get(&task.user_id)
                .copied()
                .unwrap_or(0.0);
            let checks = [
                (
                    self.config.budget.per_user_daily_usd,
                    user_spent,
                    format!("per-user daily ({})", task.user_id),
                    "per_user_daily_usd",
                ),
                (
                    self.config.budget.daily_usd,
                    state.spent_total,
                    "daily".to_owned(),
                    "daily_usd",
                ),
            ];
            for (cap, spent, scope, setting) in checks {
                if let Some(cap) = cap
                    && spent + est_cost_usd > cap
                {
                    let exceeded = BudgetExceeded {
                        scope,
                        setting,
                        day: day(),
                        spent_usd: spent,
                        cap_usd: cap,
                        needed_usd: est_cost_usd,
                    };
                    let reason = exceeded.to_string();
                    budget_refusal.get_or_insert(exceeded);
                    return Some((reason, true));
                }
            }
        }
        None
    }

    /// Drops cached replies that read `source_id`; returns how many.
    pub fn invalidate_source(&self, source_id: &str) -> usize {
        self.lock().cache.invalidate_source(source_id)
    }

    /// Adds spending (for calls made outside [`Self::complete`]).
    pub fn record_spend(&self, user_id: &str, cost_usd: f64, at_ms: i64) {
        let mut state = self.lock();
        state.roll_day(day_of(at_ms));
        state.spent_total += cost_usd;
        *state.spent_by_user.entry(user_id.to_owned()).or_default() += cost_usd;
    }

    /// Records whether `model` answered a `domain` task well.
    pub fn record_result(&self, model: &str, domain: &str, success: bool) {
        let mut state = self.lock();
        let stat = state
            .stats
            .entry(model.to_owned())
            .or_default()
            .entry(domain.to_owned())
            .or_default();
        stat.attempts += 1;
        stat.successes += u64::from(success);
    }

    /// A copy of a provider's breaker.
    pub fn breaker(&self, provider: &str) -> Breaker {
        self.lock()
            .breakers
            .get(provider)
            .cloned()
            .unwrap_or_default()
    }

    /// Today's spending of `user_id`.
    pub fn spent_today(&self, user_id: &str) -> f64 {
        let mut state = self.lock();
        state.roll_day(day_of(self.now()));
        state.spent_by_user.get(user_id).copied().unwrap_or(0.0)
    }
}
