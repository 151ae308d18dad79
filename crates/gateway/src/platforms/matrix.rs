//! Matrix, as an application service.
//!
//! Follows the Application Service API
//! (<https://spec.matrix.org/latest/application-service-api/>): the
//! homeserver pushes events with `PUT /_matrix/app/v1/transactions/{txnId}`
//! and authenticates with the registration's `hs_token` as
//! `Authorization: Bearer` (the legacy `access_token` query parameter is also
//! accepted). A missing token gets 401 `M_UNAUTHORIZED`, a wrong one 403
//! `M_FORBIDDEN`. The homeserver retries a transaction with the same `txnId`
//! and the same events until it gets 200; each event's `event_id` is the
//! event id, so the store keeps one copy. The bot's own events are ignored.
//!
//! Outbound: `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
//! with `body` and `formatted_body`. The idempotency key is the `txnId`, so
//! the homeserver itself drops a resend. Events are capped at 65,536 bytes;
//! each part keeps `body` plus `formatted_body` under [`CONTENT_LIMIT_BYTES`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use opticlaw_core::{Attachment, ResponsePacket};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Media, Normalized, is_local_file, parts, text_with_links, with_uploads};
use crate::adapter::parse_json;
use crate::split::split_rendered;
use crate::upload::{self, FileUpload};
use crate::{
    Ack, BridgeAdapter, Inbound, InboundError, InboundRequest, MatrixConfig, OutboundMessage,
    Platform, RenderError, ReplyOrigin, format,
};

/// Budget for `body` + `formatted_body` in bytes: half the 64 KiB event cap,
/// leaving room for JSON escaping and the event envelope.
pub const CONTENT_LIMIT_BYTES: usize = 32 * 1024;
const P: Platform = Platform::Matrix;

/// The Matrix bridge.
#[derive(Debug, Clone)]
pub struct MatrixAdapter {
    config: MatrixConfig,
}

impl MatrixAdapter {
    /// A bridge for one application service registration.
    pub fn new(config: MatrixConfig) -> Self {
        Self { config }
    }
}

#[derive(Deserialize)]
struct Transaction {
    events: Vec<Value>,
}

#[derive(Deserialize)]
struct RoomEvent {
    #[serde(rename = "type")]
    kind: String,
    event_id: String,
    room_id: String,
    sender: String,
    origin_server_ts: i64,
    #[serde(default)]
    content: Value,
}

impl MatrixAdapter {
    fn authenticate(&self, req: &InboundRequest<'_>) -> Result<(), InboundError> {
        let token = match req.header("authorization") {
            Some(value) => value
                .strip_prefix("Bearer ")
                .map(str::to_owned)
                .ok_or_else(|| {
                    InboundError::forged(P, "Authorization is not a Bearer token", 403)
                })?,
            None => req
                .query_param("access_token")
                .ok_or_else(|| InboundError::unauthenticated(P, "no hs_token presented"))?,
        };
        let Some(expected) = &self.config.hs_token else {
            return Err(InboundError::forged(
                P,
                "no hs_token configured; application-service mode is disabled",
                403,
            ));
        };
        if expected.matches(token.trim().as_bytes()) {
            Ok(())
        } else {
            Err(InboundError::forged(P, "hs_token does not match", 403))
        }
    }

    pub(crate) fn normalize(&self, raw: Value, txn_id: &str) -> Option<Normalized> {
        let event: RoomEvent = serde_json::from_value(raw).ok()?;
        if event.kind != "m.room.message" || event.sender == self.config.bot_user_id {
            return None;
        }
        let content = &event.content;
        let msgtype = content["msgtype"].as_str().unwrap_or("");
        let body = content["body"].as_str().unwrap_or("").to_owned();
        let mut attachments = Vec::new();
        let mut text = body.clone();
        match msgtype {
            "m.text" | "m.emote" => {}
            // notices are what bots send; answering them loops bots together
            "m.notice" => return None,
            "m.image" | "m.file" | "m.audio" | "m.video" => {
                let url = content["url"].as_str()?.to_owned();
                attachments.push(Attachment {
                    kind: msgtype.trim_start_matches("m.").to_owned(),
                    name: Some(body.clone()).filter(|b| !b.is_empty()),
                    mime_type: content["info"]["mimetype"].as_str().map(str::to_owned),
                    reference: url,
                    size_bytes: content["info"]["size"].as_u64(),
                });
                text = String::new();
            }
            _ => return None,
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("matrix.txn_id".into(), json!(txn_id));
        metadata.insert("matrix.msgtype".into(), json!(msgtype));
        Some(Normalized {
            event_id: event.event_id,
            user_id: event.sender,
            thread_id: event.room_id,
            timestamp: DateTime::from_timestamp_millis(event.origin_server_ts)
                .unwrap_or_else(Utc::now),
            text,
            attachments,
            metadata,
        })
    }
}

impl BridgeAdapter for MatrixAdapter {
    fn platform(&self) -> Platform {
        P
    }

    fn on_request(
        &self,
        req: &InboundRequest<'_>,
        _now: DateTime<Utc>,
    ) -> Result<Inbound, InboundError> {
        self.authenticate(req)?;
        match (req.method.as_str(), req.path_param) {
            ("PUT", Some(txn_id)) => {
                let txn: Transaction = parse_json(P, req.body)?;
                let events = txn
                    .events
                    .into_iter()
                    .filter_map(|raw| self.normalize(raw, txn_id))
                    .map(|n| n.into_envelope(P, "matrix-hs-token"))
                    .collect();
                Ok(Inbound {
                    events,
                    ack: Ack::Ok,
                })
            }
            // POST /_matrix/app/v1/ping
            ("POST", None) => Ok(Inbound::ack(Ack::Ok)),
            _ => Err(InboundError::MethodNotAllowed { platform: P }),
        }
    }

    fn render(
        &self,
        packet: &ResponsePacket,
        _origin: Option<&ReplyOrigin>,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        if !packet.thread_id.starts_with('!') {
            return Err(RenderError::BadTarget {
                platform: P,
                thread_id: packet.thread_id.clone(),
                detail: "not a room id".into(),
            });
        }
        // Files already in the homeserver's media repository (`mxc://`) go
        // out as m.image/m.file/... events (spec: m.room.message msgtypes);
        // local files are uploaded to it first (`POST /_matrix/media/v3/upload`),
        // the uploader filling in the event's `url`.
        let native =
            |a: &Attachment| a.reference.starts_with("mxc://") || is_local_file(&a.reference);
        let pieces = split_rendered(
            &text_with_links(packet, native),
            CONTENT_LIMIT_BYTES,
            |s| (format::plain_text(s), format::matrix_html(s)),
            |(body, html)| body.len() + html.len(),
        );
        let reply_to = packet
            .in_reply_to
            .as_deref()
            .filter(|id| id.starts_with('$'));
        let texts = pieces
            .into_iter()
            .filter(|(body, _)| !body.trim().is_empty())
            .map(|(body, html)| {
                json!({
                    "msgtype": "m.text",
                    "body": body,
                    "format": "org.matrix.custom.html",
                    "formatted_body": html,
                })
            });
        let files = packet.attachments.iter().filter(|a| native(a)).map(|a| {
            let msgtype = match Media::of(&a.kind) {
                Media::Image => "m.image",
                Media::Audio => "m.audio",
                Media::Video => "m.video",
                Media::File => "m.file",
            };
            let mut info = json!({});
            if let Some(mime) = &a.mime_type {
                info["mimetype"] = json!(mime);
            }
            if let Some(size) = a.size_bytes {
                info["size"] = json!(size);
            }
            let upload = FileUpload::of(a, "file", upload::limit(P, Media::of(&a.kind)));
            let mut body = json!({
                "msgtype": msgtype,
                "body": a.name.as_deref().unwrap_or("file"),
                "info": info,
            });
            if upload.is_none() {
                body["url"] = json!(a.reference);
            }
            (body, upload)
        });
        let (mut bodies, uploads): (Vec<Value>, Vec<_>) =
            texts.map(|t| (t, None)).chain(files).unzip();
        if let (Some(first), Some(id)) = (bodies.first_mut(), reply_to) {
            first["m.relates_to"] = json!({"m.in_reply_to": {"event_id": id}});
        }
        let room = utf8_percent_encode(&packet.thread_id, NON_ALPHANUMERIC).to_string();
        let path = format!("_matrix/client/v3/rooms/{room}/send/m.room.message/{{key}}");
        with_uploads(
            parts(P, packet, "PUT", &path, &packet.thread_id, bodies),
            uploads,
        )
    }
}
