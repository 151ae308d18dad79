//! Slack Events API.
//!
//! Verification follows Slack's "Verifying requests from Slack"
//! (<https://api.slack.com/authentication/verifying-requests-from-slack>):
//! `X-Slack-Signature` is `v0=` + hex HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{raw body}` under the app's signing secret,
//! and requests whose timestamp is more than five minutes from local time are
//! rejected as possible replays. `url_verification` requests are answered
//! with their `challenge`. A retry (`X-Slack-Retry-Num`) carries the same
//! message, whose id is `{channel}:{ts}`, so the store sees it once; the same
//! id also folds the `message` and `app_mention` events Slack sends for one
//! mention.
//!
//! Outbound: `chat.postMessage` (<https://api.slack.com/methods/chat.postMessage>)
//! with mrkdwn text, split at Slack's recommended 4,000 characters.
//!
//! Interactivity (approval buttons): an approval prompt is followed by a
//! Block Kit message with an `actions` block of two buttons
//! (<https://api.slack.com/reference/block-kit/blocks#actions>). A press
//! arrives at the app's Interactivity Request URL,
//! `/hooks/slack/{account}/interactive`, as a form-encoded body whose
//! `payload` field is the `block_actions` JSON
//! (<https://api.slack.com/reference/interaction-payloads/block-actions>),
//! signed exactly like Events API requests, so it is verified the same way
//! before it is parsed. The outcome replaces the buttons' message with
//! `chat.update` (<https://api.slack.com/methods/chat.update>; `blocks`
//! without the `actions` block removes the buttons); a refusal goes only to
//! the presser with `chat.postEphemeral`
//! (<https://api.slack.com/methods/chat.postEphemeral>).

use chrono::{DateTime, Utc};
use opticlaw_core::{Attachment, ResponsePacket};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Media, Normalized, from_unix, is_local_file, origin_str, parts_routed, text_with_links,
    with_uploads,
};
use crate::adapter::{check_fresh, parse_json};
use crate::split::{Unit, split_rendered};
use crate::upload::{self, FileUpload};
use crate::verify::{hex_mac_matches, hmac_sha256};
use crate::{
    Ack, BridgeAdapter, Inbound, InboundError, InboundRequest, OutboundMessage, Platform,
    RenderError, ReplyOrigin, SlackConfig, buttons, format,
};

/// Slack's recommended maximum length of `text`.
pub const TEXT_LIMIT: usize = 4000;
const P: Platform = Platform::Slack;
/// The path parameter of the interactivity route (`/hooks/slack/{account}/interactive`).
pub const INTERACTIVE: &str = "interactive";

/// The Slack bridge.
#[derive(Debug, Clone)]
pub struct SlackAdapter {
    config: SlackConfig,
    max_skew_secs: i64,
}

impl SlackAdapter {
    /// A bridge for one Slack app.
    pub fn new(config: SlackConfig, max_skew_secs: i64) -> Self {
        Self {
            config,
            max_skew_secs,
        }
    }
}

/// Computes the `X-Slack-Signature` value for a body (also used by tests).
pub fn sign(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        signing_secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    format!("v0={}", hex::encode(mac))
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    event: Option<Value>,
}

#[derive(Deserialize)]
struct MessageEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    text: String,
    channel: String,
    ts: String,
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    channel_type: Option<String>,
    #[serde(default)]
    files: Vec<SlackFile>,
}

#[derive(Deserialize)]
struct SlackFile {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mimetype: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

impl SlackAdapter {
    fn verify(&self, req: &InboundRequest<'_>, now: DateTime<Utc>) -> Result<(), InboundError> {
        let signature = req
            .header("x-slack-signature")
            .ok_or_else(|| InboundError::unauthenticated(P, "no X-Slack-Signature header"))?;
        let timestamp = req.header("x-slack-request-timestamp").ok_or_else(|| {
            InboundError::unauthenticated(P, "no X-Slack-Request-Timestamp header")
        })?;
        // Signature first: a stale audit record then means "genuine but old".
        let expected = hmac_sha256(
            self.config.signing_secret.expose().as_bytes(),
            &[b"v0:", timestamp.as_bytes(), b":", req.body],
        );
        let presented = signature.strip_prefix("v0=").unwrap_or("");
        if !hex_mac_matches(&expected, presented) {
            return Err(InboundError::forged(
                P,
                "X-Slack-Signature does not match",
                401,
            ));
        }
        check_fresh(P, timestamp, now, self.max_skew_secs)
    }

    fn normalize(
        &self,
        envelope: &Envelope,
        req: &InboundRequest<'_>,
    ) -> Result<Option<Normalized>, InboundError> {
        let Some(raw) = &envelope.event else {
            return Err(InboundError::malformed(P, "event", "missing"));
        };
        if !matches!(
            raw.get("type").and_then(Value::as_str),
            Some("message" | "app_mention")
        ) {
            return Ok(None);
        }
        let event: MessageEvent = serde_json::from_value(raw.clone())
            .map_err(|e| InboundError::malformed(P, "event", e))?;
        // Ignore bots (ourselves included) and edits, deletions, joins...
        let plain = event.subtype.is_none() || event.subtype.as_deref() == Some("file_share");
        let Some(user) = event
            .user
            .clone()
            .filter(|_| event.bot_id.is_none() && plain)
        else {
            return Ok(None);
        };
        let secs = event
            .ts
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("slack.ts".into(), json!(event.ts));
        metadata.insert("slack.event_type".into(), json!(event.kind));
        if let Some(thread_ts) = &event.thread_ts {
            metadata.insert("slack.thread_ts".into(), json!(thread_ts));
        }
        if let Some(id) = &envelope.event_id {
            metadata.insert("slack.event_id".into(), json!(id));
        }
        if let Some(team) = &envelope.team_id {
            metadata.insert("slack.team_id".into(), json!(team));
        }
        if let Some(kind) = &event.channel_type {
            metadata.insert("slack.channel_type".into(), json!(kind));
        }
        if let Some(n) = req.header("x-slack-retry-num") {
            metadata.insert("slack.retry_num".into(), json!(n));
        }
        if let Some(reason) = req.header("x-slack-retry-reason") {
            metadata.insert("slack.retry_reason".into(), json!(reason));
        }
        let attachments = event
            .files
            .into_iter()
            .map(|f| Attachment {
                kind: "file".into(),
                name: f.name,
                mime_type: f.mimetype,
                reference: f.id,
                size_bytes: f.size,
            })
            .collect();
        Ok(Some(Normalized {
            event_id: format!("{}:{}", event.channel, event.ts),
            user_id: user,
            thread_id: event.channel,
            timestamp: from_unix(secs),
            text: event.text,
            attachments,
            metadata,
        }))
    }
}

/// The parts of a `block_actions` payload a button press needs.
#[derive(Deserialize)]
struct BlockActions {
    #[serde(rename = "type")]
    kind: String,
    user: IdOnly,
    #[serde(default)]
    channel: Option<IdOnly>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    actions: Vec<BlockAction>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
}

#[derive(Deserialize)]
struct BlockAction {
    #[serde(default)]
    value: Option<String>,
    action_ts: String,
}

impl SlackAdapter {
    /// A verified interactivity request: a press of one of our buttons
    /// becomes the typed command from `user.id` in `channel.id`; anything
    /// else is acknowledged and dropped.
    fn interactive(&self, req: &InboundRequest<'_>) -> Result<Inbound, InboundError> {
        let payload = form_urlencoded::parse(req.body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| InboundError::malformed(P, "payload", "missing form field"))?;
        let payload: BlockActions = parse_json(P, payload.as_bytes())?;
        if payload.kind != "block_actions" {
            return Ok(Inbound::ack(Ack::Ok));
        }
        let container = payload.container.unwrap_or(Container {
            message_ts: None,
            channel_id: None,
            thread_ts: None,
        });
        let channel = payload
            .channel
            .map(|c| c.id)
            .or(container.channel_id)
            .ok_or_else(|| InboundError::malformed(P, "channel", "missing"))?;
        let Some((action, choice)) = payload.actions.into_iter().find_map(|a| {
            let choice = buttons::Choice::parse(a.value.as_deref()?)?;
            Some((a, choice))
        }) else {
            return Ok(Inbound::ack(Ack::Ok));
        };
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("slack.interactive".into(), json!(true));
        if let Some(ts) = &container.message_ts {
            metadata.insert("slack.button_ts".into(), json!(ts));
        }
        if let Some(ts) = &container.thread_ts {
            metadata.insert("slack.thread_ts".into(), json!(ts));
        }
        choice.annotate(&mut metadata);
        let secs = action
            .action_ts
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let normalized = Normalized {
            // One press, one id: a resent payload is stored once.
            event_id: format!("press:{channel}:{}", action.action_ts),
            user_id: payload.user.id,
            thread_id: channel,
            timestamp: from_unix(secs),
            text: choice.command(),
            attachments: Vec::new(),
            metadata,
        };
        Ok(Inbound {
            events: vec![normalized.into_envelope(P, "slack-hmac-v0")],
            ack: Ack::Ok,
        })
    }

    /// The answer to a press: the buttons' message updated with the outcome
    /// once decided, else an ephemeral note to the presser.
    fn press_answer(
        &self,
        packet: &ResponsePacket,
        origin: Option<&ReplyOrigin>,
        choice: &buttons::Choice,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        let text = format::slack_mrkdwn(&packet.text);
        let call = match origin_str(origin, "slack.button_ts") {
            Some(ts) if buttons::decided(&packet.text) => {
                let outcome = format::slack_mrkdwn(&buttons::outcome_text(choice, &packet.text));
                let body = json!({
                    "channel": packet.thread_id,
                    "ts": ts,
                    "text": outcome,
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": outcome}}],
                });
                ("chat.update".to_owned(), body)
            }
            _ => {
                let body =
                    json!({"channel": packet.thread_id, "user": packet.user_id, "text": text});
                ("chat.postEphemeral".to_owned(), body)
            }
        };
        parts_routed(P, packet, "POST", &packet.thread_id, vec![call])
    }
}

/// The Block Kit message carrying an approval prompt's buttons.
fn offer_message(channel: &str, offer: &buttons::ApprovalOffer) -> Value {
    let button = |label: &str, style: &str, choice: buttons::Choice| {
        json!({
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "style": style,
            "action_id": format!("opticlaw_{}", label.to_lowercase()),
            "value": choice.data(),
        })
    };
    let text = offer.text();
    json!({
        "channel": channel,
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": text}},
            {"type": "actions", "block_id": "opticlaw_approval", "elements": [
                button("Approve", "primary", buttons::Choice::Approve(offer.id.clone())),
                button("Deny", "danger", buttons::Choice::Deny(offer.id.clone())),
            ]},
        ],
    })
}

impl BridgeAdapter for SlackAdapter {
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
        if req.path_param == Some(INTERACTIVE) {
            return self.interactive(req);
        }
        let envelope: Envelope = parse_json(P, req.body)?;
        match envelope.kind.as_str() {
            "url_verification" => {
                let challenge = envelope
                    .challenge
                    .clone()
                    .ok_or_else(|| InboundError::malformed(P, "challenge", "missing"))?;
                Ok(Inbound::ack(Ack::Text(challenge)))
            }
            "event_callback" => {
                let events = self
                    .normalize(&envelope, req)?
                    .map(|n| n.into_envelope(P, "slack-hmac-v0"))
                    .into_iter()
                    .collect();
                Ok(Inbound {
                    events,
                    ack: Ack::Ok,
                })
            }
            _ => Ok(Inbound::ack(Ack::Ok)),
        }
    }

    fn render(
        &self,
        packet: &ResponsePacket,
        origin: Option<&ReplyOrigin>,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        if let Some(choice) = buttons::press_of(origin) {
            return self.press_answer(packet, origin, &choice);
        }
        let thread_ts = origin_str(origin, "slack.thread_ts");
        let pieces = split_rendered(
            &text_with_links(packet, |a| is_local_file(&a.reference)),
            TEXT_LIMIT,
            format::slack_mrkdwn,
            |s| Unit::Utf16.measure(s),
        );
        let texts = pieces.into_iter().map(|text| {
            let body = json!({
                "channel": packet.thread_id,
                "text": text,
                "mrkdwn": true,
                "unfurl_links": false,
            });
            (("chat.postMessage".to_owned(), body), None)
        });
        // Local files: the uploader gets an upload URL, sends the bytes, and
        // this call (`files.completeUploadExternal`) shares the file in the
        // channel, its `files` filled in by the uploader.
        let files = packet.attachments.iter().filter_map(|a| {
            let upload = FileUpload::of(a, "file", upload::limit(P, Media::of(&a.kind)))?;
            let body = json!({"channel_id": packet.thread_id});
            Some((
                ("files.completeUploadExternal".to_owned(), body),
                Some(upload),
            ))
        });
        let offer = buttons::approval_offer(packet).map(|o| {
            (
                (
                    "chat.postMessage".to_owned(),
                    offer_message(&packet.thread_id, &o),
                ),
                None,
            )
        });
        let (mut bodies, uploads): (Vec<(String, Value)>, Vec<_>) =
            texts.chain(files).chain(offer).unzip();
        if let Some(ts) = thread_ts {
            for (_, body) in &mut bodies {
                body["thread_ts"] = json!(ts);
            }
        }
        let rendered = parts_routed(P, packet, "POST", &packet.thread_id, bodies);
        with_uploads(rendered, uploads)
    }
}
