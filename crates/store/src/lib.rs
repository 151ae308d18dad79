//! OptiClaw's durable store.
//!
//! One SQLite file in WAL mode holds everything the runtime must not lose:
//! accepted events (deduplicated on `(source, event_id)`), the replies they
//! produced (the outbox), and deferred tasks indexed on `wake_at`.
//!
//! [`Store`] is the synchronous API over one connection; [`StoreHandle`] runs
//! a `Store` on a dedicated writer thread that commits whatever requests are
//! waiting in one transaction (group commit), and answers each caller only
//! after that commit: an acknowledgement therefore always means "on disk".
//! The thread blocks on its channel with no timeout, so an idle store never
//! wakes.

mod checkpoint;
mod error;
mod handle;
mod migrations;
mod model;
mod store;

pub use error::StoreError;
pub use handle::StoreHandle;
pub use migrations::Component;
pub use model::{
    Acceptance, Completion, DeferredTask, EventStatus, NewDeferredTask, NewReply, StoreStats,
    Synchronous,
};
/// The SQLite binding the store is built on, for callers of `StoreHandle::call`.
pub use rusqlite;
pub use store::{FORGOTTEN, Store};

/// Store operations over a borrowed connection, for use inside
/// [`StoreHandle::call`] or [`Store::transaction`].
pub mod ops {
    pub use crate::store::{
        REPLIES_FOR_EVENT, accept_completed_event, accept_event, add_deferred, add_reply,
        cancel_deferred, complete_event, event_envelope, event_status, fire_due, list_deferred,
        local_replies_after, mark_delivered, next_wake_at, pending_events, redact_text,
        replies_for_event, stats, undelivered_replies,
    };
}

/// Milliseconds since the Unix epoch: the store's one time unit.
pub fn unix_ms(time: chrono::DateTime<chrono::Utc>) -> i64 {
    time.timestamp_millis()
}
