//! WhatsApp Cloud API.
//!
//! Verification follows Meta's Graph API webhooks
//! (<https://developers.facebook.com/docs/graph-api/webhooks/getting-started>):
//! the subscription check is a `GET` with `hub.mode=subscribe`,
//! `hub.verify_token` (compared in constant time with ours) and
//! `hub.challenge`, which is echoed; every `POST` carries
//! `X-Hub-Signature-256: sha256=` + hex HMAC-SHA256 of the raw body under the
//! app secret. Meta retries deliveries with the same message ids (`wamid...`),
//! which are the event ids, so the store keeps one copy. Status updates
//! (sent, delivered, read) are acknowledged and not stored.
//!
//! Outbound: `POST /{phone-number-id}/messages` with a `text` message
//! (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>),
//! body at most 4,096 characters.
//!
//! Approval buttons: an approval prompt is followed by an interactive reply
//! buttons message (`type: "interactive"`, `interactive.type: "button"`, up
//! to three buttons, titles of at most 20 characters, ids of at most 256,
//! body text of at most 1,024;
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages>).
//! A press arrives as a message of type `interactive` whose
//! `interactive.button_reply.id` is our button's id; it becomes the typed
//! command from its sender, and its `wamid` is the event id, so Meta's
//! retries are stored once. WhatsApp cannot edit a sent message: the outcome
//! is an ordinary reply.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use opticlaw_core::{Attachment, ResponsePacket};
use serde::Deserialize;
use serde_json::json;

use super::{
    Media as MediaKind, Normalized, clip, from_unix, is_local_file, is_web_url, parts,
    text_with_links, with_uploads,
};
use crate::adapter::parse_json;
use crate::split::{Unit, split_rendered};
use crate::upload::{self, FileUpload};
use crate::verify::{hex_mac_matches, hmac_sha256};
use crate::{
    Ack, BridgeAdapter, Inbound, InboundError, InboundRequest, OutboundMessage, Platform,
    RenderError, ReplyOrigin, WhatsAppConfig, buttons, format,
};

/// WhatsApp's maximum text body length.
pub const TEXT_LIMIT: usize = 4096;
/// An interactive message's body text: at most 1024 characters.
pub const BUTTON_BODY_LIMIT: usize = 1024;
/// Media captions: at most 1024 characters.
pub const CAPTION_LIMIT: usize = 1024;
const P: Platform = Platform::WhatsApp;

/// The WhatsApp bridge.
#[derive(Debug, Clone)]
pub struct WhatsAppAdapter {
    config: WhatsAppConfig,
}

impl WhatsAppAdapter {
    /// A bridge for one business phone number.
    pub fn new(config: WhatsAppConfig) -> Self {
        Self { config }
    }
}

/// Computes the `X-Hub-Signature-256` value for a body (also used by tests).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(app_secret.as_bytes(), &[body]))
    )
}

#[derive(Deserialize)]
struct Notification {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    value: ChangeValue,
}

#[derive(Deserialize)]
struct ChangeValue {
    #[serde(default)]
    metadata: Option<PhoneMetadata>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<WaMessage>,
}

#[derive(Deserialize)]
struct PhoneMetadata {
    #[serde(default)]
    phone_number_id: Option<String>,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct WaMessage {
    from: String,
    id: String,
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<TextBody>,
    #[serde(default)]
    image: Option<Media>,
    #[serde(default)]
    document: Option<Media>,
    #[serde(default)]
    audio: Option<Media>,
    #[serde(default)]
    video: Option<Media>,
    #[serde(default)]
    interactive: Option<InteractiveReply>,
}

/// The answer to an interactive message (a reply button, a list row).
#[derive(Deserialize)]
struct InteractiveReply {
    #[serde(default)]
    button_reply: Option<ButtonReply>,
}

#[derive(Deserialize)]
struct ButtonReply {
    id: String,
}

#[derive(Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Deserialize)]
struct Media {
    id: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

impl WhatsAppAdapter {
    fn subscription_check(&self, req: &InboundRequest<'_>) -> Result<Inbound, InboundError> {
        let mode = req
            .query_param("hub.mode")
            .ok_or_else(|| InboundError::malformed(P, "hub.mode", "missing"))?;
        if mode != "subscribe" {
            return Err(InboundError::malformed(
                P,
                "hub.mode",
                "must be `subscribe`",
            ));
        }
        let token = req
            .query_param("hub.verify_token")
            .ok_or_else(|| InboundError::unauthenticated(P, "no hub.verify_token"))?;
        if !self.config.verify_token.matches(token.as_bytes()) {
            return Err(InboundError::forged(
                P,
                "hub.verify_token does not match",
                403,
            ));
        }
        let challenge = req
            .query_param("hub.challenge")
            .ok_or_else(|| InboundError::malformed(P, "hub.challenge", "missing"))?;
        Ok(Inbound::ack(Ack::Text(challenge)))
    }

    fn notification(&self, req: &InboundRequest<'_>) -> Result<Inbound, InboundError> {
        let signature = req
            .header("x-hub-signature-256")
            .ok_or_else(|| InboundError::unauthenticated(P, "no X-Hub-Signature-256 header"))?;
        let expected = hmac_sha256(self.config.app_secret.expose().as_bytes(), &[req.body]);
        let presented = signature.strip_prefix("sha256=").unwrap_or("");
        if !hex_mac_matches(&expected, presented) {
            return Err(InboundError::forged(
                P,
                "X-Hub-Signature-256 does not match",
                401,
            ));
        }
        let notification: Notification = parse_json(P, req.body)?;
        if notification.object != "whatsapp_business_account" {
            return Ok(Inbound::ack(Ack::Ok));
        }
        let mut events = Vec::new();
        for change in notification.entry.into_iter().flat_map(|e| e.changes) {
            if change.field != "messages" {
                continue;
            }
            let value = change.value;
            let phone_id = value.metadata.and_then(|m| m.phone_number_id);
            for message in value.messages {
                let name = value
                    .contacts
                    .iter()
                    .find(|c| c.wa_id == message.from)
                    .and_then(|c| c.profile.as_ref()?.name.clone());
                if let Some(n) = normalize(message, name, phone_id.as_deref()) {
                    events.push(n.into_envelope(P, "whatsapp-hmac-sha256"));
                }
            }
        }
        Ok(Inbound {
            events,
            ack: Ack::Ok,
        })
    }
}

fn normalize(
    message: WaMessage,
    name: Option<String>,
    phone_id: Option<&str>,
) -> Option<Normalized> {
    let press = message
        .interactive
        .and_then(|i| i.button_reply)
        .and_then(|b| buttons::Choice::parse(&b.id));
    let mut text = match &press {
        Some(choice) => choice.command(),
        None => message.text.map(|t| t.body).unwrap_or_default(),
    };
    let mut attachments = Vec::new();
    for (kind, media) in [
        ("image", message.image),
        ("file", message.document),
        ("audio", message.audio),
        ("video", message.video),
    ] {
        if let Some(media) = media {
            if text.is_empty() {
                text = media.caption.clone().unwrap_or_default();
            }
            attachments.push(Attachment {
                kind: kind.to_owned(),
                name: media.filename,
                mime_type: media.mime_type,
                reference: media.id,
                size_bytes: None,
            });
        }
    }
    if text.is_empty() && attachments.is_empty() {
        return None;
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("whatsapp.type".into(), json!(message.kind));
    if let Some(name) = name {
        metadata.insert("whatsapp.profile_name".into(), json!(name));
    }
    if let Some(phone_id) = phone_id {
        metadata.insert("whatsapp.phone_number_id".into(), json!(phone_id));
    }
    if let Some(choice) = &press {
        choice.annotate(&mut metadata);
    }
    Some(Normalized {
        event_id: message.id,
        user_id: message.from.clone(),
        thread_id: message.from,
        timestamp: from_unix(message.timestamp.parse().unwrap_or_default()),
        text,
        attachments,
        metadata,
    })
}

impl BridgeAdapter for WhatsAppAdapter {
    fn platform(&self) -> Platform {
        P
    }

    fn on_request(
        &self,
        req: &InboundRequest<'_>,
        _now: DateTime<Utc>,
    ) -> Result<Inbound, InboundError> {
        match req.method.as_str() {
            "GET" => self.subscription_check(req),
            "POST" => self.notification(req),
            _ => Err(InboundError::MethodNotAllowed { platform: P }),
        }
    }

    fn render(
        &self,
        packet: &ResponsePacket,
        _origin: Option<&ReplyOrigin>,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        let to = packet.thread_id.trim_start_matches('+');
        if to.is_empty() || !to.chars().all(|c| c.is_ascii_digit()) {
            return Err(RenderError::BadTarget {
                platform: P,
                thread_id: packet.thread_id.clone(),
                detail: "not a phone number (wa_id)".into(),
            });
        }
        // Media at a URL go out as media messages with a `link`, which
        // WhatsApp fetches (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#media-object>);
        // local files are uploaded first and sent by media `id`.
        let native = |a: &Attachment| is_web_url(&a.reference) || is_local_file(&a.reference);
        let pieces = split_rendered(
            &text_with_links(packet, native),
            TEXT_LIMIT,
            format::whatsapp,
            |s| Unit::Utf16.measure(s),
        );
        let envelope = |kind: &str, object: serde_json::Value| {
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": kind,
                kind: object,
            })
        };
        let texts = pieces
            .into_iter()
            .filter(|body| !body.trim().is_empty())
            .map(|body| {
                (
                    envelope("text", json!({"preview_url": false, "body": body})),
                    None,
                )
            });
        let media = packet.attachments.iter().filter(|a| native(a)).map(|a| {
            let kind = match MediaKind::of(&a.kind) {
                MediaKind::Image => "image",
                MediaKind::Audio => "audio",
                MediaKind::Video => "video",
                MediaKind::File => "document",
            };
            let media = MediaKind::of(&a.kind);
            let upload = FileUpload::of(a, "file", upload::limit(P, media));
            // The uploader fills in the media `id`.
            let mut object = match upload {
                Some(_) => json!({}),
                None => json!({"link": a.reference}),
            };
            if let Some(name) = a.name.as_deref().filter(|_| kind != "audio") {
                object["caption"] = json!(clip(name, CAPTION_LIMIT));
                if kind == "document" {
                    object["filename"] = json!(name);
                }
            }
            (envelope(kind, object), upload)
        });
        let offer = buttons::approval_offer(packet).map(|offer| {
            let button = |title: &str, choice: buttons::Choice| {
                json!({"type": "reply", "reply": {"id": choice.data(), "title": title}})
            };
            let object = json!({
                "type": "button",
                "body": {"text": clip(&offer.text(), BUTTON_BODY_LIMIT)},
                "action": {"buttons": [
                    button("Approve", buttons::Choice::Approve(offer.id.clone())),
                    button("Deny", buttons::Choice::Deny(offer.id.clone())),
                ]},
            });
            (envelope("interactive", object), None)
        });
        let (bodies, uploads): (Vec<_>, Vec<_>) = texts.chain(media).chain(offer).unzip();
        let path = format!("{}/messages", self.config.phone_number_id);
        with_uploads(parts(P, packet, "POST", &path, to, bodies), uploads)
    }
}
