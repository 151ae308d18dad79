//! Verified platform events go to the runtime, which stores them before the
//! platform gets its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opticlaw_core::{EventEnvelope, ResponseKind};
use opticlaw_gateway::{Accepted, EventSink, PairingNotice, ReplyOrigin, SinkError};
use opticlaw_runtime::{Runtime, SubmitError};
use opticlaw_store::NewReply;

/// Stores verified events through the runtime, remembering the metadata
/// of recent ones so their replies are addressed without a store read.
#[derive(Clone)]
pub struct RuntimeSink {
    runtime: Runtime,
    origins: Arc<Mutex<HashMap<(String, String), ReplyOrigin>>>,
}

/// Recent events whose metadata is kept; past this the memo starts over
/// (a miss only costs a store read).
const ORIGINS_KEPT: usize = 4096;

impl RuntimeSink {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            origins: Arc::default(),
        }
    }

    /// The metadata of event `(source, event_id)` if it came in recently
    /// (taken: a later reply to it reads the store).
    pub fn take_origin(&self, source: &str, event_id: &str) -> Option<ReplyOrigin> {
        let key = (source.to_owned(), event_id.to_owned());
        self.origins.lock().ok()?.remove(&key)
    }
}

impl EventSink for RuntimeSink {
    async fn accept(&self, event: EventEnvelope) -> Result<Accepted, SinkError> {
        if !event.metadata.is_empty()
            && let Ok(mut origins) = self.origins.lock()
        {
            if origins.len() >= ORIGINS_KEPT {
                origins.clear();
            }
            let key = (event.source.clone(), event.event_id.clone());
            origins.insert(key, event.metadata.clone());
        }
        match self.runtime.submit(event).await {
            Ok(submission) if submission.duplicate => Ok(Accepted::Duplicate),
            Ok(_) => Ok(Accepted::Stored),
            Err(SubmitError::Busy { retry_after_secs }) => {
                Err(SinkError::Busy { retry_after_secs })
            }
            Err(err) => Err(SinkError::Failed(err.to_string())),
        }
    }

    async fn notify(&self, notice: PairingNotice) -> Result<(), SinkError> {
        // The pairing code goes out through the outbox like any reply.
        let reply = NewReply {
            in_reply_to: Some(notice.event_id.clone()),
            source: notice.source.clone(),
            user_id: notice.user_id.clone(),
            thread_id: notice.thread_id.clone(),
            kind: ResponseKind::Notice,
            text: notice.text.clone(),
        };
        self.runtime
            .notify(reply)
            .await
            .map(|_| ())
            .map_err(|err| SinkError::Failed(err.to_string()))
    }
}
