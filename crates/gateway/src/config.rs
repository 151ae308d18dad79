//! Gateway configuration: which platforms are mounted, their secrets, their
//! outbound API base URLs and who may talk to the assistant.
//!
//! The shape is plain serde so the daemon can embed it in its TOML config:
//!
//! ```toml
//! max_body_bytes = 1048576
//! [slack]
//! signing_secret = "..."
//! bot_token = "xoxb-..."
//! allow_from = ["U012ABCDEF"]
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string: compared in constant time and never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's value, for signing or for an outbound auth header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        crate::verify::constant_time_eq(self.0.as_bytes(), presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the gateway needs; a platform is mounted only when its section is present.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Largest accepted webhook body; larger requests get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Oldest accepted signed timestamp (Slack, Discord), in seconds.
    #[serde(default = "default_max_skew_secs")]
    pub max_skew_secs: i64,
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    #[serde(default)]
    pub telegram: Option<TelegramConfig>,
    #[serde(default)]
    pub discord: Option<DiscordConfig>,
    #[serde(default)]
    pub whatsapp: Option<WhatsAppConfig>,
    #[serde(default)]
    pub matrix: Option<MatrixConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_skew_secs: default_max_skew_secs(),
            slack: None,
            telegram: None,
            discord: None,
            whatsapp: None,
            matrix: None,
        }
    }
}

impl GatewayConfig {
    /// The allow-list configured for a platform (empty when the platform is absent).
    pub fn allow_from(&self, platform: crate::Platform) -> &[String] {
        use crate::Platform::*;
        match platform {
            Slack => self.slack.as_ref().map(|c| c.allow_from.as_slice()),
            Telegram => self.telegram.as_ref().map(|c| c.allow_from.as_slice()),
            Discord => self.discord.as_ref().map(|c| c.allow_from.as_slice()),
            WhatsApp => self.whatsapp.as_ref().map(|c| c.allow_from.as_slice()),
            Matrix => self.matrix.as_ref().map(|c| c.allow_from.as_slice()),
        }
        .unwrap_or(&[])
    }
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_skew_secs() -> i64 {
    // Slack: "reject requests with a timestamp more than five minutes from local time".
    5 * 60
}

/// Slack Events API app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's signing secret (Basic Information page).
    pub signing_secret: Secret,
    /// Bot token (`xoxb-...`) for `chat.postMessage`.
    pub bot_token: Secret,
    /// Platform user ids allowed without pairing; `"*"` allows everyone.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Web API base, e.g. `https://slack.com/api`.
    #[serde(default = "default_slack_api")]
    pub api_base: String,
}

/// How Telegram replies are formatted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TelegramParseMode {
    /// `parse_mode = "MarkdownV2"`.
    #[default]
    MarkdownV2,
    /// `parse_mode = "HTML"`.
    #[serde(rename = "HTML")]
    Html,
}

/// Telegram bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Bot token from @BotFather.
    pub bot_token: Secret,
    /// The `secret_token` given to `setWebhook`; required in webhook mode.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Bot API base, e.g. `https://api.telegram.org`.
    #[serde(default = "default_telegram_api")]
    pub api_base: String,
    #[serde(default)]
    pub parse_mode: TelegramParseMode,
}

/// Discord application receiving interactions over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// Application id (used for interaction follow-ups).
    pub application_id: String,
    /// The application's Ed25519 public key, hex (Developer Portal, General Information).
    pub public_key: String,
    /// Bot token for messages that answer no interaction (reminders); optional.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// REST base, e.g. `https://discord.com/api/v10`.
    #[serde(default = "default_discord_api")]
    pub api_base: String,
}

/// WhatsApp Cloud API phone number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// The Meta app secret that signs `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The verify token typed into the webhook settings (`hub.verify_token`).
    pub verify_token: Secret,
    /// System-user access token for `/messages`.
    pub access_token: Secret,
    /// The business phone number id that sends replies.
    pub phone_number_id: String,
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Graph API base including the version, e.g. `https://graph.facebook.com/v21.0`.
    #[serde(default = "default_whatsapp_api")]
    pub api_base: String,
}

/// Matrix application service registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Token the homeserver presents to us (`hs_token` in the registration file).
    pub hs_token: Secret,
    /// Token we present to the homeserver (`as_token`).
    pub as_token: Secret,
    /// Client-server API base, e.g. `https://matrix.example.org`.
    pub homeserver_url: String,
    /// The bot's own user id; its events are ignored so it never answers itself.
    pub bot_user_id: String,
    #[serde(default)]
    pub allow_from: Vec<String>,
}

fn default_slack_api() -> String {
    "https://slack.com/api".to_owned()
}
fn default_telegram_api() -> String {
    "https://api.telegram.org".to_owned()
}
fn default_discord_api() -> String {
    "https://discord.com/api/v10".to_owned()
}
fn default_whatsapp_api() -> String {
    "https://graph.facebook.com/v21.0".to_owned()
}
