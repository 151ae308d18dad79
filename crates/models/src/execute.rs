//! Running a task: cache, gate, breaker, the call, validation, fallback, and
//! the records of all of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::breaker::{Breaker, BreakerState};
use crate::cache::cache_key;
use crate::config::ModelsConfig;
use crate::error::ModelError;
use crate::gate::GateDecision;
use crate::providers::{self, HttpProvider, Provider};
use crate::router::{ModelRouter, Selection, day_string};
use crate::semantic::SemanticQuery;
use crate::task::Task;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Message, Role, ToolCall, ToolMode};

/// The providers by configured name.
#[derive(Clone, Default)]
pub struct Providers {
    map: HashMap<String, Arc<dyn Provider>>,
}

impl Providers {
    /// HTTP providers for every `[[models.providers]]` entry (keys loaded now).
    pub fn from_config(config: &ModelsConfig) -> Result<Self, ModelError> {
        let mut providers = Self::default();
        for p in &config.providers {
            providers.insert(Arc::new(HttpProvider::from_config(p)?));
        }
        Ok(providers)
    }

    pub fn insert(&mut self, provider: Arc<dyn Provider>) {
        self.map.insert(provider.name().to_owned(), provider);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.map.get(name)
    }
}

/// One model call (or cache hit), as persisted in `model_usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub at_ms: i64,
    /// UTC `YYYY-MM-DD`.
    pub day: String,
    pub task_id: String,
    pub user_id: String,
    pub domain: String,
    pub provider: String,
    pub model: String,
    pub tier: String,
    /// Why this model was called: `selected`, `fallback after timeout`, ...
    pub reason: String,
    /// `ok`, `cache_hit`, or the error kind.
    pub outcome: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub latency_ms: u64,
}

/// A successful completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub response: ChatResponse,
    pub selection: Selection,
    pub from_cache: bool,
    /// For a reply from the semantic cache layer: how similar the cached
    /// request was (cosine, 0..1).
    pub similarity: Option<f32>,
}

/// Everything a call produced, success or not: the daemon persists it in one
/// transaction with [`crate::accounting::persist_outcome`].
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Completed, ModelError>,
    pub decisions: Vec<GateDecision>,
    pub usage: Vec<UsageRecord>,
    /// `(model, domain, success)` for the success statistics.
    pub results: Vec<(String, String, bool)>,
    /// Breakers that changed, to persist.
    pub breakers: Vec<(String, Breaker)>,
}

/// How sure we are a reply answers: 0 for an empty reply, lower for a cut
/// or hedged one. The router falls back below `gate.min_confidence`.
pub fn confidence(response: &ChatResponse) -> f32 {
    if response.text.trim().is_empty() && response.tool_calls.is_empty() {
        return 0.0;
    }
    let lower = response.text.to_lowercase();
    const HEDGES: [&str; 4] = [
        "i'm not sure",
        "i am not sure",
        "i don't know",
        "i do not know",
    ];
    if HEDGES.iter().any(|h| lower.contains(h)) {
        return 0.3;
    }
    if response.finish_reason == FinishReason::Length {
        return 0.5;
    }
    1.0
}

impl ModelRouter {
    /// Routes `task`, then calls the chain in order until a reply passes:
    /// a cached reply first; then per rung the breaker, the call (the
    /// provider's timeout applies), refusal, tool-call validation and
    /// confidence checks. `request` carries the messages and tools; its
    /// model, cap and temperature are replaced by each selection's.
    pub async fn complete(
        &self,
        task: &Task,
        request: &ChatRequest,
        providers: &Providers,
    ) -> Outcome {
        let now = self.now();
        let route = self.route_at(task, now);
        let mut outcome = Outcome {
            result: Err(ModelError::NoRoute(String::new())),
            decisions: route.decisions.clone(),
            usage: Vec::new(),
            results: Vec::new(),
            breakers: Vec::new(),
        };
        let first = match route.first() {
            Ok(first) => first.clone(),
            Err(err) => {
                tracing::info!(task = %task.id, error = %err, "no model may take the task");
                outcome.result = Err(err);
                return outcome;
            }
        };
        let key = cache_key(request, &task.context);
        let exact = self.lock().cache.get(&key).cloned();
        let mut semantic = None;
        let hit = match exact {
            Some(hit) => Some(("cache", hit, None)),
            None => {
                semantic = self.embed_query(task, request).await;
                semantic.as_ref().and_then(|(scope, vector)| {
                    let guard = self.lock();
                    let threshold = self.config.cache.semantic_threshold;
                    guard
                        .cache
                        .get_similar(scope, vector, threshold)
                        .map(|(hit, similarity)| ("semantic cache", hit.clone(), Some(similarity)))
                })
            }
        };
        if let Some((reason, hit, similarity)) = hit {
            tracing::info!(task = %task.id, reason, similarity, "answered from the result cache");
            // A hit spends nothing: no tokens, no cost.
            outcome.usage.push(self.usage_record(
                task,
                &first,
                reason,
                "cache_hit",
                &nothing_spent(),
                0.0,
                0,
                now,
            ));
            outcome.result = Ok(Completed {
                response: hit,
                selection: first,
                from_cache: true,
                similarity,
            });
            return outcome;
        }
        let mut last_error: Option<ModelError> = None;
        let mut tried = 0;
        for selection in &route.chain {
            let reason = match &last_error {
                None => "selected".to_owned(),
                Some(err) => format!(
                    "fallback after {} on {}",
                    err.kind(),
                    err.provider().unwrap_or("?")
                ),
            };
            let at = self.now();
            let state = {
                let mut guard = self.lock();
                guard
                    .breakers
                    .entry(selection.provider.clone())
                    .or_default()
                    .check(at, &self.config.breaker)
            };
            if let BreakerState::Open { .. } = state {
                tracing::debug!(provider = %selection.provider, "breaker open; skipping");
                continue;
            }
            let Some(provider) = providers.get(&selection.provider) else {
                last_error = Some(ModelError::UnknownProvider(selection.provider.clone()));
                continue;
            };
            tried += 1;
            let call = shape_request(request, selection);
            tracing::info!(task = %task.id, provider = %selection.provider, model = %selection.model, tier = selection.tier.as_str(), %reason, "calling model");
            let started = Instant::now();
            let result = match provider.stream(&call).await {
                Ok(stream) => providers::collect(provider.name(), stream).await,
                Err(err) => Err(err),
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            let checked = result.and_then(|r| self.check_reply(selection, &call, request, r));
            let end = self.now();
            match checked {
                Ok(response) => {
                    let cost = self
                        .price(&selection.model)
                        .cost(response.usage.input_tokens, response.usage.output_tokens);
                    outcome.usage.push(self.usage_record(
                        task, selection, &reason, "ok", &response, cost, latency_ms, end,
                    ));
                    outcome
                        .results
                        .push((selection.model.clone(), task.domain.clone(), true));
                    self.record_result(&selection.model, &task.domain, true);
                    self.record_spend(&task.user_id, cost, end);
                    let breaker = {
                        let mut guard = self.lock();
                        let b = guard
                            .breakers
                            .entry(selection.provider.clone())
                            .or_default();
                        b.on_success();
                        let b = b.clone();
                        guard.cache.insert_with_vector(
                            key.clone(),
                            response.clone(),
                            &task.context,
                            semantic.take(),
                        );
                        b
                    };
                    outcome.breakers.push((selection.provider.clone(), breaker));
                    outcome.result = Ok(Completed {
                        response,
                        selection: selection.clone(),
                        from_cache: false,
                        similarity: None,
                    });
                    return outcome;
                }
                Err(err) => {
                    tracing::warn!(task = %task.id, provider = %selection.provider, model = %selection.model, error = %err, "model call failed; falling back");
                    outcome.usage.push(self.usage_record(
                        task,
                        selection,
                        &reason,
                        err.kind(),
                        &nothing_spent(),
                        0.0,
                        latency_ms,
                        end,
                    ));
                    let model_fault = matches!(
                        err,
                        ModelError::Refused { .. }
                            | ModelError::LowConfidence { .. }
                            | ModelError::InvalidToolArguments { .. }
                    );
                    if model_fault {
                        outcome
                            .results
                            .push((selection.model.clone(), task.domain.clone(), false));
                        self.record_result(&selection.model, &task.domain, false);
                    }
                    let retry_after = match &err {
                        ModelError::RateLimited { retry_after, .. } => {
                            retry_after.map(|d| d.as_millis() as u64)
                        }
                        _ => None,
                    };
                    let breaker = {
                        let mut guard = self.lock();
                        let b = guard
                            .breakers
                            .entry(selection.provider.clone())
                            .or_default();
                        if model_fault {
                            // The provider works; the model did badly.
                            b.on_success();
                        } else {
                            b.on_failure(end, retry_after, &self.config.breaker);
                        }
                        b.clone()
                    };
                    outcome.breakers.push((selection.provider.clone(), breaker));
                    if !err.falls_back() {
                        outcome.result = Err(err);
                        return outcome;
                    }
                    last_error = Some(err);
                }
            }
        }
        outcome.result = Err(match last_error {
            Some(last) => ModelError::Exhausted {
                tried,
                last: Box::new(last),
            },
            None => ModelError::NoRoute(
                "every provider in the chain has an open circuit breaker".to_owned(),
            ),
        });
        outcome
    }

    /// The semantic layer's `(scope, vector)` for `request`, when the layer
    /// is on, the task is not private and the request ends with a user
    /// message. Embedding runs on the
    /// blocking pool (a model forward pass would stall the event loop); a
    /// failure only turns the layer off for this request.
    async fn embed_query(&self, task: &Task, request: &ChatRequest) -> Option<(String, Vec<f32>)> {
        if task.private {
            return None;
        }
        let embedder = self.embedder.clone()?;
        let query = SemanticQuery::of(request, &task.context, &task.user_id, embedder.model_id())?;
        let text = query.text;
        let embedded = tokio::task::spawn_blocking(move || embedder.embed(&text)).await;
        match embedded {
            Ok(Ok(vector)) => Some((query.scope, vector)),
            Ok(Err(err)) => {
                tracing::warn!(task = %task.id, error = %err, "embedding the request failed; semantic cache skipped");
                None
            }
            Err(err) => {
                tracing::warn!(task = %task.id, error = %err, "the embedding task failed; semantic cache skipped");
                None
            }
        }
    }

    fn check_reply(
        &self,
        selection: &Selection,
        call: &ChatRequest,
        original: &ChatRequest,
        mut response: ChatResponse,
    ) -> Result<ChatResponse, ModelError> {
        let provider = &selection.provider;
        if providers::is_refusal(&response) {
            return Err(ModelError::Refused {
                provider: provider.clone(),
            });
        }
        if selection.tool_mode == ToolMode::Prompted
            && let Some(parsed) = parse_prompted_call(provider, &response.text)?
        {
            response.tool_calls.push(parsed);
            response.text.clear();
            response.finish_reason = FinishReason::ToolCalls;
        }
        let tools = if call.tools.is_empty() {
            &original.tools
        } else {
            &call.tools
        };
        providers::validate_tool_calls(provider, tools, &response)?;
        let confidence = confidence(&response);
        let floor = self.config.gate.min_confidence;
        if confidence < floor {
            return Err(ModelError::LowConfidence {
                provider: provider.clone(),
                confidence,
                floor,
            });
        }
        Ok(response)
    }

    #[allow(clippy::too_many_arguments)]
    fn usage_record(
        &self,
        task: &Task,
        selection: &Selection,
        reason: &str,
        outcome: &str,
        response: &ChatResponse,
        cost_usd: f64,
        latency_ms: u64,
        at_ms: i64,
    ) -> UsageRecord {
        UsageRecord {
            at_ms,
            day: day_string(at_ms),
            task_id: task.id.clone(),
            user_id: task.user_id.clone(),
            domain: task.domain.clone(),
            provider: selection.provider.clone(),
            model: selection.model.clone(),
            tier: selection.tier.as_str().to_owned(),
            reason: reason.to_owned(),
            outcome: outcome.to_owned(),
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            cost_usd,
            latency_ms,
        }
    }
}

/// A reply that spent no tokens, for the records of cache hits and failures.
fn nothing_spent() -> ChatResponse {
    ChatResponse {
        text: String::new(),
        tool_calls: Vec::new(),
        usage: Default::default(),
        finish_reason: FinishReason::Other,
    }
}

/// The request as sent to one selection: its model, cap and temperature, and
/// tools natively, in the system prompt, or not at all.
pub fn shape_request(request: &ChatRequest, selection: &Selection) -> ChatRequest {
    let mut call = request.clone();
    call.model = selection.model.clone();
    call.max_tokens = selection.max_tokens;
    call.temperature = selection.temperature;
    match selection.tool_mode {
        ToolMode::Native => {}
        ToolMode::None => call.tools.clear(),
        ToolMode::Prompted => {
            let tools = std::mem::take(&mut call.tools);
            let mut text = String::from(
                "You can call one tool. To call it, reply with only a JSON object \
                 {\"tool\": NAME, \"arguments\": {...}} and nothing else. Tools:",
            );
            for t in &tools {
                text.push_str(&format!(
                    "\n- {}: {} Arguments schema: {}",
                    t.name, t.description, t.parameters
                ));
            }
            match call.messages.iter_mut().find(|m| m.role == Role::System) {
                Some(system) => {
                    system.content.push_str("\n\n");
                    system.content.push_str(&text);
                }
                None => call.messages.insert(0, Message::system(text)),
            }
        }
    }
    call
}

/// A prompted tool call: a reply that is only `{"tool": ..., "arguments": {...}}`.
fn parse_prompted_call(provider: &str, text: &str) -> Result<Option<ToolCall>, ModelError> {
    let trimmed = text
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    if !trimmed.starts_with('{') {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return Ok(None);
    };
    let Some(name) = value.get("tool").and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let arguments = value
        .get("arguments")
        .cloned()
        .unwrap_or(serde_json::json!({}));
    if !arguments.is_object() {
        return Err(ModelError::InvalidToolArguments {
            provider: provider.to_owned(),
            tool: name.to_owned(),
            detail: "arguments are not an object".to_owned(),
        });
    }
    Ok(Some(ToolCall {
        id: "call_1".to_owned(),
        name: name.to_owned(),
        arguments,
    }))
}
