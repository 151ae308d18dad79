//! Verified platform events go to the runtime, which stores them before the
//! platform gets its answer.

use opticlaw_core::{EventEnvelope, ResponseKind};
use opticlaw_gateway::{Accepted, EventSink, PairingNotice, SinkError};
use opticlaw_runtime::{Runtime, SubmitError};
use opticlaw_store::NewReply;

#[derive(Clone)]
pub struct RuntimeSink(pub Runtime);

impl EventSink for RuntimeSink {
    async fn accept(&self, event: EventEnvelope) -> Result<Accepted, SinkError> {
        match self.0.submit(event).await {
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
        self.0
            .notify(reply)
            .await
            .map(|_| ())
            .map_err(|err| SinkError::Failed(err.to_string()))
    }
}
