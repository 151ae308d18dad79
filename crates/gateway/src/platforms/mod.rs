//! One module per platform, each implementing [`crate::BridgeAdapter`].

pub mod discord;
pub mod matrix;
pub mod matrix_sync;
pub mod slack;
pub mod telegram;
pub mod whatsapp;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use opticlaw_core::{Attachment, Content, EventEnvelope, Hints, ResponsePacket, SecurityInfo};
use serde_json::Value;

use crate::{OutboundMessage, Platform, RenderError, idempotency_key};

/// Fields of a normalized message, before it becomes an envelope.
pub(crate) struct Normalized {
    pub event_id: String,
    pub user_id: String,
    pub thread_id: String,
    pub timestamp: DateTime<Utc>,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub metadata: BTreeMap<String, Value>,
}

impl Normalized {
    pub fn into_envelope(self, platform: Platform, verified_by: &str) -> EventEnvelope {
        EventEnvelope {
            event_id: self.event_id,
            source: platform.as_str().to_owned(),
            user_id: self.user_id,
            thread_id: self.thread_id,
            timestamp: self.timestamp,
            content: Content {
                text: self.text,
                attachments: self.attachments,
            },
            security: SecurityInfo {
                signature_valid: true,
                verified_by: Some(verified_by.to_owned()),
            },
            hints: Hints::default(),
            metadata: self.metadata,
        }
    }
}

/// Unix seconds to a timestamp (now when out of range).
pub(crate) fn from_unix(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_else(Utc::now)
}

/// Builds the outbound parts of a reply from rendered text pieces.
pub(crate) fn parts(
    platform: Platform,
    packet: &ResponsePacket,
    method: &str,
    path: &str,
    rate_key: &str,
    bodies: Vec<Value>,
) -> Result<Vec<OutboundMessage>, RenderError> {
    let routed = bodies.into_iter().map(|b| (path.to_owned(), b)).collect();
    parts_routed(platform, packet, method, rate_key, routed)
}

/// Like [`parts`], with a path per part (Telegram's `sendPhoto` beside `sendMessage`).
pub(crate) fn parts_routed(
    platform: Platform,
    packet: &ResponsePacket,
    method: &str,
    rate_key: &str,
    bodies: Vec<(String, Value)>,
) -> Result<Vec<OutboundMessage>, RenderError> {
    if bodies.is_empty() {
        return Err(RenderError::Empty { platform });
    }
    let count = bodies.len();
    Ok(bodies
        .into_iter()
        .enumerate()
        .map(|(part, (path, body))| {
            let key = idempotency_key(&packet.source, &packet.thread_id, packet.seq, part);
            OutboundMessage {
                platform,
                account: crate::config::DEFAULT_ACCOUNT.to_owned(),
                method: method.to_owned(),
                path: path.replace("{key}", &key),
                body,
                idempotency_key: key,
                rate_key: rate_key.to_owned(),
                part,
                parts: count,
                upload: None,
            }
        })
        .collect())
}

/// The text of a reply plus a line per attachment that does not go out
/// natively (`native` says which do).
pub(crate) fn text_with_links(
    packet: &ResponsePacket,
    native: impl Fn(&Attachment) -> bool,
) -> String {
    let mut text = packet.text.clone();
    for a in packet.attachments.iter().filter(|a| !native(a)) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(a.name.as_deref().unwrap_or(&a.reference));
        if a.name.is_some() {
            text.push_str(": ");
            text.push_str(&a.reference);
        }
    }
    text
}

/// Sets each part's local-file upload; `uploads` lines up with the parts.
pub(crate) fn with_uploads(
    rendered: Result<Vec<OutboundMessage>, RenderError>,
    uploads: Vec<Option<crate::FileUpload>>,
) -> Result<Vec<OutboundMessage>, RenderError> {
    rendered.map(|mut parts| {
        for (part, upload) in parts.iter_mut().zip(uploads) {
            part.upload = upload;
        }
        parts
    })
}

/// A file on this machine, uploaded rather than linked ([`crate::upload`]).
pub(crate) fn is_local_file(reference: &str) -> bool {
    crate::upload::local_path(reference).is_some()
}

/// An `http(s)://` URL, which Telegram and WhatsApp fetch themselves.
pub(crate) fn is_web_url(reference: &str) -> bool {
    reference.starts_with("https://") || reference.starts_with("http://")
}

/// What an attachment is, as the platforms' media types see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    Image,
    Audio,
    Video,
    File,
}

impl Media {
    /// From `Attachment::kind`.
    pub fn of(kind: &str) -> Self {
        match kind {
            "image" | "photo" => Media::Image,
            "audio" | "voice" => Media::Audio,
            "video" => Media::Video,
            _ => Media::File,
        }
    }
}

/// At most `max` characters of `text` (a caption).
pub(crate) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A metadata string from the replied-to event.
pub(crate) fn origin_str<'a>(origin: Option<&'a crate::ReplyOrigin>, key: &str) -> Option<&'a str> {
    origin?.get(key)?.as_str()
}
