//! Telegram Bot API.
//!
//! Webhook mode: `setWebhook` was given a `secret_token`, and Telegram sends
//! it in `X-Telegram-Bot-Api-Secret-Token` on every request
//! (<https://core.telegram.org/bots/api#setwebhook>); it is compared in
//! constant time. Telegram retries an update until it gets a 2xx, and every
//! retry carries the same `update_id`, which is the event id, so the store
//! keeps one copy.
//!
//! Long-poll mode, for users with no public URL: [`TelegramPoller`] calls
//! `getUpdates` with a long `timeout` (<https://core.telegram.org/bots/api#getupdates>):
//! the request blocks at Telegram until an update arrives, so an idle bot
//! makes one request per timeout and wakes nothing on a timer.
//!
//! Outbound: `sendMessage` with MarkdownV2 (or HTML), split at 4,096
//! characters (counted in UTF-16 code units, which is never fewer).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opticlaw_core::{Attachment, EventEnvelope, ResponsePacket};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Media, Normalized, clip, from_unix, is_local_file, is_web_url, parts_routed, text_with_links,
    with_uploads,
};
use crate::adapter::parse_json;
use crate::split::{Unit, split_rendered};
use crate::upload::{self, FileUpload};
use crate::{
    Ack, BridgeAdapter, Inbound, InboundError, InboundRequest, OutboundMessage, Platform,
    RenderError, ReplyOrigin, TelegramConfig, TelegramParseMode, buttons, format,
};

/// Telegram's maximum message length.
pub const TEXT_LIMIT: usize = 4096;
/// Media captions: 0-1024 characters.
pub const CAPTION_LIMIT: usize = 1024;
/// The secret-token header.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
const P: Platform = Platform::Telegram;

/// The Telegram bridge.
#[derive(Debug, Clone)]
pub struct TelegramAdapter {
    config: TelegramConfig,
}

impl TelegramAdapter {
    /// A bridge for one bot.
    pub fn new(config: TelegramConfig) -> Self {
        Self { config }
    }
}

/// An `Update` (only the fields the gateway uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    /// A press of an inline keyboard button
    /// (<https://core.telegram.org/bots/api#callbackquery>).
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

/// A `CallbackQuery`: who pressed which button under which message.
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The message with the button; absent for inline-mode messages, which
    /// name no chat (so no approval can be bound to them).
    #[serde(default)]
    pub message: Option<Message>,
    /// The button's `callback_data`. A modified client can send anything here.
    #[serde(default)]
    pub data: Option<String>,
}

/// A `Message` (only the fields the gateway uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    pub date: i64,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub photo: Vec<FileRef>,
    #[serde(default)]
    pub document: Option<FileRef>,
    #[serde(default)]
    pub voice: Option<FileRef>,
    #[serde(default)]
    pub audio: Option<FileRef>,
    #[serde(default)]
    pub video: Option<FileRef>,
}

/// A `User`.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub username: Option<String>,
}

/// A `Chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Any file object (`PhotoSize`, `Document`, `Voice`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct FileRef {
    pub file_id: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub file_size: Option<u64>,
}

/// Normalizes one update; `None` for updates that carry no user message
/// and no press of one of our buttons.
pub fn normalize(update: Update) -> Option<EventEnvelope> {
    if let Some(press) = update.callback_query {
        return normalize_press(update.update_id, press);
    }
    let message = update.message?;
    let from = message.from.filter(|u| !u.is_bot)?;
    let mut attachments = Vec::new();
    let mut add = |kind: &str, file: FileRef| {
        attachments.push(Attachment {
            kind: kind.to_owned(),
            name: file.file_name,
            mime_type: file.mime_type,
            reference: file.file_id,
            size_bytes: file.file_size,
        })
    };
    // The last photo size is the largest.
    if let Some(photo) = message.photo.into_iter().last() {
        add("image", photo);
    }
    for (kind, file) in [
        ("file", message.document),
        ("voice", message.voice),
        ("audio", message.audio),
        ("video", message.video),
    ] {
        if let Some(file) = file {
            add(kind, file);
        }
    }
    let text = message.text.or(message.caption).unwrap_or_default();
    if text.is_empty() && attachments.is_empty() {
        return None;
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("telegram.update_id".into(), json!(update.update_id));
    metadata.insert("telegram.message_id".into(), json!(message.message_id));
    metadata.insert("telegram.chat_type".into(), json!(message.chat.kind));
    if let Some(thread) = message.message_thread_id {
        metadata.insert("telegram.message_thread_id".into(), json!(thread));
    }
    if let Some(username) = from.username {
        metadata.insert("telegram.username".into(), json!(username));
    }
    let normalized = Normalized {
        event_id: update.update_id.to_string(),
        user_id: from.id.to_string(),
        thread_id: message.chat.id.to_string(),
        timestamp: from_unix(message.date),
        text,
        attachments,
        metadata,
    };
    Some(normalized.into_envelope(P, "telegram-secret-token"))
}

/// A button press becomes the typed command it stands for, from the user
/// who pressed it (`callback_query.from`) in the chat of the message that
/// carries the button (`callback_query.message.chat`), so the approval check
/// treats it exactly like `/approve ID` typed there. The event id is the
/// `update_id`, so a redelivered update is stored once.
fn normalize_press(update_id: i64, press: CallbackQuery) -> Option<EventEnvelope> {
    let message = press.message?;
    if press.from.is_bot {
        return None;
    }
    let choice = buttons::Choice::parse(press.data.as_deref()?)?;
    let mut metadata = BTreeMap::new();
    metadata.insert("telegram.update_id".into(), json!(update_id));
    metadata.insert("telegram.callback_query_id".into(), json!(press.id));
    metadata.insert(
        "telegram.button_message_id".into(),
        json!(message.message_id),
    );
    metadata.insert("telegram.chat_type".into(), json!(message.chat.kind));
    if let Some(thread) = message.message_thread_id {
        metadata.insert("telegram.message_thread_id".into(), json!(thread));
    }
    choice.annotate(&mut metadata);
    let normalized = Normalized {
        event_id: update_id.to_string(),
        user_id: press.from.id.to_string(),
        thread_id: message.chat.id.to_string(),
        // A callback query carries no date of its own.
        timestamp: Utc::now(),
        text: choice.command(),
        attachments: Vec::new(),
        metadata,
    };
    Some(normalized.into_envelope(P, "telegram-secret-token"))
}

/// The calls that answer a button press: `answerCallbackQuery` always (the
/// client shows a progress bar until it comes,
/// <https://core.telegram.org/bots/api#answercallbackquery>; text 0-200
/// characters, an alert for refusals), and, once the request is decided,
/// `editMessageText` on the buttons' message, which shows the outcome and,
/// having no `reply_markup`, removes the keyboard
/// (<https://core.telegram.org/bots/api#editmessagetext>). A refusal (another
/// member of the group, a second click) leaves the buttons for the user who
/// may still decide.
fn press_answer(
    chat_id: &Value,
    choice: &buttons::Choice,
    origin: &ReplyOrigin,
    text: &str,
) -> Vec<(String, Value)> {
    let mut calls = Vec::new();
    let decided = buttons::decided(text);
    if let Some(query) = origin.get("telegram.callback_query_id") {
        calls.push((
            "answerCallbackQuery".to_owned(),
            json!({"callback_query_id": query, "text": clip(text, 200), "show_alert": !decided}),
        ));
    }
    if let (true, Some(message_id)) = (decided, origin.get("telegram.button_message_id")) {
        calls.push((
            "editMessageText".to_owned(),
            json!({
                "chat_id": chat_id,
                "message_id": message_id,
                "text": clip(&buttons::outcome_text(choice, text), TEXT_LIMIT),
            }),
        ));
    }
    calls
}

/// The message carrying an approval prompt's buttons: an inline keyboard
/// whose buttons send `callback_data` back in a `callback_query`
/// (<https://core.telegram.org/bots/api#inlinekeyboardmarkup>).
fn offer_message(chat_id: &Value, offer: &buttons::ApprovalOffer) -> (String, Value) {
    let approve = buttons::Choice::Approve(offer.id.clone());
    let deny = buttons::Choice::Deny(offer.id.clone());
    let body = json!({
        "chat_id": chat_id,
        "text": offer.text(),
        "reply_markup": {"inline_keyboard": [[
            {"text": "Approve", "callback_data": approve.data()},
            {"text": "Deny", "callback_data": deny.data()},
        ]]},
    });
    ("sendMessage".to_owned(), body)
}

impl BridgeAdapter for TelegramAdapter {
    fn platform(&self) -> Platform {
        P
    }

    fn on_request(
        &self,
        req: &InboundRequest<'_>,
        _now: DateTime<Utc>,
    ) -> Result<Inbound, InboundError> {
        if req.method != "POST" {
            return Err(InboundError::MethodNotAllowed { platform: P });
        }
        let Some(expected) = &self.config.webhook_secret else {
            return Err(InboundError::forged(
                P,
                "no webhook secret configured; webhook mode is disabled",
                403,
            ));
        };
        let presented = req.header(SECRET_HEADER).ok_or_else(|| {
            InboundError::unauthenticated(P, "no X-Telegram-Bot-Api-Secret-Token header")
        })?;
        if !expected.matches(presented.as_bytes()) {
            return Err(InboundError::forged(
                P,
                "X-Telegram-Bot-Api-Secret-Token does not match",
                403,
            ));
        }
        let update: Update = parse_json(P, req.body)?;
        Ok(Inbound {
            events: normalize(update).into_iter().collect(),
            ack: Ack::Ok,
        })
    }

    fn render(
        &self,
        packet: &ResponsePacket,
        origin: Option<&ReplyOrigin>,
    ) -> Result<Vec<OutboundMessage>, RenderError> {
        let chat_id: Value = match packet.thread_id.parse::<i64>() {
            Ok(id) => json!(id),
            Err(_) if packet.thread_id.starts_with('@') => json!(packet.thread_id),
            Err(_) => {
                return Err(RenderError::BadTarget {
                    platform: P,
                    thread_id: packet.thread_id.clone(),
                    detail: "not a chat id or @channelusername".into(),
                });
            }
        };
        if let (Some(choice), Some(origin)) = (buttons::press_of(origin), origin) {
            let calls = press_answer(&chat_id, &choice, origin, &packet.text);
            return parts_routed(P, packet, "POST", &packet.thread_id, calls);
        }
        let (render, mode): (fn(&str) -> String, &str) = match self.config.parse_mode {
            TelegramParseMode::MarkdownV2 => (format::telegram_markdown_v2, "MarkdownV2"),
            TelegramParseMode::Html => (format::telegram_html, "HTML"),
        };
        // Attachments at a URL go out natively: Telegram fetches the file
        // (<https://core.telegram.org/bots/api#sending-files>); local files
        // are uploaded as multipart/form-data. Others are listed.
        let native = |a: &Attachment| is_web_url(&a.reference) || is_local_file(&a.reference);
        let text = text_with_links(packet, native);
        let pieces: Vec<String> =
            split_rendered(&text, TEXT_LIMIT, render, |s| Unit::Utf16.measure(s))
                .into_iter()
                .filter(|piece| !piece.trim().is_empty())
                .collect();
        let reply_to = origin.and_then(|o| o.get("telegram.message_id")).cloned();
        let topic = origin
            .and_then(|o| o.get("telegram.message_thread_id"))
            .cloned();
        let texts = pieces.into_iter().map(|text| {
            let body = json!({
                "chat_id": chat_id,
                "text": text,
                "parse_mode": mode,
                "link_preview_options": {"is_disabled": true},
            });
            (("sendMessage".to_owned(), body), None)
        });
        let files = packet.attachments.iter().filter(|a| native(a)).map(|a| {
            let (method, field) = match Media::of(&a.kind) {
                Media::Image => ("sendPhoto", "photo"),
                Media::Audio => ("sendAudio", "audio"),
                Media::Video => ("sendVideo", "video"),
                Media::File => ("sendDocument", "document"),
            };
            let upload = FileUpload::of(a, field, upload::limit(P, Media::of(&a.kind)));
            let mut body = json!({"chat_id": chat_id});
            if upload.is_none() {
                body[field] = json!(a.reference);
            }
            if let Some(name) = &a.name {
                body["caption"] = json!(clip(name, CAPTION_LIMIT));
            }
            ((method.to_owned(), body), upload)
        });
        let offer = buttons::approval_offer(packet).map(|o| (offer_message(&chat_id, &o), None));
        let (mut bodies, uploads): (Vec<(String, Value)>, Vec<_>) =
            texts.chain(files).chain(offer).unzip();
        for (i, (_, body)) in bodies.iter_mut().enumerate() {
            if let (0, Some(id)) = (i, &reply_to) {
                body["reply_parameters"] =
                    json!({"message_id": id, "allow_sending_without_reply": true});
            }
            if let Some(topic) = &topic {
                body["message_thread_id"] = topic.clone();
            }
        }
        let rendered = parts_routed(P, packet, "POST", &packet.thread_id, bodies);
        with_uploads(rendered, uploads)
    }
}

/// Why a long-poll call failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Network or timeout.
    #[error("telegram getUpdates transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// 429: wait this long before the next call.
    #[error("telegram getUpdates rate limited; retry after {0:?}")]
    RateLimited(Duration),
    /// Any other refusal (401 bad token, 409 a webhook is set...).
    #[error("telegram getUpdates refused ({status}): {description}")]
    Refused { status: u16, description: String },
}

/// Long-poll client for `getUpdates`. Each [`TelegramPoller::next_batch`]
/// is one blocking wait at Telegram of up to `timeout_secs`.
#[derive(Debug)]
pub struct TelegramPoller {
    client: reqwest::Client,
    api_base: String,
    token: crate::Secret,
    offset: i64,
    timeout_secs: u64,
}

impl TelegramPoller {
    /// A poller starting at `offset` (the last stored `update_id + 1`, or 0).
    pub fn new(
        client: reqwest::Client,
        config: &TelegramConfig,
        offset: i64,
        timeout_secs: u64,
    ) -> Self {
        Self {
            client,
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            token: config.bot_token.clone(),
            offset,
            timeout_secs,
        }
    }

    /// The offset the next call confirms from: every update below it has
    /// been returned. Persist it after the returned events are stored.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Waits for the next updates (an empty batch when the timeout passes with none).
    pub async fn next_batch(&mut self) -> Result<Vec<EventEnvelope>, PollError> {
        let url = format!("{}/bot{}/getUpdates", self.api_base, self.token.expose());
        let response = self
            .client
            .post(url)
            .timeout(Duration::from_secs(self.timeout_secs + 15))
            .json(&json!({
                "offset": self.offset,
                "timeout": self.timeout_secs,
                "allowed_updates": ["message", "callback_query"],
            }))
            .send()
            .await
            // without the URL: it carries the bot token
            .map_err(reqwest::Error::without_url)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(reqwest::Error::without_url)?;
        if status == 429 {
            let secs = body["parameters"]["retry_after"].as_u64().unwrap_or(1);
            return Err(PollError::RateLimited(Duration::from_secs(secs)));
        }
        if body["ok"] != json!(true) {
            return Err(PollError::Refused {
                status,
                description: body["description"].as_str().unwrap_or("").to_owned(),
            });
        }
        let updates: Vec<Value> = body["result"].as_array().cloned().unwrap_or_default();
        let mut events = Vec::new();
        for raw in updates {
            if let Some(id) = raw["update_id"].as_i64() {
                self.offset = self.offset.max(id + 1);
            }
            if let Ok(update) = serde_json::from_value::<Update>(raw) {
                events.extend(normalize(update));
            }
        }
        Ok(events)
    }
}
