//! Exactly-once-or-never delivery. Each part of each reply has a key derived
//! from what it is, not when it is sent, so a retry after a crash computes the
//! same key. The daemon's store records a key as *pending* before the call
//! and *sent* after; a key found pending at startup is in doubt (the call may
//! have gone out), and is resent only where the platform itself deduplicates
//! (Matrix: the key is the event's `txnId`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The idempotency key of part `part` of the reply with sequence `seq`:
/// `oc1-` and the first 32 hex digits of
/// `SHA-256("opticlaw-send-v1" 0 source 0 thread_id 0 seq 0 part)`.
/// `seq` is unique per store, so the key is unique per part; it is also a
/// valid Matrix transaction id (`[A-Za-z0-9-]`).
pub fn idempotency_key(source: &str, thread_id: &str, seq: i64, part: usize) -> String {
    let mut hash = Sha256::new();
    for field in [
        "opticlaw-send-v1",
        source,
        thread_id,
        &seq.to_string(),
        &part.to_string(),
    ] {
        hash.update(field.as_bytes());
        hash.update([0u8]);
    }
    format!("oc1-{}", &hex::encode(hash.finalize())[..32])
}

/// A key's state in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerState {
    /// Never attempted: it is now marked pending.
    Fresh,
    /// Marked pending by an attempt that never finished (a crash or a lost
    /// response): it may or may not have been delivered.
    InDoubt,
    /// Delivered; the platform's message id when it gave one.
    Sent(Option<String>),
}

/// Durable record of send attempts; the daemon backs it with SQLite.
pub trait SendLedger: Send + Sync + 'static {
    /// Looks `key` up and, when it is unknown, marks it pending.
    fn begin(&self, key: &str) -> impl Future<Output = LedgerState> + Send;
    /// Marks `key` delivered.
    fn complete(&self, key: &str, remote_id: Option<String>) -> impl Future<Output = ()> + Send;
    /// Forgets a pending `key` the platform definitely refused (safe to retry).
    fn release(&self, key: &str) -> impl Future<Output = ()> + Send;
}

/// A [`SendLedger`] in memory.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: Mutex<HashMap<String, Option<Option<String>>>>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `key` is marked pending (begun and not finished).
    pub fn is_pending(&self, key: &str) -> bool {
        matches!(
            self.entries.lock().expect("ledger lock").get(key),
            Some(None)
        )
    }

    /// Simulates a crash after `begin`: marks `key` pending.
    pub fn mark_pending(&self, key: &str) {
        self.entries
            .lock()
            .expect("ledger lock")
            .insert(key.to_owned(), None);
    }
}

impl SendLedger for MemoryLedger {
    async fn begin(&self, key: &str) -> LedgerState {
        let mut entries = self.entries.lock().expect("ledger lock");
        match entries.get(key) {
            None => {
                entries.insert(key.to_owned(), None);
                LedgerState::Fresh
            }
            Some(None) => LedgerState::InDoubt,
            Some(Some(remote)) => LedgerState::Sent(remote.clone()),
        }
    }

    async fn complete(&self, key: &str, remote_id: Option<String>) {
        self.entries
            .lock()
            .expect("ledger lock")
            .insert(key.to_owned(), Some(remote_id));
    }

    async fn release(&self, key: &str) {
        let mut entries = self.entries.lock().expect("ledger lock");
        if matches!(entries.get(key), Some(None)) {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_and_distinct_per_part() {
        let a = idempotency_key("telegram", "42", 7, 0);
        assert_eq!(a, idempotency_key("telegram", "42", 7, 0));
        assert_ne!(a, idempotency_key("telegram", "42", 7, 1));
        assert_ne!(a, idempotency_key("telegram", "42", 8, 0));
        assert_eq!(a.len(), 36);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
