//! Discord interactions over HTTP.
//!
//! Verification follows "Receiving and Responding: Security and
//! Authorization" (<https://discord.com/developers/docs/interactions/receiving-and-responding#security-and-authorization>):
//! `X-Signature-Ed25519` is an Ed25519 signature of `X-Signature-Timestamp`
//! followed by the raw body, under the application's public key; invalid
//! signatures get 401. The timestamp is also held to the gateway's skew
//! window, so a captured request cannot be replayed later. A `PING`
//! (type 1) is answered with `PONG` (type 1); an application command is
//! acknowledged with a deferred response (type 5) and answered by a
//! follow-up message on the interaction webhook.
//!
//! Approval buttons: an approval prompt is followed by a message with an
//! action row of two buttons (message components,
//! <https://discord.com/developers/docs/interactions/message-components>),
//! each with our `custom_id`. A press arrives on the same verified route as
//! an interaction of type 3 (`MESSAGE_COMPONENT`) and is acknowledged at once
//! with type 6 (`DEFERRED_UPDATE_MESSAGE`: "edit the original message
//! later", no loading state), because the decision is taken after the press
//! is stored, not within the 3 s the HTTP answer has. The outcome then edits
//! that message, as `UPDATE_MESSAGE` (type 7) would, through
//! `PATCH /webhooks/{application.id}/{interaction.token}/messages/@original`
//! (<https://discord.com/developers/docs/interactions/receiving-and-responding#edit-original-interaction-response>)
//! with `components: []`; a refusal is an ephemeral follow-up seen only by
//! the presser.
//!
//! Outbound: `POST /webhooks/{application.id}/{interaction.token}` when the
//! reply answers an interaction, else `POST /channels/{id}/messages` with the
//! bot token; 2,000 characters per message; mentions are disabled
//! (`allowed_mentions.parse = []`) so a reply can never ping `@everyone`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use opticlaw_core::ResponsePacket;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Media, Normalized, is_local_file, origin_str, parts, parts_routed, text_with_links,
    with_uploads,
};
use crate::adapter::{check_fresh, parse_json};
use crate::split::{Unit, split_rendered};
use crate::upload::{self, FileUpload};
use crate::{
    Ack, BridgeAdapter, DiscordConfig, Inbound, InboundError, InboundRequest, OutboundMessage,
    Platform, RenderError, ReplyOrigin, buttons, format,
};

/// Discord's maximum `content` length.
pub const TEXT_LIMIT: usize = 2000;
const P: Platform = Platform::Discord;
/// Interaction response flag: only the invoking user sees the message.
const EPHEMERAL: u64 = 1 << 6;

/// Why a Discord adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DiscordKeyError {
    #[error("discord public_key is not 64 hex digits: {0}")]
    Hex(String),
    #[error("discord public_key is not a valid Ed25519 point: {0}")]
    Point(String),
}

/// The Discord bridge.
#[derive(Debug, Clone)]
pub struct DiscordAdapter {
    config: DiscordConfig,
    key: VerifyingKey,
    max_skew_secs: i64,
}

impl DiscordAdapter {
    /// A bridge for one application; fails on a malformed public key.
    pub fn new(config: DiscordConfig, max_skew_secs: i64) -> Result<Self, DiscordKeyError> {
        let bytes: [u8; 32] = hex::decode(config.public_key.trim())
            .map_err(|e| DiscordKeyError::Hex(e.to_string()))?
            .try_into()
            .map_err(|v: Vec<u8>| DiscordKeyError::Hex(format!("{} bytes", v.len())))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|e| DiscordKeyError::Point(e.to_string()))?;
        Ok(Self {
            config,
            key,
            max_skew_secs,
        })
    }
}

#[derive(Deserialize)]
struct Interaction {
    id: String,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    data: Option<CommandData>,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    guild_id: Option<String>,
    #[serde(default)]
    member: Option<Member>,
    #[serde(default)]
    user: Option<DiscordUser>,
}

#[derive(Deserialize)]
struct CommandData {
    #[serde(default)]
    name: String,
    /// A component's id (type 3 interactions).
    #[serde(default)]
    custom_id: Option<String>,
    #[serde(default)]
    options: Vec<CommandOption>,
}

#[derive(Deserialize)]
struct CommandOption {
    name: String,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
struct Member {
    user: DiscordUser,
}

#[derive(Deserialize)]
struct DiscordUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

/// Who sent an interaction, where, and the token that answers it.
struct Origin {
    user: DiscordUser,
    channel: String,
    token: String,
}

impl Origin {
    /// Takes them out of `interaction` (`member.user` in a guild, `user` in a DM).
    fn of(interaction: &mut Interaction) -> Result<Self, InboundError> {
        let user = interaction
            .member
            .take()
            .map(|m| m.user)
            .or(interaction.user.take())
            .ok_or_else(|| InboundError::malformed(P, "member.user", "missing"))?;
        let channel = interaction
            .channel_id
            .take()
            .ok_or_else(|| InboundError::malformed(P, "channel_id", "missing"))?;
        let token = interaction
            .token
            .take()
            .ok_or_else(|| InboundError::malformed(P, "token", "missing"))?;
        Ok(Self {
            user,
            channel,
            token,
        })
    }
}

/// Snowflake ids carry their creation time: ms since 2015-01-01 in the top bits.
fn snowflake_time(id: &str) -> Option<DateTime<Utc>> {
    let id: u64 = id.parse().ok()?;
    DateTime::from_timestamp_millis(((id >> 22) + 1_420_070_400_000) as i64)
}

impl DiscordAdapter {
    fn verify(&self, req: &InboundRequest<'_>, now: DateTime<Utc>) -> Result<(), InboundError> {
        let signature = req
            .header("x-signature-ed25519")
            .ok_or_else(|| InboundError::unauthenticated(P, "no X-Signature-Ed25519 header"))?;
        let timestamp = req
            .header("x-signature-timestamp")
            .ok_or_else(|| InboundError::unauthenticated(P, "no X-Signature-Timestamp header"))?;
        let signature: [u8; 64] = hex::decode(signature.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                InboundError::forged(P, "X-Signature-Ed25519 is not 64 hex bytes", 401)
            })?;
        let mut message = Vec::with_capacity(timestamp.len() + req.body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(req.body);
        self.key
            .verify_strict(&message, &Signature::from_bytes(&signature))
            .map_err(|_| InboundError::forged(P, "Ed25519 signature does not verify", 401))?;
        check_fresh(P, timestamp, now, self.max_skew_secs)
    }
}

impl DiscordAdapter {
    /// A press of one of our buttons becomes the typed command from the
    /// presser (`member.user` in a guild, `user` in a DM) in `channel_id`;
    /// other components are acknowledged and dropped.
    fn component(
        &self,
        mut interaction: Interaction,
        now: DateTime<Utc>,
    ) -> Result<Inbound, InboundError> {
        let deferred_update = Ack::Json(json!({"type": 6}));
        let Some(choice) = interaction
            .data
            .as_ref()
            .and_then(|d| d.custom_id.as_deref())
            .and_then(buttons::Choice::parse)
        else {
            return Ok(Inbound::ack(deferred_update));
        };
        let Origin {
            user,
            channel,
            token,
        } = Origin::of(&mut interaction)?;
        let mut metadata = BTreeMap::new();
        metadata.insert("discord.interaction_token".into(), json!(token));
        metadata.insert("discord.component".into(), json!(true));
        choice.annotate(&mut metadata);
        let normalized = Normalized {
            timestamp: snowflake_time(&interaction.id).unwrap_or(now),
            event_id: interaction.id,
            user_id: user.id,
            thread_id: channel,
            text: choice.command(),
            attachments: Vec::new(),
            metadata,
        };
        Ok(Inbound {
            events: vec![normalized.into_envelope(P, "discord-ed25519")],
            ack: deferred_update,
        })
    }

    /// The answer to a press, on the press's interaction webhook.
    fn press_answer(
        &self,
        packet: &ResponsePacket,
        token: &str,
        choice: &buttons::Choice,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        let webhook = format!("webhooks/{}/{}", self.config.application_id, token);
        let (method, path, body) = if buttons::decided(&packet.text) {
            let outcome = buttons::outcome_text(choice, &packet.text);
            let body = json!({
                "content": clip_utf16(&format::discord_markdown(&outcome), TEXT_LIMIT),
                "components": [],
                "allowed_mentions": {"parse": []},
            });
            ("PATCH", format!("{webhook}/messages/@original"), body)
        } else {
            let body = json!({
                "content": clip_utf16(&format::discord_markdown(&packet.text), TEXT_LIMIT),
                "flags": EPHEMERAL,
                "allowed_mentions": {"parse": []},
            });
            ("POST", webhook, body)
        };
        parts_routed(P, packet, method, &packet.thread_id, vec![(path, body)])
    }
}

/// At most `max` UTF-16 code units of `text` (Discord counts in them).
fn clip_utf16(text: &str, max: usize) -> String {
    let mut used = 0;
    text.chars()
        .take_while(|c| {
            used += c.len_utf16();
            used <= max
        })
        .collect()
}

/// The message carrying an approval prompt's buttons: one action row (type
/// 1) with a success (3) and a danger (4) button (type 2).
fn offer_message(offer: &buttons::ApprovalOffer) -> Value {
    let button = |label: &str, style: u8, choice: buttons::Choice| json!({"type": 2, "style": style, "label": label, "custom_id": choice.data()});
    json!({
        "content": format::discord_markdown(&offer.text()),
        "allowed_mentions": {"parse": []},
        "components": [{"type": 1, "components": [
            button("Approve", 3, buttons::Choice::Approve(offer.id.clone())),
            button("Deny", 4, buttons::Choice::Deny(offer.id.clone())),
        ]}],
    })
}

impl BridgeAdapter for DiscordAdapter {
    fn platform(&self) -> Platform {
        P
    }

    fn on_request(
        &self,
        req: &InboundRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<Inbound, InboundError> {
        if req.method != "POST" {
            return Err(InboundError::MethodNotAllowed { platform: P });
        }
        self.verify(req, now)?;
        let mut interaction: Interaction = parse_json(P, req.body)?;
        match interaction.kind {
            1 => return Ok(Inbound::ack(Ack::Json(json!({"type": 1})))),
            2 => {}
            3 => return self.component(interaction, now),
            // autocomplete: no suggestions
            4 => {
                return Ok(Inbound::ack(Ack::Json(
                    json!({"type": 8, "data": {"choices": []}}),
                )));
            }
            // components and modals: acknowledge without changing the message
            _ => return Ok(Inbound::ack(Ack::Json(json!({"type": 6})))),
        }
        let Origin {
            user,
            channel,
            token,
        } = Origin::of(&mut interaction)?;
        let data = interaction
            .data
            .ok_or_else(|| InboundError::malformed(P, "data", "missing"))?;
        let values: Vec<String> = data
            .options
            .iter()
            .filter_map(|o| match &o.value {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => Some(format!("{}={v}", o.name)),
                None => None,
            })
            .collect();
        let text = if values.is_empty() {
            format!("/{}", data.name)
        } else {
            values.join(" ")
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("discord.interaction_token".into(), json!(token));
        metadata.insert("discord.command".into(), json!(data.name));
        if let Some(guild) = interaction.guild_id {
            metadata.insert("discord.guild_id".into(), json!(guild));
        }
        if let Some(name) = user.username {
            metadata.insert("discord.username".into(), json!(name));
        }
        let normalized = Normalized {
            timestamp: snowflake_time(&interaction.id).unwrap_or(now),
            event_id: interaction.id,
            user_id: user.id,
            thread_id: channel,
            text,
            attachments: Vec::new(),
            metadata,
        };
        Ok(Inbound {
            events: vec![normalized.into_envelope(P, "discord-ed25519")],
            // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: the answer follows up.
            ack: Ack::Json(json!({"type": 5})),
        })
    }

    fn render(
        &self,
        packet: &ResponsePacket,
        origin: Option<&ReplyOrigin>,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        if let (Some(choice), Some(token)) = (
            buttons::press_of(origin),
            origin_str(origin, "discord.interaction_token"),
        ) {
            return self.press_answer(packet, token, &choice);
        }
        let path = match origin_str(origin, "discord.interaction_token") {
            Some(token) => format!(
                "webhooks/{}/{}?wait=true",
                self.config.application_id, token
            ),
            None if packet.thread_id.chars().all(|c| c.is_ascii_digit()) => {
                format!("channels/{}/messages", packet.thread_id)
            }
            None => {
                return Err(RenderError::BadTarget {
                    platform: P,
                    thread_id: packet.thread_id.clone(),
                    detail: "not a channel id".into(),
                });
            }
        };
        let pieces = split_rendered(
            &text_with_links(packet, |a| is_local_file(&a.reference)),
            TEXT_LIMIT,
            format::discord_markdown,
            |s| Unit::Utf16.measure(s),
        );
        let offer = buttons::approval_offer(packet).map(|o| (offer_message(&o), None));
        // Local files: one message each, `multipart/form-data` with the
        // message as `payload_json` and the file as `files[0]`, which the
        // message's `attachments` names by id
        // (<https://discord.com/developers/docs/reference#uploading-files>).
        let files = packet.attachments.iter().filter_map(|a| {
            let upload = FileUpload::of(a, "files[0]", upload::limit(P, Media::of(&a.kind)))?;
            let body = json!({
                "attachments": [{"id": 0, "filename": upload.file_name}],
                "allowed_mentions": {"parse": []},
            });
            Some((body, Some(upload)))
        });
        let (bodies, uploads): (Vec<Value>, Vec<_>) = pieces
            .into_iter()
            .map(|content| {
                (
                    json!({"content": content, "allowed_mentions": {"parse": []}}),
                    None,
                )
            })
            .chain(files)
            .chain(offer)
            .unzip();
        with_uploads(
            parts(P, packet, "POST", &path, &packet.thread_id, bodies),
            uploads,
        )
    }

    fn inline_notice(&self, text: &str) -> Option<Ack> {
        // CHANNEL_MESSAGE_WITH_SOURCE, visible only to the sender.
        Some(Ack::Json(json!({
            "type": 4,
            "data": {
                "content": format::discord_markdown(text),
                "flags": EPHEMERAL,
                "allowed_mentions": {"parse": []},
            }
        })))
    }
}
