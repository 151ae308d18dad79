use opticlaw_core::{ResponseKind, ResponsePacket};
use serde::{Deserialize, Serialize};

/// How hard SQLite works to make a commit durable.
///
/// `Full` fsyncs the WAL on every commit (survives power loss); `Normal`
/// survives a process crash (`kill -9`) but may lose the last commits on
/// power loss. Group commit makes `Full` affordable, so it is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Pending,
    Done,
    Failed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Done => "done",
            EventStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "done" => EventStatus::Done,
            "failed" => EventStatus::Failed,
            _ => EventStatus::Pending,
        }
    }
}

/// The store's answer to an accepted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    /// The event's position in the log; stable across retries.
    pub seq: i64,
    /// `true` when `(source, event_id)` was already accepted: the caller must
    /// not process it again.
    pub duplicate: bool,
    pub status: EventStatus,
    /// For a duplicate already processed: the replies the first delivery produced.
    pub replies: Vec<ResponsePacket>,
}

/// A reply to be written to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReply {
    pub in_reply_to: Option<String>,
    pub source: String,
    pub user_id: String,
    pub thread_id: String,
    pub kind: ResponseKind,
    pub text: String,
}

/// A one-shot task to run at `wake_at_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeferredTask {
    pub task_id: String,
    pub wake_at_ms: i64,
    /// An optional JSON condition checked when it fires (not interpreted here).
    pub condition: Option<serde_json::Value>,
    pub payload: serde_json::Value,
    pub owner_source: String,
    pub owner_user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeferredTask {
    pub task_id: String,
    pub wake_at_ms: i64,
    pub condition: Option<serde_json::Value>,
    pub payload: serde_json::Value,
    pub owner_source: String,
    pub owner_user: String,
    pub status: String,
}

/// Everything one processed event changes, committed atomically: the event
/// is marked done together with its replies and the tasks it scheduled, so
/// a crash leaves either all of it or none (and the event is then redone).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub event_seq: i64,
    pub status: EventStatus,
    /// A JSON summary of how it was handled (`{"rule":"remind"}`).
    pub outcome: serde_json::Value,
    pub replies: Vec<NewReply>,
    pub schedule: Vec<NewDeferredTask>,
    pub cancel: Vec<String>,
}

impl Completion {
    /// Whether it adds or cancels a deferred task (the scheduler must then
    /// re-arm).
    pub fn touches_schedule(&self) -> bool {
        !self.schedule.is_empty() || !self.cancel.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    pub events_total: i64,
    pub events_pending: i64,
    pub replies_total: i64,
    pub deferred_pending: i64,
    pub next_wake_at_ms: Option<i64>,
    pub schema_version: i64,
}
