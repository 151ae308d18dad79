//! The model path: answers what no rule can through the model router.
//!
//! [`ModelAnswerer`] plugs [`opticlaw_models::ModelRouter`] into the runtime
//! as its [`Answerer`]: for a message the rule layer passed on, it builds a
//! short request (a system prompt and the message), routes it as a task
//! shaped by triage's signals (the classifier's domain, under which each
//! model's success is tracked; complexity from the text, the classifier's
//! confidence and tool need; private data kept local for banking and card
//! messages or ones holding an email address; an SLO for urgent ones),
//! runs the fallback chain (result cache first, its semantic layer when
//! `[models.cache] semantic = true`), and
//! writes everything the call produced (gate decisions, usage, success
//! statistics, breakers) to the store in one transaction with
//! [`accounting::persist_outcome`]. The router's memory (today's spending,
//! success statistics, breakers) is restored from the store at start, so
//! budgets hold across restarts.
//!
//! Nothing here runs unless a message needs a model: no warm-up call, no
//! health check, no timer. Errors reach the user as one clear sentence
//! (budget reached, every provider failing, ...); provider errors are
//! scrubbed of keys by `opticlaw-models` before they get here.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use opticlaw_models::replay::{ReplayServer, Trace};
use opticlaw_models::{
    CacheConfig, ChatRequest, Locality, Message, ModelError, ModelRouter, ModelsConfig, Protocol,
    ProviderConfig, Providers, RequestEmbedder, Task, Tier, TierConfig, TriageSignals, accounting,
    router, tokens,
};
use opticlaw_runtime::{Answer, AnswerFuture, AnswerRequest, Answerer};
use opticlaw_store::StoreHandle;
use opticlaw_triage::Explanation;
use serde_json::json;

/// The system prompt of every model request.
pub const SYSTEM_PROMPT: &str =
    "You are OptiClaw, a concise personal assistant. Answer briefly and plainly.";

/// Answers messages no rule answers with the configured models.
#[derive(Clone)]
pub struct ModelAnswerer {
    inner: Arc<Inner>,
}

struct Inner {
    router: ModelRouter,
    providers: Providers,
    store: StoreHandle,
}

impl ModelAnswerer {
    /// An answerer over `models` with its HTTP providers (API keys are loaded
    /// now), its router state restored from `store`.
    pub async fn new(models: &ModelsConfig, store: StoreHandle) -> Result<Self> {
        let providers = Providers::from_config(models)
            .context("loading the model providers of [models] in config.toml")?;
        Self::with_providers(models, providers, store).await
    }

    /// Like [`ModelAnswerer::new`] with providers built by the caller.
    pub async fn with_providers(
        models: &ModelsConfig,
        providers: Providers,
        store: StoreHandle,
    ) -> Result<Self> {
        let mut router =
            ModelRouter::new(models.clone()).context("the [models] section of config.toml")?;
        if models.cache.semantic {
            router = router.with_embedder(semantic_embedder(&models.cache)?);
        }
        let day = router::day_string(chrono::Utc::now().timestamp_millis());
        let snapshot = store
            .call(move |conn| Ok(accounting::load_snapshot(conn, &day)?))
            .await
            .context("reading the model router's state from the store")?;
        router.restore(snapshot);
        Ok(Self {
            inner: Arc::new(Inner {
                router,
                providers,
                store,
            }),
        })
    }

    /// The planner's model path over this answerer's router and providers
    /// (the same value gate, budgets and accounting).
    pub fn decomposer(&self) -> opticlaw_planner::LlmDecomposer<'_> {
        opticlaw_planner::LlmDecomposer {
            router: &self.inner.router,
            providers: &self.inner.providers,
        }
    }

    /// One model call for a step of a plan (a summary): through the router
    /// (the value gate, budgets, circuit breakers) with its usage and gate
    /// decisions recorded like any answer's. Returns the model's text.
    pub async fn complete_text(
        &self,
        task_id: &str,
        user_id: &str,
        prompt: &str,
    ) -> Result<String, String> {
        Ok(self.complete(task_id, user_id, prompt).await?.0)
    }

    /// Like [`ModelAnswerer::complete_text`], with the model that answered.
    pub async fn complete(
        &self,
        task_id: &str,
        user_id: &str,
        prompt: &str,
    ) -> Result<(String, String), String> {
        let chat = Self::request_with_memory(prompt, None);
        let mut task = Task::from_signals(task_id, user_id, prompt, &TriageSignals::default());
        task.est_input_tokens = tokens::estimate_request(&chat);
        let inner = &self.inner;
        let outcome = inner.router.complete(&task, &chat, &inner.providers).await;
        match inner.record(&task, outcome).await {
            Ok(done) => Ok((
                done.response.text.trim().to_owned(),
                done.selection.model.clone(),
            )),
            Err(err) => Err(user_message(&err)),
        }
    }

    /// The request sent for a user's message (before the router sets the
    /// model, output cap and temperature of each rung).
    /// The memory budgeter's context (already cut to `[memory]
    /// context_token_budget`), when there is one, is a second system message.
    pub fn request_with_memory(text: &str, memory: Option<&str>) -> ChatRequest {
        let mut messages = vec![Message::system(SYSTEM_PROMPT)];
        if let Some(context) = memory.filter(|c| !c.trim().is_empty()) {
            messages.push(Message::system(format!(
                "What you remember from earlier conversations that may help:\n{context}"
            )));
        }
        messages.push(Message::user(text));
        ChatRequest {
            model: String::new(),
            messages,
            tools: Vec::new(),
            max_tokens: 0,
            temperature: 0.0,
            stream: true,
        }
    }
}

impl Answerer for ModelAnswerer {
    fn answer(&self, request: AnswerRequest) -> AnswerFuture {
        let inner = self.inner.clone();
        Box::pin(async move { inner.answer(request).await })
    }
}

impl Inner {
    /// Writes a call's gate decisions, usage and results to the store and
    /// returns its result. The records go to the store and the result stays
    /// here, so a failed write costs the accounting of one call, never the
    /// user's answer.
    async fn record(
        &self,
        task: &Task,
        mut outcome: opticlaw_models::Outcome,
    ) -> std::result::Result<opticlaw_models::Completed, ModelError> {
        let result =
            std::mem::replace(&mut outcome.result, Err(ModelError::NoRoute(String::new())));
        if let Err(err) = self
            .store
            .call(move |conn| Ok(accounting::persist_outcome(conn, &outcome)?))
            .await
        {
            tracing::error!(task = %task.id, %err, "recording the model call failed");
        }
        result
    }

    async fn answer(&self, request: AnswerRequest) -> Result<Answer, String> {
        let AnswerRequest {
            event,
            seq,
            cancel,
            triage,
        } = request;
        let text = event.content.text.trim();
        let memory = event
            .metadata
            .get(crate::memory::answerer::CONTEXT_KEY)
            .and_then(|v| v.as_str());
        let chat = ModelAnswerer::request_with_memory(text, memory);
        let mut task = Task::from_signals(
            &format!("event-{seq}"),
            &event.user_id,
            text,
            &signals(&triage),
        );
        task.est_input_tokens = tokens::estimate_request(&chat);

        let outcome = tokio::select! {
            outcome = self.router.complete(&task, &chat, &self.providers) => outcome,
            () = cancel.cancelled() => {
                return Err("the request was cancelled before a model answered".to_owned());
            }
        };
        let calls = serde_json::to_value(&outcome.usage).unwrap_or_default();
        match self.record(&task, outcome).await {
            Ok(done) => {
                let response = done.response;
                let mut reply = response.text.trim().to_owned();
                if reply.is_empty() {
                    reply = "(the model gave an empty answer)".to_owned();
                }
                Ok(Answer {
                    text: reply,
                    outcome: json!({
                        "task_id": task.id,
                        "provider": done.selection.provider,
                        "model": done.selection.model,
                        "tier": done.selection.tier.as_str(),
                        "domain": task.domain,
                        "complexity": task.complexity,
                        "private": task.private,
                        "from_cache": done.from_cache,
                        "input_tokens": response.usage.input_tokens,
                        "output_tokens": response.usage.output_tokens,
                        "calls": calls,
                    }),
                })
            }
            Err(err) => {
                tracing::warn!(task = %task.id, error = %err, "no model answered");
                Err(user_message(&err))
            }
        }
    }
}

/// The memory engine's all-MiniLM-L6-v2 as the router's [`RequestEmbedder`].
#[cfg(feature = "embeddings")]
pub struct MiniLm(pub Box<dyn opticlaw_memory::embed::Embedder>);

#[cfg(feature = "embeddings")]
impl RequestEmbedder for MiniLm {
    fn model_id(&self) -> &str {
        self.0.model_id()
    }

    fn embed(&self, text: &str) -> std::result::Result<Vec<f32>, String> {
        let mut vectors = self.0.embed(&[text]).map_err(|err| err.to_string())?;
        vectors
            .pop()
            .ok_or_else(|| "the embedder returned no vector".to_owned())
    }
}

/// The embedder of the semantic cache layer (`[models.cache] semantic =
/// true`): MiniLM from `embedding_model_dir`, else where opticlaw-memory
/// looks for it. Loaded once, at start; a missing model is an error that
/// says how to fetch it.
#[cfg(feature = "embeddings")]
pub fn semantic_embedder(cache: &CacheConfig) -> Result<Arc<dyn RequestEmbedder>> {
    use opticlaw_memory::embed::{MiniLmEmbedder, find_model_dir};
    let dir = cache.embedding_model_dir.clone().or_else(find_model_dir).context(
        "[models.cache] semantic = true needs the embedding model: run scripts/fetch-embedding-model, or set models.cache.embedding_model_dir or $OPTICLAW_EMBEDDING_MODEL_DIR",
    )?;
    let embedder = MiniLmEmbedder::load(&dir).with_context(|| {
        format!(
            "loading the embedding model of [models.cache] from {}",
            dir.display()
        )
    })?;
    tracing::info!(dir = %dir.display(), threshold = cache.semantic_threshold, "semantic result cache on");
    Ok(Arc::new(MiniLm(Box::new(embedder))))
}

#[cfg(not(feature = "embeddings"))]
pub fn semantic_embedder(_cache: &CacheConfig) -> Result<Arc<dyn RequestEmbedder>> {
    anyhow::bail!(
        "[models.cache] semantic = true needs opticlaw built with its `embeddings` feature"
    )
}

/// Triage's view of a message, as the router takes it.
pub fn signals(triage: &Explanation) -> TriageSignals {
    let intent = triage.intent.as_ref();
    TriageSignals {
        domain: triage.hints.domain.clone(),
        in_scope: intent.is_some_and(|i| i.in_scope),
        confidence: intent.map_or(0.0, |i| i.confidence),
        tool_needed: intent.map_or(0.0, |i| i.tool_needed),
        urgency: intent.map_or(0.0, |i| i.urgency),
        entities: triage.hints.entities.clone(),
    }
}

/// One sentence for the user (the runtime prefixes "Sorry, I could not
/// answer that: "). Never contains a key: provider errors are scrubbed by
/// `opticlaw-models`.
pub fn user_message(err: &ModelError) -> String {
    const CHECK: &str = "Check the models with `opticlaw models test`.";
    match err {
        ModelError::Budget(budget) => format!("{budget}."),
        ModelError::Exhausted { tried: 1, last } => {
            format!("the model provider failed ({last}). {CHECK}")
        }
        ModelError::Exhausted { tried, last } => {
            format!("all {tried} models tried failed; the last error was: {last}. {CHECK}")
        }
        ModelError::NoRoute(why) if why.contains("circuit breaker") => format!(
            "every model provider failed recently and is paused for a moment; try again shortly. {CHECK}"
        ),
        ModelError::NoRoute(why) => {
            format!("no configured model may take this request: {why}. See `opticlaw models list`.")
        }
        other => format!("{other}. {CHECK}"),
    }
}

/// Builds the answerer for the `[models]` section, for `opticlaw serve`.
pub async fn build(models: &ModelsConfig, store: StoreHandle) -> Result<ModelAnswerer> {
    let answerer = ModelAnswerer::new(models, store).await?;
    tracing::info!(
        tiers = models.tiers.len(),
        providers = models.providers.len(),
        "model path ready; no model is called until a message needs one"
    );
    Ok(answerer)
}

/// `opticlaw serve --model replay:FILE`: serves the golden trace `file` on
/// loopback and answers with it, as a local model would. Keep the returned
/// server alive as long as the answerer (dropping it stops it).
pub async fn replay(file: &Path, store: StoreHandle) -> Result<(ReplayServer, ModelAnswerer)> {
    let trace = Trace::load(file).context("--model replay:FILE")?;
    let server = ReplayServer::start(trace.clone())
        .await
        .context("starting the replay model server")?;
    let models = replay_config(&trace, &server.base_url());
    let answerer = build(&models, store).await?;
    tracing::info!(trace = %file.display(), url = %server.base_url(), "answering with a replayed model");
    Ok((server, answerer))
}

/// `replay:FILE` → `FILE`, for `--model`.
pub fn replay_path(spec: &str) -> Result<&Path> {
    match spec.strip_prefix("replay:") {
        Some(path) if !path.is_empty() => Ok(Path::new(path)),
        _ => anyhow::bail!(
            "--model takes replay:FILE (a golden trace such as crates/models/tests/golden/openai_compatible_text.json), not {spec:?}; real models are configured in [models] (see `opticlaw models add --help`)"
        ),
    }
}

/// One local provider named `replay` at `base_url`, speaking the protocol of
/// the trace's first turn (Ollama when it names none), and one tier able to
/// take any task with the model, output cap and temperature the trace was
/// recorded with.
pub fn replay_config(trace: &Trace, base_url: &str) -> ModelsConfig {
    let first = trace.turns.first();
    let protocol = trace
        .turns
        .iter()
        .find_map(|t| t.protocol)
        .unwrap_or(Protocol::Ollama);
    let input = first.and_then(|t| t.input.as_ref());
    let model = input
        .map(|i| i.model.clone())
        .or_else(|| {
            first
                .and_then(|t| t.request.as_ref())
                .and_then(|r| r["model"].as_str().map(str::to_owned))
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "replay".to_owned());
    ModelsConfig {
        providers: vec![ProviderConfig {
            name: "replay".to_owned(),
            protocol,
            base_url: base_url.to_owned(),
            api_key_env: None,
            api_key_keyring: None,
            api_key_file: None,
            locality: Some(Locality::Local),
            timeout_ms: 30_000,
        }],
        tiers: vec![TierConfig {
            tier: Tier::LocalSmall,
            provider: "replay".to_owned(),
            model,
            capability: 1.0,
            typical_latency_ms: 100,
            max_tokens: input.map_or(512, |i| i.max_tokens.max(1)),
            native_tools: true,
            temperature: input.map_or(0.7, |i| i.temperature),
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opticlaw_models::BudgetExceeded;

    /// The semantic cache layer with the real all-MiniLM-L6-v2 (fetched by
    /// `scripts/fetch-embedding-model`, as `scripts/test` does; skipped
    /// with a note when it is absent): a paraphrase hits, an unrelated
    /// request and a different city miss, a changed source invalidates.
    #[cfg(feature = "embeddings")]
    #[tokio::test]
    async fn semantic_cache_with_minilm_matches_paraphrases_only() {
        use opticlaw_models::ContextSource;
        if opticlaw_memory::embed::find_model_dir().is_none() {
            eprintln!("skipped: no embedding model (run scripts/fetch-embedding-model)");
            return;
        }
        let trace = Trace::repeating("Sunny and 21 °C.");
        let server = ReplayServer::start(trace.clone()).await.unwrap();
        let mut models = replay_config(&trace, &server.base_url());
        models.cache.semantic = true;
        let embedder = semantic_embedder(&models.cache).unwrap();
        let providers = Providers::from_config(&models).unwrap();
        let router = ModelRouter::new(models).unwrap().with_embedder(embedder);
        let mut task = Task::new("t", "alice", opticlaw_models::DEFAULT_DOMAIN, 0.2);
        task.context = vec![ContextSource {
            source_id: "weather".into(),
            version: "1".into(),
        }];
        let ask = |text: &str| ModelAnswerer::request_with_memory(text, None);
        let mut calls = Vec::new();
        for text in [
            "What's the weather like in Paris today?",
            "How is the weather in Paris today?",
            "Write a short poem about my cat",
            "What's the weather like in London today?",
        ] {
            let outcome = router.complete(&task, &ask(text), &providers).await;
            let done = outcome.result.unwrap();
            calls.push((text, done.from_cache, done.similarity));
        }
        eprintln!("semantic cache with MiniLM: {calls:?}");
        assert_eq!(
            calls.iter().map(|c| c.1).collect::<Vec<_>>(),
            [false, true, false, false],
            "{calls:?}"
        );
        assert_eq!(server.request_count(), 3);
        assert!(router.invalidate_source("weather") >= 1);
        let again = router
            .complete(
                &task,
                &ask("How is the weather in Paris today?"),
                &providers,
            )
            .await;
        assert!(!again.result.unwrap().from_cache);
        assert_eq!(server.request_count(), 4);
    }

    #[test]
    fn replay_config_takes_protocol_and_model_from_the_trace() {
        let trace: Trace = serde_json::from_str(
            r#"{ "name": "t", "turns": [ { "protocol": "openai_compatible",
                 "input": { "model": "m1", "messages": [], "max_tokens": 64, "temperature": 0.2 },
                 "reply": { "text": "hi" } } ] }"#,
        )
        .unwrap();
        let config = replay_config(&trace, "http://127.0.0.1:9");
        assert_eq!(config.providers[0].protocol, Protocol::OpenaiCompatible);
        assert_eq!(config.tiers[0].model, "m1");
        assert_eq!(config.tiers[0].max_tokens, 64);
        assert!(ModelRouter::new(config).is_ok());

        let bare: Trace =
            serde_json::from_str(r#"{ "name": "t", "turns": [ { "reply": { "text": "hi" } } ] }"#)
                .unwrap();
        let config = replay_config(&bare, "http://127.0.0.1:9");
        assert_eq!(config.providers[0].protocol, Protocol::Ollama);
        assert_eq!(config.tiers[0].model, "replay");
    }

    #[test]
    fn replay_spec_needs_the_prefix_and_a_file() {
        assert_eq!(
            replay_path("replay:/tmp/t.json").unwrap(),
            Path::new("/tmp/t.json")
        );
        assert!(replay_path("gpt-4o").is_err());
        assert!(replay_path("replay:").is_err());
    }

    #[test]
    fn user_messages_say_what_happened_and_what_to_do() {
        let budget = ModelError::Budget(BudgetExceeded {
            scope: "daily".into(),
            setting: "daily_usd",
            day: "2026-01-01".into(),
            spent_usd: 5.0,
            cap_usd: 5.0,
            needed_usd: 0.01,
        });
        let text = user_message(&budget);
        assert!(
            text.contains("budget reached") && text.contains("models.budget.daily_usd"),
            "{text}"
        );
        let down = ModelError::Exhausted {
            tried: 2,
            last: Box::new(ModelError::Timeout {
                provider: "ollama".into(),
                after_ms: 300,
            }),
        };
        let text = user_message(&down);
        assert!(
            text.contains("all 2 models") && text.contains("no reply within 300 ms"),
            "{text}"
        );
        let open =
            ModelError::NoRoute("every provider in the chain has an open circuit breaker".into());
        assert!(user_message(&open).contains("try again shortly"));
    }
}
