use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One inbound event from any channel, normalized (blueprint 7.1).
///
/// `(source, event_id)` identifies an event for deduplication: a platform's
/// retry of the same update carries the same pair and is processed once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    /// The platform's own id for the event (a UUID for local events).
    pub event_id: String,
    /// The channel it came from: `local`, `telegram`, `slack`, ...
    pub source: String,
    pub user_id: String,
    pub thread_id: String,
    pub timestamp: DateTime<Utc>,
    pub content: Content,
    #[serde(default)]
    pub security: SecurityInfo,
    #[serde(default)]
    pub hints: Hints,
    /// Channel-specific extras that the core does not interpret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// Whether a message is a `/command` to the assistant rather than
/// conversation. Memory records neither a command nor its answer, so the
/// runtime does not wake memory for them.
///
/// ```
/// assert!(opticlaw_core::is_command("  /time"));
/// assert!(!opticlaw_core::is_command("what time is it? /s"));
/// ```
pub fn is_command(text: &str) -> bool {
    text.trim_start().starts_with('/')
}

impl EventEnvelope {
    /// A text message typed into the built-in local channel.
    pub fn local_text(user_id: &str, thread_id: &str, text: &str) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            source: "local".to_owned(),
            user_id: user_id.to_owned(),
            thread_id: thread_id.to_owned(),
            timestamp: Utc::now(),
            content: Content {
                text: text.to_owned(),
                attachments: Vec::new(),
            },
            security: SecurityInfo {
                signature_valid: true,
                verified_by: Some("local-api-token".to_owned()),
            },
            hints: Hints::default(),
            metadata: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub kind: String,
    pub name: Option<String>,
    pub mime_type: Option<String>,
    /// Where the bytes live (a platform file id or a local path); never inline.
    pub reference: String,
    pub size_bytes: Option<u64>,
}

/// What the bridge established about the request's authenticity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityInfo {
    pub signature_valid: bool,
    /// The mechanism that verified it (`slack-hmac-v0`, `local-api-token`, ...).
    #[serde(default)]
    pub verified_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    #[serde(default)]
    pub priority: Priority,
}

/// The router's four queue classes, most urgent first. Under load the router
/// sheds the lowest class first.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    UserBlocking,
    #[default]
    Interactive,
    Background,
    Maintenance,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::UserBlocking,
        Priority::Interactive,
        Priority::Background,
        Priority::Maintenance,
    ];

    /// 0 for the most urgent class, 3 for the least.
    pub fn rank(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::UserBlocking => "user_blocking",
            Priority::Interactive => "interactive",
            Priority::Background => "background",
            Priority::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}
