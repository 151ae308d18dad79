//! `opticlaw bench routing [TRACE]`: replays a mixed trace through our
//! routing and through "everything to the large model with the full
//! context" (what OpenClaw does), and compares tokens.
//!
//! For each message of the trace:
//! - **ours**: the [`CheapPath`] (rules, a tiny classifier) answers it with
//!   no model call when it can; otherwise a [`Task`] is routed by
//!   [`ModelRouter`] with a complexity estimated from the message (its
//!   domain, as triage labels it, and its length), with a trimmed context:
//!   a short system prompt, the last two exchanges (four for hard tasks),
//!   and tools only when the task needs them.
//! - **always large**: the large model gets the full agent prompt (persona,
//!   user profile, memory, tool notes), every tool schema, and the whole
//!   session so far.
//!
//! Both run against a [`ReplayServer`] on loopback that streams the
//! scripted reply, and token counts are the `usage` the replayed provider
//! reports: the [`crate::tokens`] estimate (four characters per token plus
//! four per message) of the request it actually received and of the reply.
//! No count is a constant.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{ModelsConfig, Tier, TierConfig};
use crate::execute::Providers;
use crate::providers::{HttpProvider, Protocol, Provider, ProviderConfig, collect};
use crate::replay::{ReplayServer, Trace};
use crate::router::ModelRouter;
use crate::task::Task;
use crate::types::{ChatRequest, Message, ToolSpec};

/// The mixed trace kept in the repository, used when no path is given.
pub const DEFAULT_TRACE: &str = include_str!("../tests/golden/mixed_trace.json");

/// A recorded mixed workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixedTrace {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The full prompt an always-large agent sends with every message.
    pub agent_prompt: String,
    /// Our short system prompt.
    pub short_prompt: String,
    /// Every tool the agent has.
    pub tools: Vec<ToolSpec>,
    pub messages: Vec<TraceMessage>,
}

/// One user message and the reply the replay server gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceMessage {
    /// Messages of one session share history.
    pub session: u32,
    pub text: String,
    /// The domain triage gives it (`command`, `chat`, `plan`, `code`...).
    pub domain: String,
    #[serde(default)]
    pub needs_tools: bool,
    pub reply: String,
}

/// Answers a message without any model, when it can (slash commands,
/// reminders, small talk). The daemon supplies its rule engine and intent
/// classifier; [`HeuristicCheapPath`] is a small built-in stand-in.
pub trait CheapPath: Send + Sync {
    fn answers(&self, text: &str) -> bool;
}

/// A few rules: slash commands, reminders and timers (and a fired
/// reminder, which the scheduler renders), acknowledgements and greetings,
/// time and date, list look-ups.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeuristicCheapPath;

impl CheapPath for HeuristicCheapPath {
    fn answers(&self, text: &str) -> bool {
        let t = text.trim().to_lowercase();
        let t = t.trim_end_matches(['!', '.', '?']);
        if t.starts_with('/') {
            return true;
        }
        const EXACT: [&str; 16] = [
            "ok",
            "okay",
            "thanks",
            "thank you",
            "hi",
            "hello",
            "good morning",
            "good night",
            "done",
            "👍",
            "what time is it",
            "what's today's date",
            "list my reminders",
            "what's on my list",
            "yes",
            "no",
        ];
        if EXACT.contains(&t) {
            return true;
        }
        const PREFIXES: [&str; 6] = [
            "reminder:",
            "remind me ",
            "set a timer",
            "cancel my ",
            "snooze ",
            "what's the date",
        ];
        PREFIXES.iter().any(|p| t.starts_with(p))
    }
}

/// The bench's figures. `Display` is the machine-readable last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingReport {
    pub messages: usize,
    pub answered_without_llm: usize,
    pub small_calls: usize,
    pub medium_calls: usize,
    pub large_calls: usize,
    pub our_tokens: u64,
    pub always_large_tokens: u64,
    /// Provider requests while the runtime had nothing to do but fire one
    /// reminder (answered by the cheap path).
    pub idle_calls: usize,
}

impl RoutingReport {
    pub fn no_llm_share(&self) -> f64 {
        self.answered_without_llm as f64 / self.messages.max(1) as f64
    }
    pub fn tokens_per_msg(&self) -> f64 {
        self.our_tokens as f64 / self.messages.max(1) as f64
    }
    pub fn always_large_tokens_per_msg(&self) -> f64 {
        self.always_large_tokens as f64 / self.messages.max(1) as f64
    }
    /// How many times fewer tokens our routing spends.
    pub fn ratio(&self) -> f64 {
        self.always_large_tokens as f64 / (self.our_tokens.max(1)) as f64
    }
}

impl fmt::Display for RoutingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no_llm_share={:.3} tokens_per_msg={:.1} always_large_tokens_per_msg={:.1} ratio={:.1} idle_calls={}",
            self.no_llm_share(),
            self.tokens_per_msg(),
            self.always_large_tokens_per_msg(),
            self.ratio(),
            self.idle_calls
        )
    }
}

/// The bench failed to run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read the trace {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("the trace is not valid: {0}")]
    Parse(String),
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    #[error("a replayed call failed: {0}")]
    Model(#[from] crate::ModelError),
    #[error("cannot start the bench runtime: {0}")]
    Runtime(std::io::Error),
}

/// Replays `trace` (the repository's mixed trace when `None`) with the
/// built-in [`HeuristicCheapPath`]. Runs its own runtime on a thread, so it
/// may be called from anywhere.
pub fn routing(trace: Option<&Path>) -> Result<RoutingReport, BenchError> {
    routing_with(trace, Arc::new(HeuristicCheapPath))
}

/// [`routing`] with the caller's cheap path.
pub fn routing_with(
    trace: Option<&Path>,
    cheap: Arc<dyn CheapPath>,
) -> Result<RoutingReport, BenchError> {
    let text = match trace {
        Some(path) => std::fs::read_to_string(path).map_err(|e| BenchError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?,
        None => DEFAULT_TRACE.to_owned(),
    };
    let trace: MixedTrace =
        serde_json::from_str(&text).map_err(|e| BenchError::Parse(e.to_string()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(BenchError::Runtime)?;
                runtime.block_on(replay_mixed(&trace, cheap.as_ref()))
            })
            .join()
            .expect("the bench thread does not panic")
    })
}

const SMALL: &str = "qwen2.5:1.5b";
const MEDIUM: &str = "qwen2.5:7b";
const LARGE: &str = "gpt-4o";

fn ladder(base_url: &str) -> ModelsConfig {
    let provider = |name: &str, protocol| ProviderConfig {
        name: name.into(),
        protocol,
        base_url: base_url.into(),
        api_key_env: None,
        api_key_keyring: None,
        api_key_file: None,
        locality: None,
        timeout_ms: 10_000,
    };
    let tier = |tier, provider: &str, model: &str, capability, latency| TierConfig {
        tier,
        provider: provider.into(),
        model: model.into(),
        capability,
        typical_latency_ms: latency,
        max_tokens: 512,
        native_tools: true,
        temperature: 0.7,
    };
    let mut config = ModelsConfig {
        providers: vec![
            provider("ollama", Protocol::Ollama),
            provider("openai", Protocol::Openai),
        ],
        tiers: vec![
            tier(Tier::LocalSmall, "ollama", SMALL, 0.4, 600),
            tier(Tier::LocalMedium, "ollama", MEDIUM, 0.6, 1_500),
            tier(Tier::CloudPrimary, "openai", LARGE, 0.95, 3_000),
        ],
        ..Default::default()
    };
    config.prices.insert(
        LARGE.into(),
        crate::config::Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
        },
    );
    config.gate.default_task_value_usd = 0.2;
    config
}

/// Complexity from what triage knows: the domain and the message's length.
pub fn estimate_complexity(domain: &str, text: &str) -> f32 {
    let base: f32 = match domain {
        "plan" | "code" | "analysis" => 0.75,
        "writing" | "email" => 0.35,
        _ => 0.25,
    };
    let words = text.split_whitespace().count() as f32;
    (base + (words / 400.0)).min(1.0)
}

async fn replay_mixed(
    trace: &MixedTrace,
    cheap: &dyn CheapPath,
) -> Result<RoutingReport, BenchError> {
    let server = ReplayServer::start(Trace::repeating("")).await?;
    let config = ladder(&server.base_url());
    let providers = Providers::from_config(&config)?;
    let large = HttpProvider::new(&config.providers[1], None);
    let router = ModelRouter::new(config)?;
    let mut report = RoutingReport {
        messages: trace.messages.len(),
        answered_without_llm: 0,
        small_calls: 0,
        medium_calls: 0,
        large_calls: 0,
        our_tokens: 0,
        always_large_tokens: 0,
        idle_calls: 0,
    };

    // Idle: a simulated day in which nothing happens but one reminder firing.
    let before = server.request_count();
    let reminder = TraceMessage {
        session: u32::MAX,
        text: "Reminder: stand-up in 5 minutes".into(),
        domain: "reminder".into(),
        needs_tools: false,
        reply: String::new(),
    };
    ours(
        trace,
        &reminder,
        &[],
        cheap,
        &router,
        &providers,
        usize::MAX,
    )
    .await?;
    report.idle_calls = server.request_count() - before;

    let mut session = u32::MAX;
    let mut history: Vec<Message> = Vec::new();
    for (i, message) in trace.messages.iter().enumerate() {
        if message.session != session {
            session = message.session;
            history.clear();
        }
        server.set_trace(Trace::repeating(&message.reply));

        // Always large, full context.
        let mut full = vec![Message::system(&trace.agent_prompt)];
        full.extend(history.iter().cloned());
        full.push(Message::user(&message.text));
        let request = ChatRequest {
            model: LARGE.into(),
            messages: full,
            tools: trace.tools.clone(),
            max_tokens: 512,
            temperature: 0.7,
            stream: true,
        };
        let reply = collect(large.name(), large.stream(&request).await?).await?;
        report.always_large_tokens += reply.usage.total();

        // Ours.
        match ours(trace, message, &history, cheap, &router, &providers, i).await? {
            None => report.answered_without_llm += 1,
            Some((_, _, true)) => {}
            Some((tier, tokens, false)) => {
                match tier {
                    Tier::LocalSmall => report.small_calls += 1,
                    Tier::LocalMedium => report.medium_calls += 1,
                    _ => report.large_calls += 1,
                }
                report.our_tokens += tokens;
            }
        }
        history.push(Message::user(&message.text));
        history.push(Message::assistant(&message.reply));
    }
    Ok(report)
}

/// Our path for one message: `None` when the cheap path answers, else the
/// rung that answered, the tokens it reported, and whether it was cached.
async fn ours(
    trace: &MixedTrace,
    message: &TraceMessage,
    history: &[Message],
    cheap: &dyn CheapPath,
    router: &ModelRouter,
    providers: &Providers,
    index: usize,
) -> Result<Option<(Tier, u64, bool)>, BenchError> {
    if cheap.answers(&message.text) {
        return Ok(None);
    }
    let complexity = estimate_complexity(&message.domain, &message.text);
    let keep = if complexity >= 0.6 { 8 } else { 4 };
    let mut messages = vec![Message::system(&trace.short_prompt)];
    messages.extend(
        history[history.len().saturating_sub(keep)..]
            .iter()
            .cloned(),
    );
    messages.push(Message::user(&message.text));
    let tools = if message.needs_tools {
        trace
            .tools
            .iter()
            .filter(|t| t.name.starts_with("calendar_"))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let request = ChatRequest {
        model: String::new(),
        messages,
        tools,
        max_tokens: 0,
        temperature: 0.0,
        stream: true,
    };
    let mut task = Task::new(
        &format!("bench-{index}"),
        "bench",
        &message.domain,
        complexity,
    );
    task.needs_tools = message.needs_tools;
    task.est_input_tokens = crate::tokens::estimate_request(&request);
    let done = router.complete(&task, &request, providers).await.result?;
    Ok(Some((
        done.selection.tier,
        done.response.usage.total(),
        done.from_cache,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heuristic_answers_commands_and_reminders_but_not_questions() {
        let cheap = HeuristicCheapPath;
        assert!(cheap.answers("/help"));
        assert!(cheap.answers("remind me to call mom at 5pm"));
        assert!(cheap.answers("Thanks!"));
        assert!(!cheap.answers("What's the capital of Australia?"));
        assert!(!cheap.answers("Plan my week"));
    }
}
