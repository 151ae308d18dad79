//! Providers: one module per wire protocol, one [`Provider`] trait.
//!
//! [`HttpProvider`] speaks any of the [`Protocol`]s over HTTP and turns the
//! reply into a stream of [`ChatDelta`]s; [`collect`] assembles a
//! [`ChatResponse`] from it.

pub mod anthropic;
pub mod framing;
pub mod ollama;
pub mod openai;
mod wire;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::secret::{Secret, SecretSource};
use crate::types::{ChatDelta, ChatRequest, ChatResponse, FinishReason, ToolSpec, Usage};
use framing::{Frame, Framer, Framing};

/// A boxed future, so [`Provider`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A streamed reply. It ends with [`ChatDelta::Done`], or with an error.
pub type DeltaStream = BoxStream<'static, Result<ChatDelta, ModelError>>;

/// Where a provider runs: private data may only go to local ones (unless the
/// user allowed otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locality {
    Local,
    Cloud,
}

/// A model provider.
pub trait Provider: Send + Sync {
    /// The configured name (`ollama`, `openai`, ...), used in errors and records.
    fn name(&self) -> &str;
    fn locality(&self) -> Locality;
    /// Sends `request` and streams the reply.
    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<DeltaStream, ModelError>>;
}

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `POST /api/chat`, NDJSON.
    Ollama,
    /// `POST /v1/chat/completions`, SSE: llama.cpp server, LM Studio, vLLM.
    OpenaiCompatible,
    /// OpenAI's own API (same protocol, `max_completion_tokens`).
    Openai,
    /// `POST /v1/messages`, SSE events.
    Anthropic,
}

impl Protocol {
    /// The request path, appended to the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::Ollama => ollama::PATH,
            Self::OpenaiCompatible | Self::Openai => openai::PATH,
            Self::Anthropic => anthropic::PATH,
        }
    }

    /// The JSON body this protocol sends for `request`.
    pub fn body(self, request: &ChatRequest) -> serde_json::Value {
        match self {
            Self::Ollama => ollama::body(request),
            Self::OpenaiCompatible => openai::body(request, openai::Dialect::Compatible),
            Self::Openai => openai::body(request, openai::Dialect::OpenAi),
            Self::Anthropic => anthropic::body(request),
        }
    }

    /// Where a provider of this protocol runs unless configured otherwise.
    pub fn default_locality(self) -> Locality {
        match self {
            Self::Ollama | Self::OpenaiCompatible => Locality::Local,
            Self::Openai | Self::Anthropic => Locality::Cloud,
        }
    }

    fn framing(self, streamed: bool) -> Framing {
        match self {
            Self::Ollama => Framing::Ndjson,
            _ if streamed => Framing::Sse,
            // A whole JSON body is handed over as one "line".
            _ => Framing::Ndjson,
        }
    }
}

/// One provider's configuration (`[[models.providers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub protocol: Protocol,
    /// e.g. `http://127.0.0.1:11434`, `https://api.openai.com`.
    pub base_url: String,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Name of the OS keyring entry holding the API key (see
    /// [`crate::secret`]).
    #[serde(default)]
    pub api_key_keyring: Option<String>,
    /// File (mode 0600) holding the API key.
    #[serde(default)]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Overrides [`Protocol::default_locality`] (a vLLM on another machine is
    /// not local).
    #[serde(default)]
    pub locality: Option<Locality>,
    /// Limit for the reply to start, and between two pieces of a stream.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    60_000
}

impl ProviderConfig {
    /// Where the key comes from, if the provider needs one.
    pub fn key_source(&self) -> Option<SecretSource> {
        match (&self.api_key_env, &self.api_key_keyring, &self.api_key_file) {
            (Some(var), _, _) => Some(SecretSource::Env(var.clone())),
            (None, Some(name), _) => Some(SecretSource::Keyring(name.clone())),
            (None, None, Some(path)) => Some(SecretSource::File(path.clone())),
            (None, None, None) => None,
        }
    }
}

/// A provider over HTTP speaking one [`Protocol`].
pub struct HttpProvider {
    name: String,
    protocol: Protocol,
    url: String,
    key: Option<Secret>,
    locality: Locality,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("url", &self.url)
            .field("key", &self.key)
            .finish()
    }
}

impl HttpProvider {
    /// Builds the provider, loading its key if one is configured.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, ModelError> {
        let key = config.key_source().map(|s| s.load()).transpose()?;
        Ok(Self::new(config, key))
    }

    /// Builds the provider with an already loaded key.
    pub fn new(config: &ProviderConfig, key: Option<Secret>) -> Self {
        Self {
            name: config.name.clone(),
            protocol: config.protocol,
            url: format!(
                "{}{}",
                config.base_url.trim_end_matches('/'),
                config.protocol.path()
            ),
            key,
            locality: config
                .locality
                .unwrap_or(config.protocol.default_locality()),
            timeout: Duration::from_millis(config.timeout_ms),
            client: no_idle_pool_client(),
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.scrub(text),
            None => text.to_owned(),
        }
    }

    fn transport(&self, err: reqwest::Error) -> ModelError {
        if err.is_timeout() {
            return ModelError::Timeout {
                provider: self.name.clone(),
                after_ms: self.timeout.as_millis() as u64,
            };
        }
        let err = err.without_url();
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            detail.push_str(": ");
            detail.push_str(&inner.to_string());
            source = inner.source();
        }
        ModelError::Transport {
            provider: self.name.clone(),
            detail: self.scrub(&detail),
        }
    }

    async fn send(&self, request: &ChatRequest) -> Result<reqwest::Response, ModelError> {
        let body = self.protocol.body(request);
        let mut builder = self.client.post(&self.url).json(&body);
        match (self.protocol, &self.key) {
            (Protocol::Anthropic, key) => {
                builder = builder.header("anthropic-version", anthropic::VERSION);
                if let Some(key) = key {
                    builder = builder.header("x-api-key", key.expose());
                }
            }
            (_, Some(key)) => builder = builder.bearer_auth(key.expose()),
            (_, None) => {}
        }
        tracing::debug!(provider = %self.name, model = %request.model, stream = request.stream, "model request");
        let response = tokio::time::timeout(self.timeout, builder.send())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|err| self.transport(err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.as_u16() == 429 {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(ModelError::RateLimited {
                provider: self.name.clone(),
                retry_after,
            });
        }
        let text = tokio::time::timeout(self.timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut body: String = text.chars().take(300).collect();
        body = self.scrub(&body);
        // A key split by the cut would survive scrubbing; cut it out too.
        if let Some(key) = &self.key {
            let k = key.expose();
            for len in (8.min(k.len())..k.len()).rev() {
                if body.ends_with(&k[..len]) {
                    body.truncate(body.len() - len);
                    break;
                }
            }
        }
        Err(ModelError::Http {
            provider: self.name.clone(),
            status: status.as_u16(),
            body,
        })
    }

    fn timed_out(&self) -> ModelError {
        ModelError::Timeout {
            provider: self.name.clone(),
            after_ms: self.timeout.as_millis() as u64,
        }
    }
}

enum AnyDecoder {
    Ollama(ollama::Decoder),
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl AnyDecoder {
    fn new(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Ollama => Self::Ollama(Default::default()),
            Protocol::Openai | Protocol::OpenaiCompatible => Self::OpenAi(Default::default()),
            Protocol::Anthropic => Self::Anthropic(Default::default()),
        }
    }
    fn on_frame(&mut self, provider: &str, frame: Frame) -> wire::Decoded {
        match self {
            Self::Ollama(d) => d.on_frame(provider, frame),
            Self::OpenAi(d) => d.on_frame(provider, frame),
            Self::Anthropic(d) => d.on_frame(provider, frame),
        }
    }
    fn is_done(&self) -> bool {
        match self {
            Self::Ollama(d) => d.is_done(),
            Self::OpenAi(d) => d.is_done(),
            Self::Anthropic(d) => d.is_done(),
        }
    }
}

struct StreamState {
    provider: String,
    body: BoxStream<'static, Result<Vec<u8>, reqwest::Error>>,
    framer: Framer,
    decoder: AnyDecoder,
    pending: std::collections::VecDeque<ChatDelta>,
    idle: Duration,
    ended: bool,
    whole: Option<Vec<u8>>,
}

impl StreamState {
    fn decode(&mut self, frames: Vec<Frame>) -> Result<(), ModelError> {
        for frame in frames {
            if self.decoder.is_done() {
                break;
            }
            let deltas = self.decoder.on_frame(&self.provider, frame)?;
            self.pending.extend(deltas);
        }
        Ok(())
    }

    async fn next(mut self) -> Option<(Result<ChatDelta, ModelError>, Self)> {
        loop {
            if let Some(delta) = self.pending.pop_front() {
                return Some((Ok(delta), self));
            }
            if self.ended {
                return None;
            }
            let fail = |mut state: Self, err: ModelError| {
                state.ended = true;
                state.pending.clear();
                Some((Err(err), state))
            };
            match tokio::time::timeout(self.idle, self.body.next()).await {
                Err(_) => {
                    let err = ModelError::Timeout {
                        provider: self.provider.clone(),
                        after_ms: self.idle.as_millis() as u64,
                    };
                    return fail(self, err);
                }
                Ok(Some(Ok(chunk))) => {
                    let result = match &mut self.whole {
                        Some(whole) => {
                            whole.extend_from_slice(&chunk);
                            Ok(())
                        }
                        None => {
                            let frames = self.framer.push(&chunk);
                            self.decode(frames)
                        }
                    };
                    if let Err(err) = result {
                        return fail(self, err);
                    }
                }
                Ok(Some(Err(_))) => {
                    let err = ModelError::StreamDropped {
                        provider: self.provider.clone(),
                    };
                    return fail(self, err);
                }
                Ok(None) => {
                    let frames = match self.whole.take() {
                        Some(whole) => {
                            vec![Frame::Line(String::from_utf8_lossy(&whole).into_owned())]
                        }
                        None => self.framer.finish(),
                    };
                    if let Err(err) = self.decode(frames) {
                        return fail(self, err);
                    }
                    self.ended = true;
                    if !self.decoder.is_done() {
                        let err = ModelError::StreamDropped {
                            provider: self.provider.clone(),
                        };
                        return fail(self, err);
                    }
                }
            }
        }
    }
}

impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn locality(&self) -> Locality {
        self.locality
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<DeltaStream, ModelError>> {
        Box::pin(async move {
            let response = self.send(request).await?;
            let body = response
                .bytes_stream()
                .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
                .boxed();
            let whole = (!request.stream && self.protocol != Protocol::Ollama).then(Vec::new);
            let state = StreamState {
                provider: self.name.clone(),
                body,
                framer: Framer::new(self.protocol.framing(request.stream)),
                decoder: AnyDecoder::new(self.protocol),
                pending: Default::default(),
                idle: self.timeout,
                ended: false,
                whole,
            };
            Ok(futures_util::stream::unfold(state, StreamState::next).boxed())
        })
    }
}

/// Reads a stream to its end and assembles the reply.
pub async fn collect(provider: &str, mut stream: DeltaStream) -> Result<ChatResponse, ModelError> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut usage = Usage::default();
    while let Some(delta) = stream.next().await {
        match delta? {
            ChatDelta::Text(piece) => text.push_str(&piece),
            ChatDelta::ToolCall(call) => tool_calls.push(call),
            ChatDelta::Usage(u) => {
                usage.input_tokens = u.input_tokens.max(usage.input_tokens);
                usage.output_tokens = u.output_tokens.max(usage.output_tokens);
            }
            ChatDelta::Done(finish_reason) => {
                return Ok(ChatResponse {
                    text,
                    tool_calls,
                    usage,
                    finish_reason,
                });
            }
        }
    }
    Err(ModelError::StreamDropped {
        provider: provider.to_owned(),
    })
}

/// Checks each tool call against the tools offered: the tool must exist,
/// its arguments must be an object holding every `required` property, and
/// each property whose schema names a JSON `type` must have that type.
pub fn validate_tool_calls(
    provider: &str,
    tools: &[ToolSpec],
    response: &ChatResponse,
) -> Result<(), ModelError> {
    for call in &response.tool_calls {
        let invalid = |detail: String| ModelError::InvalidToolArguments {
            provider: provider.to_owned(),
            tool: call.name.clone(),
            detail,
        };
        let spec = tools
            .iter()
            .find(|t| t.name == call.name)
            .ok_or_else(|| invalid("the model called a tool it was not offered".into()))?;
        let args = call
            .arguments
            .as_object()
            .ok_or_else(|| invalid("arguments are not an object".into()))?;
        for required in spec.parameters["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap_or("");
            if !args.contains_key(key) {
                return Err(invalid(format!("missing required argument `{key}`")));
            }
        }
        for (key, value) in args {
            let Some(expected) = spec.parameters["properties"][key]["type"].as_str() else {
                continue;
            };
            let ok = match expected {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => true,
            };
            if !ok {
                return Err(invalid(format!("argument `{key}` should be a {expected}")));
            }
        }
    }
    Ok(())
}

/// Whether a finished reply is a refusal.
pub fn is_refusal(response: &ChatResponse) -> bool {
    response.finish_reason == FinishReason::Refusal
}

/// An HTTP client that keeps no idle connections: a pooled idle connection
/// comes with a reaper timer that would wake an otherwise idle daemon, and a
/// personal assistant's model calls are rare enough to pay a new connection.
pub fn no_idle_pool_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
