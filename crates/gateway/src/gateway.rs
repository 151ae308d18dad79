//! The gateway proper: adapters built from config, plus the path every
//! verified event takes: allow-list and pairing, then the durable sink.
//! [`crate::webhook_router`] serves it over HTTP; the Telegram long-poll loop
//! calls [`Gateway::admit`] directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use opticlaw_core::{EventEnvelope, ResponsePacket};
use serde_json::{Value, json};

use crate::config::ConfigError;
use crate::pairing::{allow_listed, pairing_text};
use crate::platforms::discord::{DiscordAdapter, DiscordKeyError};
use crate::platforms::{matrix::MatrixAdapter, slack::SlackAdapter};
use crate::platforms::{telegram::TelegramAdapter, whatsapp::WhatsAppAdapter};
use crate::verify::sha256_hex;
use crate::{
    Accepted, Ack, AuditKind, AuditLog, AuditRecord, BridgeAdapter, Channel, EventSink,
    GatewayConfig, InboundError, InboundRequest, OutboundMessage, PairingNotice, PairingStore,
    Platform, RenderError, ReplyOrigin, SenderStatus, SinkError,
};

/// What happened to one verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Stored for processing.
    Stored,
    /// Already stored (a retry or replay); not processed again.
    Duplicate,
    /// From an unknown sender, who was sent (or shown) a pairing code.
    PairingSent { code: String },
    /// From a sender who already holds a live code; dropped silently.
    PairingPending,
    /// From a denied sender; dropped.
    Denied,
}

/// Why the gateway could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    DiscordKey(#[from] DiscordKeyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// An HTTP answer, independent of the web framework.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

/// The body of a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    Json(Value),
    Text(String),
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: ReplyBody::Json(body),
            retry_after: None,
        }
    }

    /// A JSON error naming the problem (and the field, for malformed input).
    pub fn error(
        platform: Option<Platform>,
        status: u16,
        code: &str,
        message: &str,
        field: Option<&str>,
    ) -> Self {
        let mut body = json!({"error": code, "message": message});
        if let Some(field) = field {
            body["field"] = json!(field);
        }
        if let Some(platform) = platform {
            body["platform"] = json!(platform.as_str());
        }
        if platform == Some(Platform::Matrix) {
            // Matrix standard error response
            let errcode = match status {
                401 => "M_UNAUTHORIZED",
                403 => "M_FORBIDDEN",
                413 => "M_TOO_LARGE",
                429 => "M_LIMIT_EXCEEDED",
                400 => "M_NOT_JSON",
                _ => "M_UNKNOWN",
            };
            body["errcode"] = json!(errcode);
        }
        Self::json(status, body)
    }
}

/// One configured account: its adapter, its event source and its allow-list.
struct Account {
    adapter: Box<dyn BridgeAdapter>,
    source: String,
    allow_from: Vec<String>,
}

/// The gateway: adapters plus the daemon's sink, audit log and pairing store.
pub struct Gateway<S, A, P> {
    config: GatewayConfig,
    accounts: BTreeMap<Channel, Account>,
    sink: Arc<S>,
    audit: Arc<A>,
    pairing: Arc<P>,
}

/// Where an event came from, for its audit records.
struct Origin<'a> {
    request: Option<&'a InboundRequest<'a>>,
    remote_addr: Option<String>,
}

impl<S: EventSink, A: AuditLog, P: PairingStore> Gateway<S, A, P> {
    /// Builds an adapter for each configured account.
    pub fn new(
        config: GatewayConfig,
        sink: Arc<S>,
        audit: Arc<A>,
        pairing: Arc<P>,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let skew = config.max_skew_secs;
        let mut adapters: Vec<(Channel, Vec<String>, Box<dyn BridgeAdapter>)> = Vec::new();
        let mut add = |platform, account: &str, allow: &[String], adapter| {
            adapters.push((Channel::new(platform, account), allow.to_vec(), adapter));
        };
        for c in &config.slack {
            let a = Box::new(SlackAdapter::new(c.clone(), skew));
            add(Platform::Slack, &c.account, &c.allow_from, a);
        }
        for c in &config.telegram {
            let a = Box::new(TelegramAdapter::new(c.clone()));
            add(Platform::Telegram, &c.account, &c.allow_from, a);
        }
        for c in &config.discord {
            let a = Box::new(DiscordAdapter::new(c.clone(), skew)?);
            add(Platform::Discord, &c.account, &c.allow_from, a);
        }
        for c in &config.whatsapp {
            let a = Box::new(WhatsAppAdapter::new(c.clone()));
            add(Platform::WhatsApp, &c.account, &c.allow_from, a);
        }
        for c in &config.matrix {
            let a = Box::new(MatrixAdapter::new(c.clone()));
            add(Platform::Matrix, &c.account, &c.allow_from, a);
        }
        let accounts = adapters
            .into_iter()
            .map(|(channel, allow_from, adapter)| {
                let account = Account {
                    adapter,
                    source: channel.source(),
                    allow_from,
                };
                (channel, account)
            })
            .collect();
        Ok(Self {
            config,
            accounts,
            sink,
            audit,
            pairing,
        })
    }

    /// The daemon's sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The adapter of a configured account.
    pub fn adapter(&self, channel: &Channel) -> Option<&dyn BridgeAdapter> {
        self.accounts.get(channel).map(|a| a.adapter.as_ref())
    }

    /// Configured accounts.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> + '_ {
        self.accounts.keys()
    }

    /// Renders a reply for the account that sends it: the adapter's parts,
    /// addressed to that account's credentials.
    pub fn render(
        &self,
        channel: &Channel,
        packet: &ResponsePacket,
        origin: Option<&ReplyOrigin>,
    ) -> Option<Result<Vec<OutboundMessage>, RenderError>> {
        let adapter = self.adapter(channel)?;
        Some(adapter.render(packet, origin).map(|mut parts| {
            for part in &mut parts {
                part.account.clone_from(&channel.account);
            }
            parts
        }))
    }

    /// Appends an audit record to the daemon's log.
    pub async fn audit(&self, record: AuditRecord) {
        self.audit.record(record).await;
    }

    /// Applies the allow-list and pairing state to one verified event and
    /// stores it, as the account's `source`, if its sender may talk.
    pub async fn admit(
        &self,
        channel: &Channel,
        mut event: EventEnvelope,
        now: DateTime<Utc>,
    ) -> Result<Admission, SinkError> {
        let Some(account) = self.accounts.get(channel) else {
            return Err(SinkError::Failed(format!("{channel} is not configured")));
        };
        event.source.clone_from(&account.source);
        let platform = channel.platform;
        if !allow_listed(&account.allow_from, &event.user_id) {
            let status = self
                .pairing
                .status(platform, &event.user_id, now)
                .await
                .map_err(|e| SinkError::Failed(e.to_string()))?;
            match status {
                SenderStatus::Approved => {}
                SenderStatus::Denied => return Ok(Admission::Denied),
                SenderStatus::Unknown | SenderStatus::Pending => {
                    let ticket = self
                        .pairing
                        .request(platform, &event.user_id, now)
                        .await
                        .map_err(|e| SinkError::Failed(e.to_string()))?;
                    if !ticket.fresh {
                        return Ok(Admission::PairingPending);
                    }
                    return Ok(Admission::PairingSent { code: ticket.code });
                }
            }
        }
        Ok(match self.sink.accept(event).await? {
            Accepted::Stored => Admission::Stored,
            Accepted::Duplicate => Admission::Duplicate,
        })
    }

    /// Admits events a long-poll receiver fetched (Telegram `getUpdates`,
    /// Matrix `/sync`): like a webhook's, minus the HTTP answer. Returns once
    /// every event is stored (or refused), so the caller may then advance
    /// its persisted cursor.
    pub async fn ingest(
        &self,
        channel: &Channel,
        events: Vec<EventEnvelope>,
        now: DateTime<Utc>,
    ) -> Result<(), SinkError> {
        let origin = Origin {
            request: None,
            remote_addr: None,
        };
        for event in events {
            self.admit_one(channel, event, now, &origin).await?;
        }
        Ok(())
    }

    /// Admits one event and sends the pairing notice or audit record its
    /// admission calls for. Returns the inline answer to give, if any.
    async fn admit_one(
        &self,
        channel: &Channel,
        event: EventEnvelope,
        now: DateTime<Utc>,
        origin: &Origin<'_>,
    ) -> Result<Option<Ack>, SinkError> {
        let platform = channel.platform;
        let Some(account) = self.accounts.get(channel) else {
            return Err(SinkError::Failed(format!("{channel} is not configured")));
        };
        let adapter = account.adapter.as_ref();
        let user_id = event.user_id.clone();
        let thread_id = event.thread_id.clone();
        let event_id = event.event_id.clone();
        let admission = self.admit(channel, event, now).await?;
        let audit = |kind, detail: String| {
            let mut record = request_record(
                platform,
                kind,
                detail,
                200,
                origin.request,
                origin.remote_addr.clone(),
            );
            record.user_id = Some(user_id.clone());
            self.audit(record)
        };
        Ok(match admission {
            Admission::Stored => None,
            Admission::Duplicate => {
                audit(
                    AuditKind::DuplicateDelivery,
                    format!("event {event_id} already stored"),
                )
                .await;
                None
            }
            Admission::PairingSent { code } => {
                audit(
                    AuditKind::PairingRequested,
                    "unknown sender given a pairing code".into(),
                )
                .await;
                let text = pairing_text(&code);
                let inline = adapter.inline_notice(&text);
                if inline.is_none() {
                    let notice = PairingNotice {
                        platform,
                        source: account.source.clone(),
                        user_id: user_id.clone(),
                        thread_id,
                        event_id,
                        code,
                        text,
                    };
                    if let Err(err) = self.sink.notify(notice).await {
                        tracing::warn!(%platform, %err, "pairing notice not queued");
                    }
                }
                inline
            }
            Admission::PairingPending => {
                adapter.inline_notice("Still waiting for my owner to approve you.")
            }
            Admission::Denied => {
                audit(
                    AuditKind::DeniedSender,
                    "message from a denied sender dropped".into(),
                )
                .await;
                adapter.inline_notice("This assistant is not available to you.")
            }
        })
    }

    /// Handles one webhook request end to end: verify, normalize, admit,
    /// answer. Refusals are audited and produce no event.
    pub async fn handle(
        &self,
        channel: &Channel,
        request: &InboundRequest<'_>,
        remote_addr: Option<String>,
        now: DateTime<Utc>,
    ) -> Reply {
        let platform = channel.platform;
        let Some(adapter) = self.adapter(channel) else {
            return Reply::error(
                Some(platform),
                404,
                "platform_not_configured",
                "this platform account is not configured",
                None,
            );
        };
        let inbound = match adapter.on_request(request, now) {
            Ok(inbound) => inbound,
            Err(err) => return self.refuse(platform, err, request, remote_addr).await,
        };
        let mut ack = inbound.ack;
        let origin = Origin {
            request: Some(request),
            remote_addr,
        };
        for event in inbound.events {
            match self.admit_one(channel, event, now, &origin).await {
                Ok(Some(inline)) => ack = inline,
                Ok(None) => {}
                Err(SinkError::Busy { retry_after_secs }) => {
                    let mut reply = Reply::error(
                        Some(platform),
                        429,
                        "busy",
                        "the assistant is busy; retry later",
                        None,
                    );
                    reply.retry_after = Some(retry_after_secs);
                    return reply;
                }
                Err(SinkError::Failed(detail)) => {
                    tracing::error!(%platform, %detail, "gateway sink failed");
                    return Reply::error(
                        Some(platform),
                        500,
                        "store_failed",
                        "the event could not be stored",
                        None,
                    );
                }
            }
        }
        match ack {
            Ack::Ok => Reply::json(200, json!({})),
            Ack::Json(body) => Reply::json(200, body),
            Ack::Text(text) => Reply {
                status: 200,
                body: ReplyBody::Text(text),
                retry_after: None,
            },
        }
    }

    async fn refuse(
        &self,
        platform: Platform,
        err: InboundError,
        request: &InboundRequest<'_>,
        remote_addr: Option<String>,
    ) -> Reply {
        let status = err.status();
        if let Some(kind) = err.audit_kind() {
            let record = request_record(
                platform,
                kind,
                err.to_string(),
                status,
                Some(request),
                remote_addr,
            );
            self.audit(record).await;
        }
        Reply::error(
            Some(platform),
            status,
            err.code(),
            &err.to_string(),
            err.field(),
        )
    }
}

/// An audit record about one request; the body is kept only as its hash.
fn request_record(
    platform: Platform,
    kind: AuditKind,
    detail: String,
    status: u16,
    request: Option<&InboundRequest<'_>>,
    remote_addr: Option<String>,
) -> AuditRecord {
    let body = request.map_or(&[][..], |r| r.body);
    AuditRecord {
        at: Utc::now(),
        platform,
        kind,
        detail,
        status: Some(status),
        remote_addr,
        body_sha256: sha256_hex(body),
        body_len: body.len(),
        user_id: None,
    }
}
