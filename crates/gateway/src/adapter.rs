//! The bridge contract (blueprint 4.1): each platform verifies and normalizes
//! inbound requests into [`EventEnvelope`]s and renders neutral
//! [`ResponsePacket`]s into its own outbound requests. Adapters are stateless:
//! deduplication lives in the durable store behind [`crate::EventSink`].

use std::collections::BTreeMap;
use std::fmt;

use axum::http::{HeaderMap, Method};
use chrono::{DateTime, Utc};
use opticlaw_core::{EventEnvelope, ResponsePacket};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::AuditKind;

/// The chat platforms the gateway bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Slack,
    Telegram,
    Discord,
    WhatsApp,
    Matrix,
}

impl Platform {
    /// Every platform, in a stable order.
    pub const ALL: [Platform; 5] = [
        Platform::Slack,
        Platform::Telegram,
        Platform::Discord,
        Platform::WhatsApp,
        Platform::Matrix,
    ];

    /// The name used in routes and in `EventEnvelope::source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Telegram => "telegram",
            Platform::Discord => "discord",
            Platform::WhatsApp => "whatsapp",
            Platform::Matrix => "matrix",
        }
    }

    /// Parses [`Platform::as_str`] back.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured account of a platform: what a webhook route, an event's
/// `source` and a reply's destination name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub platform: Platform,
    pub account: String,
}

impl Channel {
    /// The account `account` of `platform`.
    pub fn new(platform: Platform, account: impl Into<String>) -> Self {
        Self {
            platform,
            account: account.into(),
        }
    }

    /// The platform's account named `default`.
    pub fn default_for(platform: Platform) -> Self {
        Self::new(platform, crate::config::DEFAULT_ACCOUNT)
    }

    /// The `EventEnvelope::source` of its events: the platform's name for
    /// the default account (as before accounts existed), else `platform:account`.
    pub fn source(&self) -> String {
        if self.account == crate::config::DEFAULT_ACCOUNT {
            self.platform.as_str().to_owned()
        } else {
            format!("{}:{}", self.platform, self.account)
        }
    }

    /// Parses [`Channel::source`] back.
    pub fn from_source(source: &str) -> Option<Self> {
        let (platform, account) = source
            .split_once(':')
            .unwrap_or((source, crate::config::DEFAULT_ACCOUNT));
        Some(Self::new(Platform::parse(platform)?, account))
    }

    /// Its webhook route's path.
    pub fn route(&self) -> String {
        format!("/hooks/{}/{}", self.platform, self.account)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.platform, self.account)
    }
}

/// One inbound HTTP request as the adapter sees it: nothing is parsed yet, so
/// signatures are checked over the exact bytes the platform signed.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    pub method: &'a Method,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// A path parameter (Matrix `txnId`), when the route has one.
    pub path_param: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl InboundRequest<'_> {
    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode_query_component(k);
            (key == name).then(|| decode_query_component(v))
        })
    }
}

fn decode_query_component(text: &str) -> String {
    let plus_as_space = text.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// The immediate HTTP answer to a verified request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    /// `200` with an empty JSON object.
    Ok,
    /// `200` with a JSON body (Discord interaction responses).
    Json(Value),
    /// `200` with a plain-text body (Slack and WhatsApp challenges).
    Text(String),
}

/// A verified request, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// Messages to store, possibly none (a challenge, a status update, a bot's own echo).
    pub events: Vec<EventEnvelope>,
    /// What to answer once the events are stored.
    pub ack: Ack,
}

impl Inbound {
    /// Only an acknowledgement, no events.
    pub fn ack(ack: Ack) -> Self {
        Self {
            events: Vec::new(),
            ack,
        }
    }
}

/// Why an inbound request was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InboundError {
    /// Credentials missing (401): no signature header, no bearer token.
    #[error("{platform}: missing credential: {detail}")]
    Unauthenticated { platform: Platform, detail: String },
    /// Credentials wrong or request forged (401 or 403, per platform).
    #[error("{platform}: forged or wrongly signed request: {detail}")]
    Forged {
        platform: Platform,
        detail: String,
        status: u16,
    },
    /// Signed timestamp outside the accepted window (401).
    #[error("{platform}: stale request: timestamp {age_secs}s from now exceeds {max_secs}s")]
    Stale {
        platform: Platform,
        age_secs: i64,
        max_secs: i64,
    },
    /// The body or a parameter does not parse (400).
    #[error("{platform}: malformed request: field `{field}`: {detail}")]
    Malformed {
        platform: Platform,
        field: String,
        detail: String,
    },
    /// The method is not served here (405).
    #[error("{platform}: method not allowed")]
    MethodNotAllowed { platform: Platform },
}

impl InboundError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            InboundError::Unauthenticated { .. } => 401,
            InboundError::Forged { status, .. } => *status,
            InboundError::Stale { .. } => 401,
            InboundError::Malformed { .. } => 400,
            InboundError::MethodNotAllowed { .. } => 405,
        }
    }

    /// The audit kind for a security refusal; `None` for plain bad input.
    pub fn audit_kind(&self) -> Option<AuditKind> {
        match self {
            InboundError::Unauthenticated { .. } => Some(AuditKind::MissingCredential),
            InboundError::Forged { .. } => Some(AuditKind::ForgedRequest),
            InboundError::Stale { .. } => Some(AuditKind::StaleRequest),
            InboundError::Malformed { .. } | InboundError::MethodNotAllowed { .. } => None,
        }
    }

    /// A short machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            InboundError::Unauthenticated { .. } => "missing_credential",
            InboundError::Forged { .. } => "invalid_signature",
            InboundError::Stale { .. } => "stale_timestamp",
            InboundError::Malformed { .. } => "malformed_request",
            InboundError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    /// The field named in a malformed-request error.
    pub fn field(&self) -> Option<&str> {
        match self {
            InboundError::Malformed { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn malformed(platform: Platform, field: &str, detail: impl fmt::Display) -> Self {
        InboundError::Malformed {
            platform,
            field: field.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn forged(platform: Platform, detail: &str, status: u16) -> Self {
        InboundError::Forged {
            platform,
            detail: detail.to_owned(),
            status,
        }
    }

    pub(crate) fn unauthenticated(platform: Platform, detail: &str) -> Self {
        InboundError::Unauthenticated {
            platform,
            detail: detail.to_owned(),
        }
    }
}

/// Parses a JSON body into `T`, naming the offending field on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    platform: Platform,
    body: &[u8],
) -> Result<T, InboundError> {
    // Tracking the path costs every well-formed body a third of its parse:
    // only a body that fails is parsed again to name the field.
    let error = match serde_json::from_slice(body) {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let (field, error) = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(err) => (err.path().to_string(), err.into_inner()),
        // Well formed up to the value's end: the trouble is what follows it.
        Ok(_) => (".".to_owned(), error),
    };
    let field = if field == "." || field == "?" {
        "body".to_owned()
    } else {
        field
    };
    Err(InboundError::malformed(platform, &field, error))
}

/// Checks a signed unix timestamp against `now` and the allowed skew.
pub(crate) fn check_fresh(
    platform: Platform,
    timestamp: &str,
    now: DateTime<Utc>,
    max_skew_secs: i64,
) -> Result<(), InboundError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| InboundError::forged(platform, "timestamp is not an integer", 401))?;
    let age = now.timestamp() - ts;
    if age.abs() > max_skew_secs {
        return Err(InboundError::Stale {
            platform,
            age_secs: age,
            max_secs: max_skew_secs,
        });
    }
    Ok(())
}

/// One outbound HTTP call to a platform API, ready for [`crate::Sender`].
/// Credentials are not in it: the sender adds them from config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub platform: Platform,
    /// The account that sends it (whose credentials and API base are used).
    #[serde(default = "default_account")]
    pub account: String,
    /// `POST`, `PUT` or `PATCH`.
    pub method: String,
    /// Path relative to the platform's API base (for Telegram, the method name).
    pub path: String,
    pub body: Value,
    /// Stable key for this part of this reply: see [`crate::idempotency_key`].
    pub idempotency_key: String,
    /// Rate-limit bucket for the conversation (chat, channel, room, phone).
    pub rate_key: String,
    /// 0-based index of this part and the number of parts of the reply.
    pub part: usize,
    pub parts: usize,
    /// A local file to upload with this part (see [`crate::upload`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<crate::FileUpload>,
}

fn default_account() -> String {
    crate::config::DEFAULT_ACCOUNT.to_owned()
}

/// What the adapter may need from the inbound event a reply answers (its
/// `metadata`, which carries thread ids and Discord interaction tokens).
/// `ResponsePacket` has no metadata of its own, so the daemon looks up the
/// event named by `in_reply_to` and passes its metadata here.
pub type ReplyOrigin = BTreeMap<String, Value>;

/// Why a reply could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The reply names a conversation the platform cannot address.
    #[error("{platform}: cannot address thread `{thread_id}`: {detail}")]
    BadTarget {
        platform: Platform,
        thread_id: String,
        detail: String,
    },
    /// The reply has no text and no attachments.
    #[error("{platform}: reply is empty")]
    Empty { platform: Platform },
}

/// One platform's bridge.
pub trait BridgeAdapter: Send + Sync {
    /// Which platform this is.
    fn platform(&self) -> Platform;

    /// Verifies an inbound request and normalizes it (`on_event` in blueprint 4.1).
    /// A request that fails verification yields an error and no events.
    fn on_request(
        &self,
        request: &InboundRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<Inbound, InboundError>;

    /// Renders a neutral reply into the platform's outbound calls (`send` in
    /// blueprint 4.1, minus the I/O, which [`crate::Sender`] does), split at the
    /// platform's length limit.
    fn render(
        &self,
        packet: &ResponsePacket,
        origin: Option<&ReplyOrigin>,
    ) -> Result<Vec<OutboundMessage>, RenderError>;

    /// The immediate answer to give an event whose sender may not talk yet,
    /// when the platform expects the answer inline (Discord). `None` means the
    /// pairing notice goes out through the sink like any reply.
    fn inline_notice(&self, _text: &str) -> Option<Ack> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Update {
        #[allow(dead_code)]
        message: Message,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Message {
        #[allow(dead_code)]
        chat: i64,
    }

    fn field_of(body: &str) -> String {
        let err = parse_json::<Update>(Platform::Telegram, body.as_bytes()).unwrap_err();
        err.field().unwrap().to_owned()
    }

    #[test]
    fn a_malformed_body_names_the_field_or_the_body() {
        assert!(parse_json::<Update>(Platform::Telegram, br#"{"message":{"chat":7}}"#).is_ok());
        assert_eq!(field_of(r#"{"message":{"chat":"seven"}}"#), "message.chat");
        assert_eq!(field_of(r#"{"message":{}}"#), "message");
        assert_eq!(field_of("{\"message\""), "body");
        assert_eq!(field_of("not json"), "body");
        // Whole and valid, then more: the body is at fault, not a field.
        assert_eq!(field_of(r#"{"message":{"chat":7}} trailing"#), "body");
    }
}
