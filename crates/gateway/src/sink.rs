//! Where verified events go: the daemon's durable store. The HTTP answer is
//! given only after [`EventSink::accept`] returns, so nothing acknowledged to
//! a platform is lost.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use opticlaw_core::{EventEnvelope, ResponseKind, ResponsePacket};
use serde::{Deserialize, Serialize};

use crate::Platform;

/// What the store did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accepted {
    /// Newly stored; it will be processed.
    Stored,
    /// `(source, event_id)` was already stored; it will not be processed again.
    Duplicate,
}

/// Why the store could not take an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// Overloaded; the platform should retry later (HTTP 429 + `Retry-After`).
    #[error("store is busy; retry after {retry_after_secs}s")]
    Busy { retry_after_secs: u64 },
    /// Any other failure (HTTP 500; the platform retries).
    #[error("store failed: {0}")]
    Failed(String),
}

/// A pairing code to deliver to an unknown sender, and only that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairingNotice {
    pub platform: Platform,
    /// The account's event source ([`crate::Channel::source`]), which routes the reply.
    pub source: String,
    pub user_id: String,
    /// Where to answer (the event's `thread_id`).
    pub thread_id: String,
    /// The inbound event that triggered it; its metadata addresses the reply.
    pub event_id: String,
    pub code: String,
    /// The text to send.
    pub text: String,
}

impl PairingNotice {
    /// The notice as a neutral reply, for the daemon's outbound queue. `seq`
    /// is left 0 for the store to assign.
    pub fn response_packet(&self) -> ResponsePacket {
        ResponsePacket {
            seq: 0,
            in_reply_to: Some(self.event_id.clone()),
            source: self.source.clone(),
            user_id: self.user_id.clone(),
            thread_id: self.thread_id.clone(),
            kind: ResponseKind::Notice,
            text: self.text.clone(),
            attachments: Vec::new(),
            created_at: chrono::Utc::now(),
        }
    }
}

/// The daemon's durable store, as the gateway sees it.
pub trait EventSink: Send + Sync + 'static {
    /// Stores one verified event from an allowed sender. Must deduplicate on
    /// `(source, event_id)`: platform retries carry the same pair.
    fn accept(
        &self,
        event: EventEnvelope,
    ) -> impl Future<Output = Result<Accepted, SinkError>> + Send;

    /// Queues a pairing notice for delivery to an unknown sender (the
    /// triggering event itself is not stored).
    fn notify(&self, notice: PairingNotice) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// An [`EventSink`] in memory, for tests: dedupes like the real store and can
/// be told to be busy.
#[derive(Debug, Default)]
pub struct MemorySink {
    inner: Mutex<MemorySinkState>,
}

#[derive(Debug, Default)]
struct MemorySinkState {
    seen: HashSet<(String, String)>,
    events: Vec<EventEnvelope>,
    notices: Vec<PairingNotice>,
    busy_secs: Option<u64>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored event, in order.
    pub fn events(&self) -> Vec<EventEnvelope> {
        self.inner.lock().expect("sink lock").events.clone()
    }

    /// Every pairing notice, in order.
    pub fn notices(&self) -> Vec<PairingNotice> {
        self.inner.lock().expect("sink lock").notices.clone()
    }

    /// Makes `accept` answer `Busy` (or stop doing so with `None`).
    pub fn set_busy(&self, retry_after_secs: Option<u64>) {
        self.inner.lock().expect("sink lock").busy_secs = retry_after_secs;
    }
}

impl EventSink for MemorySink {
    async fn accept(&self, event: EventEnvelope) -> Result<Accepted, SinkError> {
        let mut state = self.inner.lock().expect("sink lock");
        if let Some(retry_after_secs) = state.busy_secs {
            return Err(SinkError::Busy { retry_after_secs });
        }
        let key = (event.source.clone(), event.event_id.clone());
        if !state.seen.insert(key) {
            return Ok(Accepted::Duplicate);
        }
        state.events.push(event);
        Ok(Accepted::Stored)
    }

    async fn notify(&self, notice: PairingNotice) -> Result<(), SinkError> {
        self.inner.lock().expect("sink lock").notices.push(notice);
        Ok(())
    }
}
