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
//!
//! A platform section is one table (the account named `default`) or an
//! array of tables, one per account, each with its own `account` name, so
//! two Telegram bots can serve one daemon:
//!
//! ```toml
//! [[telegram]]
//! account = "home"
//! bot_token = "..."
//! [[telegram]]
//! account = "work"
//! bot_token = "..."
//! ```
//!
//! Each account gets its own webhook route, `/hooks/{platform}/{account}`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::Platform;

/// The account name of a platform section that names none.
pub const DEFAULT_ACCOUNT: &str = "default";

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
    /// Keep each platform's documented send rate (lazy token buckets). Turn
    /// off only against a fake platform, as `opticlaw bench gateway` does.
    #[serde(default = "default_true")]
    pub send_rate_limits: bool,
    /// Directories whose files replies may upload to a platform (an
    /// attachment that is a local path); none by default, so no local
    /// file ever leaves the machine unless the owner lists its directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upload_dirs: Vec<std::path::PathBuf>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub slack: Vec<SlackConfig>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub telegram: Vec<TelegramConfig>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub discord: Vec<DiscordConfig>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub whatsapp: Vec<WhatsAppConfig>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matrix: Vec<MatrixConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_skew_secs: default_max_skew_secs(),
            send_rate_limits: true,
            upload_dirs: Vec::new(),
            slack: Vec::new(),
            telegram: Vec::new(),
            discord: Vec::new(),
            whatsapp: Vec::new(),
            matrix: Vec::new(),
        }
    }
}

/// Why a gateway config is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An account name that cannot be a route segment.
    #[error("[gateway.{platform}] account `{account}`: use 1-32 of a-z, 0-9, `_` and `-`")]
    BadAccountName { platform: Platform, account: String },
    /// Two sections of one platform with the same account name.
    #[error("[gateway.{platform}] account `{account}` is configured twice")]
    DuplicateAccount { platform: Platform, account: String },
}

impl GatewayConfig {
    /// Every configured account, as `(channel, allow-list)`, in config order.
    pub fn accounts(&self) -> Vec<(crate::Channel, &[String])> {
        fn each<'a, T>(
            platform: Platform,
            items: &'a [T],
            get: impl Fn(&'a T) -> (&'a str, &'a [String]),
        ) -> impl Iterator<Item = (crate::Channel, &'a [String])> {
            items.iter().map(move |item| {
                let (account, allow) = get(item);
                (crate::Channel::new(platform, account), allow)
            })
        }
        each(Platform::Slack, &self.slack, |c| {
            (&c.account, &c.allow_from)
        })
        .chain(each(Platform::Telegram, &self.telegram, |c| {
            (&c.account, &c.allow_from)
        }))
        .chain(each(Platform::Discord, &self.discord, |c| {
            (&c.account, &c.allow_from)
        }))
        .chain(each(Platform::WhatsApp, &self.whatsapp, |c| {
            (&c.account, &c.allow_from)
        }))
        .chain(each(Platform::Matrix, &self.matrix, |c| {
            (&c.account, &c.allow_from)
        }))
        .collect()
    }

    /// The allow-list configured for an account (empty when it is absent).
    pub fn allow_from(&self, channel: &crate::Channel) -> &[String] {
        self.accounts()
            .into_iter()
            .find(|(c, _)| c == channel)
            .map(|(_, allow)| allow)
            .unwrap_or(&[])
    }

    /// Checks account names: route-safe and unique per platform.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for (channel, _) in self.accounts() {
            let ok = (1..=32).contains(&channel.account.len())
                && channel.account.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(ConfigError::BadAccountName {
                    platform: channel.platform,
                    account: channel.account,
                });
            }
            if !seen.insert(channel.clone()) {
                return Err(ConfigError::DuplicateAccount {
                    platform: channel.platform,
                    account: channel.account,
                });
            }
        }
        Ok(())
    }
}

/// Reads a platform section written either as one table or as an array of tables.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OneOrMany<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table, or an array of tables with one `account` each")
        }
        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Vec<T>, M::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|one| vec![one])
        }
        fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Vec<T>, S::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }
    deserializer.deserialize_any(OneOrMany(PhantomData))
}

fn default_account() -> String {
    DEFAULT_ACCOUNT.to_owned()
}

fn default_true() -> bool {
    true
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
    /// The account's name: its route is `/hooks/{platform}/{account}`.
    #[serde(default = "default_account")]
    pub account: String,
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
    /// The account's name: its route is `/hooks/{platform}/{account}`.
    #[serde(default = "default_account")]
    pub account: String,
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
    /// Receive through `getUpdates` long-polling instead of a webhook, for a
    /// daemon with no public URL (the bot must have no webhook set).
    #[serde(default)]
    pub long_poll: bool,
    /// How long one `getUpdates` call may wait at Telegram, in seconds.
    #[serde(default = "default_poll_timeout_secs")]
    pub poll_timeout_secs: u64,
}

fn default_sync_timeline_limit() -> u32 {
    100
}

fn default_poll_timeout_secs() -> u64 {
    50
}

/// Discord application receiving interactions over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The account's name: its route is `/hooks/{platform}/{account}`.
    #[serde(default = "default_account")]
    pub account: String,
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
    /// The account's name: its route is `/hooks/{platform}/{account}`.
    #[serde(default = "default_account")]
    pub account: String,
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

/// Matrix: an application service registration, or (`sync = true`) a plain
/// bot user that receives through the client-server `/sync` long-poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// The account's name: its route is `/hooks/{platform}/{account}`.
    #[serde(default = "default_account")]
    pub account: String,
    /// Token the homeserver presents to us (`hs_token` in the registration
    /// file); application-service mode only.
    #[serde(default)]
    pub hs_token: Option<Secret>,
    /// Token we present to the homeserver: the registration's `as_token`, or
    /// the bot user's access token in sync mode.
    pub as_token: Secret,
    /// Receive as a plain bot user through `/sync` long-polling instead of
    /// application-service transactions.
    #[serde(default)]
    pub sync: bool,
    /// How long one `/sync` call may wait at the homeserver, in seconds.
    #[serde(default = "default_poll_timeout_secs")]
    pub sync_timeout_secs: u64,
    /// Messages per room in one `/sync` answer; older ones are fetched
    /// with `/messages`, so a smaller value only means more calls.
    #[serde(default = "default_sync_timeline_limit")]
    pub sync_timeline_limit: u32,
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
