//! The gateway proper: adapters built from config, plus the path every
//! verified event takes: allow-list and pairing, then the durable sink.
//! [`crate::webhook_router`] serves it over HTTP; the Telegram long-poll loop
//! calls [`Gateway::admit`] directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use opticlaw_core::EventEnvelope;
use serde_json::{Value, json};

use crate::pairing::{allow_listed, pairing_text};
use crate::platforms::discord::{DiscordAdapter, DiscordKeyError};
use crate::platforms::{matrix::MatrixAdapter, slack::SlackAdapter};
use crate::platforms::{telegram::TelegramAdapter, whatsapp::WhatsAppAdapter};
use crate::verify::sha256_hex;
use crate::{
    Accepted, Ack, AuditKind, AuditLog, AuditRecord, BridgeAdapter, EventSink, GatewayConfig,
    InboundError, InboundRequest, PairingNotice, PairingStore, Platform, SenderStatus, SinkError,
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

/// The gateway: adapters plus the daemon's sink, audit log and pairing store.
pub struct Gateway<S, A, P> {
    config: GatewayConfig,
    adapters: BTreeMap<Platform, Box<dyn BridgeAdapter>>,
    sink: Arc<S>,
    audit: Arc<A>,
    pairing: Arc<P>,
}

impl<S: EventSink, A: AuditLog, P: PairingStore> Gateway<S, A, P> {
    /// Builds an adapter for each configured platform.
    pub fn new(
        config: GatewayConfig,
        sink: Arc<S>,
        audit: Arc<A>,
        pairing: Arc<P>,
    ) -> Result<Self, GatewayError> {
        let mut adapters: BTreeMap<Platform, Box<dyn BridgeAdapter>> = BTreeMap::new();
        let skew = config.max_skew_secs;
        if let Some(c) = &config.slack {
            adapters.insert(
                Platform::Slack,
                Box::new(SlackAdapter::new(c.clone(), skew)),
            );
        }
        if let Some(c) = &config.telegram {
            adapters.insert(
                Platform::Telegram,
                Box::new(TelegramAdapter::new(c.clone())),
            );
        }
        if let Some(c) = &config.discord {
            adapters.insert(
                Platform::Discord,
                Box::new(DiscordAdapter::new(c.clone(), skew)?),
            );
        }
        if let Some(c) = &config.whatsapp {
            adapters.insert(
                Platform::WhatsApp,
                Box::new(WhatsAppAdapter::new(c.clone())),
            );
        }
        if let Some(c) = &config.matrix {
            adapters.insert(Platform::Matrix, Box::new(MatrixAdapter::new(c.clone())));
        }
        Ok(Self {
            config,
            adapters,
            sink,
            audit,
            pairing,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The adapter for a configured platform (also for rendering replies).
    pub fn adapter(&self, platform: Platform) -> Option<&dyn BridgeAdapter> {
        self.adapters.get(&platform).map(|a| a.as_ref())
    }

    /// Configured platforms.
    pub fn platforms(&self) -> impl Iterator<Item = Platform> + '_ {
        self.adapters.keys().copied()
    }

    /// Appends an audit record to the daemon's log.
    pub async fn audit(&self, record: AuditRecord) {
        self.audit.record(record).await;
    }

    /// Applies the allow-list and pairing state to one verified event and
    /// stores it if its sender may talk.
    pub async fn admit(
        &self,
        platform: Platform,
        event: EventEnvelope,
        now: DateTime<Utc>,
    ) -> Result<Admission, SinkError> {
        if !allow_listed(self.config.allow_from(platform), &event.user_id) {
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

    /// Handles one webhook request end to end: verify, normalize, admit,
    /// answer. Refusals are audited and produce no event.
    pub async fn handle(
        &self,
        platform: Platform,
        request: &InboundRequest<'_>,
        remote_addr: Option<String>,
        now: DateTime<Utc>,
    ) -> Reply {
        let Some(adapter) = self.adapter(platform) else {
            return Reply::error(
                Some(platform),
                404,
                "platform_not_configured",
                "this platform is not configured",
                None,
            );
        };
        let inbound = match adapter.on_request(request, now) {
            Ok(inbound) => inbound,
            Err(err) => return self.refuse(platform, err, request, remote_addr).await,
        };
        let mut ack = inbound.ack;
        for event in inbound.events {
            let user_id = event.user_id.clone();
            let thread_id = event.thread_id.clone();
            let event_id = event.event_id.clone();
            let admission = match self.admit(platform, event, now).await {
                Ok(a) => a,
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
            };
            let audit = |kind, detail: String| {
                let mut record =
                    request_record(platform, kind, detail, 200, request, remote_addr.clone());
                record.user_id = Some(user_id.clone());
                self.audit(record)
            };
            match admission {
                Admission::Stored => {}
                Admission::Duplicate => {
                    audit(
                        AuditKind::DuplicateDelivery,
                        format!("event {event_id} already stored"),
                    )
                    .await;
                }
                Admission::PairingSent { code } => {
                    audit(
                        AuditKind::PairingRequested,
                        "unknown sender given a pairing code".into(),
                    )
                    .await;
                    let text = pairing_text(&code);
                    if let Some(inline) = adapter.inline_notice(&text) {
                        ack = inline;
                    } else {
                        let notice = PairingNotice {
                            platform,
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
                }
                Admission::PairingPending => {
                    if let Some(inline) =
                        adapter.inline_notice("Still waiting for my owner to approve you.")
                    {
                        ack = inline;
                    }
                }
                Admission::Denied => {
                    audit(
                        AuditKind::DeniedSender,
                        "message from a denied sender dropped".into(),
                    )
                    .await;
                    if let Some(inline) =
                        adapter.inline_notice("This assistant is not available to you.")
                    {
                        ack = inline;
                    }
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
                request,
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
    request: &InboundRequest<'_>,
    remote_addr: Option<String>,
) -> AuditRecord {
    AuditRecord {
        at: Utc::now(),
        platform,
        kind,
        detail,
        status: Some(status),
        remote_addr,
        body_sha256: sha256_hex(request.body),
        body_len: request.body.len(),
        user_id: None,
    }
}
