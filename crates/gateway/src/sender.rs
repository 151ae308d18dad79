//! Delivery of rendered parts to platform APIs. Each part passes the
//! idempotency ledger (never twice), the lazy token buckets (never faster than
//! the platform allows), then one HTTP call whose answer is read the way the
//! platform documents it: Telegram's `parameters.retry_after`, Slack's and
//! Matrix's `Retry-After`, Discord's `retry_after` (seconds, fractional),
//! WhatsApp's throughput error codes. A server-imposed wait becomes a single
//! delay: short ones are slept once inline, long ones are returned as
//! [`SendError::RateLimited`] for the daemon's one-shot scheduler.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use crate::json_client::JsonClient;
use crate::ratelimit::{BucketSpec, RateLimiter, default_limits};
use crate::{Channel, GatewayConfig, LedgerState, OutboundMessage, Platform, SendLedger};

/// What happened to one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// Delivered now; the platform's message id when it returned one.
    Sent { remote_id: Option<String> },
    /// Delivered by an earlier attempt; not sent again.
    AlreadySent { remote_id: Option<String> },
    /// An earlier attempt may have delivered it and the platform cannot
    /// deduplicate: skipped rather than risk a double send.
    SkippedInDoubt,
}

/// The outcome of delivering every part of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `(idempotency key, outcome)` per part, in order.
    pub parts: Vec<(String, PartOutcome)>,
}

/// Why delivery stopped. Parts before `part` were handled; retry from `part`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Wait `retry_after`, then deliver again from `part` (one-shot timer).
    #[error("{platform} rate limited at part {part}; retry after {retry_after:?}")]
    RateLimited {
        platform: Platform,
        part: usize,
        retry_after: Duration,
    },
    /// The platform refused the call; retrying the same call will not help.
    #[error("{platform} refused part {part} with HTTP {status} ({code}): {detail}")]
    Rejected {
        platform: Platform,
        part: usize,
        status: u16,
        code: String,
        detail: String,
    },
    /// The call failed in transit. `in_doubt` when it may have been delivered.
    #[error("{platform} transport error at part {part} (in doubt: {in_doubt}): {detail}")]
    Transport {
        platform: Platform,
        part: usize,
        in_doubt: bool,
        detail: String,
    },
    /// A local file could not be uploaded (not beneath `upload_dirs`, over
    /// the platform's limit, unreadable); retrying will not help.
    #[error("{platform} upload refused at part {part}: {detail}")]
    Upload {
        platform: Platform,
        part: usize,
        detail: String,
    },
    /// The platform, or the credential this call needs, is not configured.
    #[error("{platform} is not configured for sending: {detail}")]
    NotConfigured { platform: Platform, detail: String },
}

/// How a platform answered one call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    Delivered(Option<String>),
    RateLimited {
        after: Duration,
        global: bool,
    },
    Rejected {
        status: u16,
        code: String,
        detail: String,
    },
}

/// How long one JSON call may take before it is given up (in doubt).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends rendered parts to the platforms' APIs.
pub struct Sender<L> {
    /// Uploads (multipart, streamed files), and JSON calls through a proxy.
    client: reqwest::Client,
    /// Every other call: a reply's JSON.
    json: JsonClient,
    config: GatewayConfig,
    /// One per account: each bot, app or number has its own quota.
    limiters: BTreeMap<Channel, RateLimiter>,
    ledger: Arc<L>,
    max_inline_wait: Duration,
    deferred_completion: bool,
    bases: BaseUrls,
}

/// The platforms' API base URLs, each parsed once: a send then parses only
/// its path, where parsing the whole URL (scheme, host, port) was a fifth
/// of the HTTP client's work per message.
struct BaseUrls(HashMap<String, ParsedBase>);

struct ParsedBase {
    url: reqwest::Url,
    /// The serialised URL without its path's trailing `/`.
    prefix: String,
}

impl BaseUrls {
    fn new<'a>(bases: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            bases
                .into_iter()
                .filter_map(|base| {
                    let url = reqwest::Url::parse(base).ok()?;
                    let prefix = url.as_str().trim_end_matches('/').to_owned();
                    Some((base.to_owned(), ParsedBase { url, prefix }))
                })
                .collect(),
        )
    }

    /// `base` + `/` + `path`, as parsing `"{base}/{path}"` would give.
    fn join(&self, base: &str, path: &str) -> Result<String, String> {
        let joined = || {
            reqwest::Url::parse(&format!("{}/{}", base.trim_end_matches('/'), path))
                .map(String::from)
                .map_err(|err| err.to_string())
        };
        let Some(parsed) = self.0.get(base) else {
            return joined();
        };
        let url = &parsed.url;
        if url.query().is_some() || url.fragment().is_some() || path.contains(['?', '#']) {
            return joined();
        }
        if kept_as_is(path) {
            // Nothing to encode or resolve: the URL parser would copy it.
            return Ok(format!("{}/{path}", parsed.prefix));
        }
        let mut url = url.clone();
        let mut full = String::with_capacity(url.path().len() + 1 + path.len());
        full.push_str(url.path().trim_end_matches('/'));
        full.push('/');
        full.push_str(path);
        url.set_path(&full);
        Ok(url.into())
    }
}

/// Whether the URL parser leaves `path` exactly as written: printable
/// ASCII outside the characters it percent-encodes in a path (WHATWG URL
/// "path percent-encode set") or reads as a separator (`\`), and no
/// dot segment for it to resolve. Anything else takes the full parse.
fn kept_as_is(path: &str) -> bool {
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"\"#<>?`{}\\^|".contains(&b));
    plain
        && path.split('/').all(|segment| {
            let lower = segment.to_ascii_lowercase();
            !matches!(lower.as_str(), "." | "..") && !lower.contains("%2e")
        })
}

impl<L: SendLedger> Sender<L> {
    /// A sender using `client` (build it with TLS for real platforms), the
    /// platform sections of `config`, and the daemon's ledger.
    pub fn new(client: reqwest::Client, config: GatewayConfig, ledger: Arc<L>) -> Self {
        let bases = BaseUrls::new(
            (config.telegram.iter().map(|c| c.api_base.as_str()))
                .chain(config.slack.iter().map(|c| c.api_base.as_str()))
                .chain(config.discord.iter().map(|c| c.api_base.as_str()))
                .chain(config.whatsapp.iter().map(|c| c.api_base.as_str()))
                .chain(config.matrix.iter().map(|c| c.homeserver_url.as_str())),
        );
        let limiters = config
            .accounts()
            .into_iter()
            .map(|(channel, _)| {
                let (global, per_key) = if config.send_rate_limits {
                    default_limits(channel.platform)
                } else {
                    let unlimited = BucketSpec::new(f64::MAX, f64::MAX);
                    (unlimited, unlimited)
                };
                (channel, RateLimiter::new(global, per_key))
            })
            .collect();
        Self {
            json: JsonClient::new(CALL_TIMEOUT, client.clone()),
            client,
            config,
            limiters,
            ledger,
            max_inline_wait: Duration::from_secs(5),
            deferred_completion: false,
            bases,
        }
    }

    /// Longest wait slept inline; longer waits are returned to the caller.
    pub fn with_max_inline_wait(mut self, wait: Duration) -> Self {
        self.max_inline_wait = wait;
        self
    }

    /// Leaves marking delivered parts `sent` to the caller, who records the
    /// returned [`Delivery`] in one write with its own bookkeeping (the
    /// daemon: with the outbox's delivered mark), saving a store round trip
    /// per part. Still never sends twice: a part left `pending` by a crash
    /// is in doubt, and in-doubt parts are skipped (or, on Matrix, resent
    /// with the same txnId, which the homeserver drops).
    pub fn with_deferred_completion(mut self) -> Self {
        self.deferred_completion = true;
        self
    }

    /// Replaces the rate limits of a platform's `default` account.
    pub fn with_limiter(mut self, platform: Platform, limiter: RateLimiter) -> Self {
        self.limiters
            .insert(Channel::default_for(platform), limiter);
        self
    }

    /// Delivers the parts of one reply in order.
    pub async fn deliver(&self, parts: &[OutboundMessage]) -> Result<Delivery, SendError> {
        let mut outcomes = Vec::with_capacity(parts.len());
        for message in parts {
            let outcome = self.deliver_part(message).await?;
            outcomes.push((message.idempotency_key.clone(), outcome));
        }
        Ok(Delivery { parts: outcomes })
    }

    async fn deliver_part(&self, message: &OutboundMessage) -> Result<PartOutcome, SendError> {
        let platform = message.platform;
        let key = &message.idempotency_key;
        if let Some(outcome) = self.claim(platform, key).await {
            return Ok(outcome);
        }
        let channel = Channel::new(platform, &message.account);
        let Some(limiter) = self.limiters.get(&channel) else {
            self.ledger.release(key).await;
            return Err(SendError::NotConfigured {
                platform,
                detail: format!("no [{platform}] account `{}`", message.account),
            });
        };
        let mut slept = false;
        loop {
            if let Err(wait) = limiter.try_acquire(&message.rate_key, Instant::now()) {
                if slept || wait > self.max_inline_wait {
                    self.ledger.release(key).await;
                    return Err(SendError::RateLimited {
                        platform,
                        part: message.part,
                        retry_after: wait,
                    });
                }
                if let Some(outcome) = self.wait_unclaimed(platform, key, wait).await {
                    return Ok(outcome);
                }
                slept = true;
                continue;
            }
            match self.call(message).await {
                Ok(CallResult::Delivered(remote_id)) => {
                    if !self.deferred_completion {
                        self.ledger.complete(key, remote_id.clone()).await;
                    }
                    return Ok(PartOutcome::Sent { remote_id });
                }
                Ok(CallResult::RateLimited { after, global }) => {
                    limiter.block(&message.rate_key, global, Instant::now(), after);
                    if slept || after > self.max_inline_wait {
                        self.ledger.release(key).await;
                        return Err(SendError::RateLimited {
                            platform,
                            part: message.part,
                            retry_after: after,
                        });
                    }
                    if let Some(outcome) = self.wait_unclaimed(platform, key, after).await {
                        return Ok(outcome);
                    }
                    slept = true;
                }
                Ok(CallResult::Rejected {
                    status,
                    code,
                    detail,
                }) => {
                    self.ledger.release(key).await;
                    return Err(SendError::Rejected {
                        platform,
                        part: message.part,
                        status,
                        code,
                        detail,
                    });
                }
                Err(err) => {
                    if let SendError::Transport {
                        in_doubt: false, ..
                    }
                    | SendError::NotConfigured { .. }
                    | SendError::Upload { .. } = err
                    {
                        self.ledger.release(key).await;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Marks `key` begun in the ledger before its call; returns instead
    /// what to report when the part must not be sent.
    async fn claim(&self, platform: Platform, key: &str) -> Option<PartOutcome> {
        match self.ledger.begin(key).await {
            LedgerState::Fresh => None,
            LedgerState::Sent(remote_id) => Some(PartOutcome::AlreadySent { remote_id }),
            // Matrix deduplicates on the txnId, which is the key: resend.
            LedgerState::InDoubt if platform == Platform::Matrix => None,
            LedgerState::InDoubt => Some(PartOutcome::SkippedInDoubt),
        }
    }

    /// Waits out a rate limit with the part not begun: nothing was sent, so
    /// a crash during the wait must not leave it in doubt (and the reply
    /// lost). Claims it again after.
    async fn wait_unclaimed(
        &self,
        platform: Platform,
        key: &str,
        wait: Duration,
    ) -> Option<PartOutcome> {
        self.ledger.release(key).await;
        tokio::time::sleep(wait).await;
        self.claim(platform, key).await
    }

    fn endpoint(&self, message: &OutboundMessage) -> Result<(String, Option<String>), SendError> {
        let platform = message.platform;
        let missing = |detail: &str| SendError::NotConfigured {
            platform,
            detail: detail.to_owned(),
        };
        let join = |base: &str, path: &str| {
            self.bases
                .join(base, path)
                .map_err(|err| missing(&format!("`{base}` is not a URL: {err}")))
        };
        Ok(match platform {
            Platform::Telegram => {
                let c = self
                    .config
                    .telegram
                    .iter()
                    .find(|c| c.account == message.account)
                    .ok_or_else(|| {
                        missing(&format!("no [telegram] account `{}`", message.account))
                    })?;
                let path = format!("bot{}/{}", c.bot_token.expose(), message.path);
                (join(&c.api_base, &path)?, None)
            }
            Platform::Slack => {
                let c = self
                    .config
                    .slack
                    .iter()
                    .find(|c| c.account == message.account)
                    .ok_or_else(|| missing(&format!("no [slack] account `{}`", message.account)))?;
                (
                    join(&c.api_base, &message.path)?,
                    Some(format!("Bearer {}", c.bot_token.expose())),
                )
            }
            Platform::Discord => {
                let c = self
                    .config
                    .discord
                    .iter()
                    .find(|c| c.account == message.account)
                    .ok_or_else(|| {
                        missing(&format!("no [discord] account `{}`", message.account))
                    })?;
                let auth = if message.path.starts_with("channels/") {
                    let token = c
                        .bot_token
                        .as_ref()
                        .ok_or_else(|| missing("no bot_token"))?;
                    Some(format!("Bot {}", token.expose()))
                } else {
                    None
                };
                (join(&c.api_base, &message.path)?, auth)
            }
            Platform::WhatsApp => {
                let c = self
                    .config
                    .whatsapp
                    .iter()
                    .find(|c| c.account == message.account)
                    .ok_or_else(|| {
                        missing(&format!("no [whatsapp] account `{}`", message.account))
                    })?;
                (
                    join(&c.api_base, &message.path)?,
                    Some(format!("Bearer {}", c.access_token.expose())),
                )
            }
            Platform::Matrix => {
                let c = self
                    .config
                    .matrix
                    .iter()
                    .find(|c| c.account == message.account)
                    .ok_or_else(|| {
                        missing(&format!("no [matrix] account `{}`", message.account))
                    })?;
                (
                    join(&c.homeserver_url, &message.path)?,
                    Some(format!("Bearer {}", c.as_token.expose())),
                )
            }
        })
    }

    async fn call(&self, message: &OutboundMessage) -> Result<CallResult, SendError> {
        let (url, auth) = self.endpoint(message)?;
        if let Some(upload) = &message.upload {
            let uploader = crate::upload::Uploader {
                client: &self.client,
                message,
                upload,
                url,
                auth,
            };
            return uploader.call(&self.config.upload_dirs).await;
        }
        let method = match message.method.as_str() {
            "PUT" => Method::PUT,
            // Discord edits an interaction's message with PATCH.
            "PATCH" => Method::PATCH,
            _ => Method::POST,
        };
        let body = serde_json::to_vec(&message.body).map_err(|err| SendError::Transport {
            platform: message.platform,
            part: message.part,
            in_doubt: false,
            detail: format!("the body is not JSON: {err}"),
        })?;
        let response = self
            .json
            .call(method, &url, auth.as_deref(), body)
            .await
            .map_err(|failure| SendError::Transport {
                platform: message.platform,
                part: message.part,
                in_doubt: failure.in_doubt(),
                // hyper's errors carry no URL (Telegram's holds the bot token)
                detail: failure.to_string(),
            })?;
        let (status, headers) = (response.status, response.headers);
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Ok(classify(message.platform, status, &headers, &body))
    }
}

/// Parses a `Retry-After` header: delay-seconds (integer or fractional) or an HTTP-date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

fn secs_f64(value: &Value) -> Option<Duration> {
    value
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Reads a platform's answer to one call.
pub fn classify(platform: Platform, status: u16, headers: &HeaderMap, body: &Value) -> CallResult {
    let ok_status = (200..300).contains(&status);
    let header_wait = parse_retry_after(headers);
    // 502/503/504: the platform's front end did not take the call, so it
    // is safe to send again; the platforms say to retry later (Slack:
    // <https://api.slack.com/apis/rate-limits>, Telegram answers 5xx while
    // restarting). Waited out like a rate limit: one one-shot delay.
    if matches!(status, 502..=504) {
        return CallResult::RateLimited {
            after: header_wait.unwrap_or(Duration::from_secs(1)),
            global: true,
        };
    }
    match platform {
        Platform::Telegram => {
            if body["ok"] == Value::Bool(true) {
                return CallResult::Delivered(
                    body["result"]["message_id"].as_i64().map(|i| i.to_string()),
                );
            }
            if status == 429 || body["error_code"] == 429 {
                let after = secs_f64(&body["parameters"]["retry_after"])
                    .or(header_wait)
                    .unwrap_or(Duration::from_secs(1));
                return CallResult::RateLimited {
                    after,
                    global: false,
                };
            }
            CallResult::Rejected {
                status,
                code: text(&body["error_code"]),
                detail: text(&body["description"]),
            }
        }
        Platform::Slack => {
            if status == 429 {
                let after = header_wait.unwrap_or(Duration::from_secs(1));
                return CallResult::RateLimited {
                    after,
                    global: false,
                };
            }
            if ok_status && body["ok"] == Value::Bool(true) {
                return CallResult::Delivered(body["ts"].as_str().map(str::to_owned));
            }
            CallResult::Rejected {
                status,
                code: text(&body["error"]),
                detail: text(&body["error"]),
            }
        }
        Platform::Discord => {
            if status == 429 {
                let after = secs_f64(&body["retry_after"])
                    .or(header_wait)
                    .unwrap_or(Duration::from_secs(1));
                let global = body["global"] == Value::Bool(true);
                return CallResult::RateLimited { after, global };
            }
            if ok_status {
                return CallResult::Delivered(body["id"].as_str().map(str::to_owned));
            }
            CallResult::Rejected {
                status,
                code: text(&body["code"]),
                detail: text(&body["message"]),
            }
        }
        Platform::WhatsApp => {
            if ok_status {
                return CallResult::Delivered(
                    body["messages"][0]["id"].as_str().map(str::to_owned),
                );
            }
            let code = body["error"]["code"].as_i64().unwrap_or_default();
            // Throughput and pair-rate errors (Cloud API error codes).
            if status == 429 || matches!(code, 4 | 80007 | 130429 | 131048 | 131056) {
                let default = if code == 131056 { 6 } else { 60 };
                let after = header_wait.unwrap_or(Duration::from_secs(default));
                return CallResult::RateLimited {
                    after,
                    global: code != 131056,
                };
            }
            CallResult::Rejected {
                status,
                code: code.to_string(),
                detail: text(&body["error"]["message"]),
            }
        }
        Platform::Matrix => {
            if ok_status {
                return CallResult::Delivered(body["event_id"].as_str().map(str::to_owned));
            }
            if status == 429 || body["errcode"] == "M_LIMIT_EXCEEDED" {
                let after = header_wait
                    .or_else(|| body["retry_after_ms"].as_u64().map(Duration::from_millis))
                    .unwrap_or(Duration::from_secs(1));
                return CallResult::RateLimited {
                    after,
                    global: false,
                };
            }
            CallResult::Rejected {
                status,
                code: text(&body["errcode"]),
                detail: text(&body["error"]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_send_url_is_the_base_and_the_path_as_one_parse_would_give() {
        let bases = [
            "http://127.0.0.1:8081",
            "https://api.telegram.org/",
            "https://graph.facebook.com/v21.0",
            "https://matrix.example.org/prefix/",
        ];
        let paths = [
            "bot123456:TEST/sendMessage",
            "channels/1234567890/messages",
            "_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message/oc1-00ff",
            "109876/messages",
            "chat.postMessage",
            "a path/with spaces",
            "webhooks/1/aW50ZXJhY3Rpb24:abc_-~!$&'()*+,;=@/messages/@original",
            "x/./y/../z",
            "x/%2E%2e/y",
            r#"a\b/"q"/<t>/`{c}`/^|/%zz/café"#,
        ];
        // The platforms' own paths take the copy, not the parse.
        let copied: Vec<bool> = paths.iter().map(|path| kept_as_is(path)).collect();
        assert_eq!(
            copied,
            [
                true, true, true, true, true, false, true, false, false, false
            ]
        );
        let cache = BaseUrls::new(bases);
        for base in bases {
            for path in paths {
                let once =
                    reqwest::Url::parse(&format!("{}/{path}", base.trim_end_matches('/'))).unwrap();
                assert_eq!(
                    cache.join(base, path).unwrap(),
                    once.as_str(),
                    "{base} + {path}"
                );
            }
        }
        // Not parsed beforehand, or not a URL at all: parsed whole, or refused.
        assert_eq!(
            cache.join("http://other:1", "x").unwrap(),
            "http://other:1/x"
        );
        assert!(cache.join("not a url", "x").is_err());
    }

    proptest::proptest! {
        /// Any path, copied or parsed, joins as one parse of the whole URL
        /// would.
        #[test]
        fn any_path_joins_as_one_parse_would(
            path in r#"[a-zA-Z0-9./%:@!$&'()*+,;=_~\- "<>`{}^|\\é]{0,24}"#
        ) {
            // A whole parse drops trailing spaces; a path never ends in one.
            let path = path.trim_end();
            let base = "https://matrix.example.org/prefix/";
            let cache = BaseUrls::new([base]);
            let once = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
            proptest::prop_assert_eq!(cache.join(base, path).unwrap(), once.as_str());
        }
    }

    #[test]
    fn reads_each_platforms_rate_limit_answer() {
        let none = HeaderMap::new();
        let mut retry = HeaderMap::new();
        retry.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            classify(
                Platform::Telegram,
                429,
                &none,
                &json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}})
            ),
            CallResult::RateLimited {
                after: Duration::from_secs(3),
                global: false
            }
        );
        assert_eq!(
            classify(
                Platform::Slack,
                429,
                &retry,
                &json!({"ok": false, "error": "ratelimited"})
            ),
            CallResult::RateLimited {
                after: Duration::from_secs(7),
                global: false
            }
        );
        assert_eq!(
            classify(
                Platform::Discord,
                429,
                &none,
                &json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": true})
            ),
            CallResult::RateLimited {
                after: Duration::from_millis(250),
                global: true
            }
        );
        assert_eq!(
            classify(
                Platform::Matrix,
                429,
                &none,
                &json!({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500})
            ),
            CallResult::RateLimited {
                after: Duration::from_millis(1500),
                global: false
            }
        );
        assert!(matches!(
            classify(Platform::WhatsApp, 400, &none, &json!({"error": {"code": 131056, "message": "pair rate limit"}})),
            CallResult::RateLimited { after, .. } if after == Duration::from_secs(6)
        ));
    }

    #[test]
    fn slack_errors_arrive_with_http_200() {
        assert_eq!(
            classify(
                Platform::Slack,
                200,
                &HeaderMap::new(),
                &json!({"ok": false, "error": "msg_too_long"})
            ),
            CallResult::Rejected {
                status: 200,
                code: "msg_too_long".into(),
                detail: "msg_too_long".into()
            }
        );
    }
}
