//! Every connection a shell command's egress proxy allows, refuses or fails
//! to make goes to the hash-chained audit log, before the dial it allows.

use chrono::Utc;
use opticlaw_sandbox::egress::{EgressEvent, EgressObserver};
use opticlaw_security::audit;
use opticlaw_store::{StoreError, StoreHandle};
use serde_json::json;

/// The audit log as one call's egress observer.
pub(super) struct EgressAudit {
    store: StoreHandle,
    /// The call's idempotency key: names the task, node and attempt.
    key: String,
    actor: String,
}

impl EgressAudit {
    pub(super) fn new(store: StoreHandle, key: &str, actor: String) -> Self {
        Self {
            store,
            key: key.to_owned(),
            actor,
        }
    }
}

impl EgressObserver for EgressAudit {
    fn record(&self, event: &EgressEvent) -> Result<(), String> {
        let kind = match event.verdict {
            opticlaw_sandbox::egress::Verdict::Allowed { .. } => "egress_allowed",
            _ => "egress_refused",
        };
        let action = json!({ "key": self.key, "connection": event });
        let actor = self.actor.clone();
        self.store
            .call_blocking(move |conn| {
                audit::append(conn, kind, &actor, &action, Utc::now())
                    .map(|_| ())
                    .map_err(|e| StoreError::CommitFailed(format!("audit: {e}")))
            })
            .map_err(|e| e.to_string())
    }
}
