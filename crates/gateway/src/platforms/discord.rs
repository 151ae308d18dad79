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

use super::{Normalized, origin_str, parts, text_with_attachments};
use crate::adapter::{check_fresh, parse_json};
use crate::split::{Unit, split_rendered};
use crate::{
    Ack, BridgeAdapter, DiscordConfig, Inbound, InboundError, InboundRequest, OutboundMessage,
    Platform, RenderError, ReplyOrigin, format,
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
        let interaction: Interaction = parse_json(P, req.body)?;
        match interaction.kind {
            1 => return Ok(Inbound::ack(Ack::Json(json!({"type": 1})))),
            2 => {}
            // autocomplete: no suggestions
            4 => {
                return Ok(Inbound::ack(Ack::Json(
                    json!({"type": 8, "data": {"choices": []}}),
                )));
            }
            // components and modals: acknowledge without changing the message
            _ => return Ok(Inbound::ack(Ack::Json(json!({"type": 6})))),
        }
        let user = interaction
            .member
            .map(|m| m.user)
            .or(interaction.user)
            .ok_or_else(|| InboundError::malformed(P, "member.user", "missing"))?;
        let data = interaction
            .data
            .ok_or_else(|| InboundError::malformed(P, "data", "missing"))?;
        let channel = interaction
            .channel_id
            .ok_or_else(|| InboundError::malformed(P, "channel_id", "missing"))?;
        let token = interaction
            .token
            .ok_or_else(|| InboundError::malformed(P, "token", "missing"))?;
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
            &text_with_attachments(packet),
            TEXT_LIMIT,
            format::discord_markdown,
            |s| Unit::Utf16.measure(s),
        );
        let bodies = pieces
            .into_iter()
            .map(|content| json!({"content": content, "allowed_mentions": {"parse": []}}))
            .collect();
        parts(P, packet, "POST", &path, &packet.thread_id, bodies)
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
