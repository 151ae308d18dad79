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
    /// Drives the store's answer on the proxy's blocking thread (the store
    /// replies on a channel; no I/O driver is needed).
    runtime: tokio::runtime::Runtime,
}

impl EgressAudit {
    pub(super) fn new(store: StoreHandle, key: &str, actor: String) -> std::io::Result<Self> {
        Ok(Self {
            store,
            key: key.to_owned(),
            actor,
            runtime: tokio::runtime::Builder::new_current_thread().build()?,
        })
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
        let write = self.store.call(move |conn| {
            audit::append(conn, kind, &actor, &action, Utc::now())
                .map(|_| ())
                .map_err(|e| StoreError::CommitFailed(format!("audit: {e}")))
        });
        self.runtime.block_on(write).map_err(|e| e.to_string())
    }
}
