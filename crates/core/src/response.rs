use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Attachment;

/// One outbound message, neutral of any platform's formatting; the bridge
/// renders it for its channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponsePacket {
    /// Monotonic per store: clients resume a stream with `after=<seq>`.
    pub seq: i64,
    /// The inbound event this answers; `None` for a reminder or a notice.
    #[serde(default)]
    pub in_reply_to: Option<String>,
    pub source: String,
    pub user_id: String,
    pub thread_id: String,
    pub kind: ResponseKind,
    /// Neutral markdown: `*bold*`, `_italic_`, `` `code` ``, links.
    pub text: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    Reply,
    Reminder,
    Notice,
}

impl ResponseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Reply => "reply",
            ResponseKind::Reminder => "reminder",
            ResponseKind::Notice => "notice",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "reply" => Some(Self::Reply),
            "reminder" => Some(Self::Reminder),
            "notice" => Some(Self::Notice),
            _ => None,
        }
    }
}
