//! Who may talk. A sender on a platform's allow-list, or one the owner
//! approved, reaches the assistant; an unknown sender gets a pairing code and
//! nothing else until the owner runs `opticlaw pairing approve CODE`; a denied
//! sender is ignored.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::Platform;

/// Characters of a pairing code: no `0 O 1 I L`, easy to read aloud.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Length of a pairing code (31^8 ≈ 8.5e11 possibilities).
pub const CODE_LEN: usize = 8;
/// How long a pending code stays valid.
pub const CODE_TTL: Duration = Duration::hours(1);
/// Most pending requests kept at once; older ones are evicted first.
pub const MAX_PENDING: usize = 256;

/// A fresh random pairing code from the OS-seeded CSPRNG.
pub fn generate_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// A sender's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderStatus {
    /// Never seen, or a code that expired.
    Unknown,
    /// Has a code, waiting for the owner.
    Pending,
    Approved,
    Denied,
}

/// A pending request, as `opticlaw pairing list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub platform: Platform,
    pub user_id: String,
    pub code: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The code handed to a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingTicket {
    pub code: String,
    /// True when the code was just issued (send it); false when the sender
    /// already holds a live code (stay silent: no echo amplification).
    pub fresh: bool,
}

/// Why a pairing decision failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    #[error("no pending pairing request has code `{0}` (it may have expired)")]
    UnknownCode(String),
    #[error("pairing store failed: {0}")]
    Store(String),
}

/// Persistent pairing state; the daemon backs it with SQLite.
pub trait PairingStore: Send + Sync + 'static {
    /// The sender's standing at `now` (an expired code reads as `Unknown`).
    fn status(
        &self,
        platform: Platform,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<SenderStatus, PairingError>> + Send;

    /// Issues a code to an unknown sender, or returns the live one it holds.
    fn request(
        &self,
        platform: Platform,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PairingTicket, PairingError>> + Send;

    /// Approves the sender holding `code`.
    fn approve(
        &self,
        code: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PairingRequest, PairingError>> + Send;

    /// Denies the sender holding `code`.
    fn deny(
        &self,
        code: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PairingRequest, PairingError>> + Send;

    /// Live pending requests, oldest first.
    fn list(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<PairingRequest>, PairingError>> + Send;
}

/// A [`PairingStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryPairingStore {
    inner: Mutex<PairingState>,
}

#[derive(Debug, Default)]
struct PairingState {
    decided: HashMap<(Platform, String), SenderStatus>,
    pending: Vec<PairingRequest>,
}

impl PairingState {
    fn prune(&mut self, now: DateTime<Utc>) {
        self.pending.retain(|r| r.expires_at > now);
    }

    fn take(&mut self, code: &str, now: DateTime<Utc>) -> Result<PairingRequest, PairingError> {
        self.prune(now);
        let wanted = code.trim().to_ascii_uppercase();
        let index = self
            .pending
            .iter()
            .position(|r| crate::verify::constant_time_eq(r.code.as_bytes(), wanted.as_bytes()))
            .ok_or_else(|| PairingError::UnknownCode(code.to_owned()))?;
        Ok(self.pending.remove(index))
    }
}

impl MemoryPairingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PairingStore for MemoryPairingStore {
    async fn status(
        &self,
        platform: Platform,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SenderStatus, PairingError> {
        let mut state = self.inner.lock().expect("pairing lock");
        if let Some(status) = state.decided.get(&(platform, user_id.to_owned())) {
            return Ok(*status);
        }
        state.prune(now);
        let pending = state
            .pending
            .iter()
            .any(|r| r.platform == platform && r.user_id == user_id);
        Ok(if pending {
            SenderStatus::Pending
        } else {
            SenderStatus::Unknown
        })
    }

    async fn request(
        &self,
        platform: Platform,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<PairingTicket, PairingError> {
        let mut state = self.inner.lock().expect("pairing lock");
        state.prune(now);
        if let Some(existing) = state
            .pending
            .iter()
            .find(|r| r.platform == platform && r.user_id == user_id)
        {
            return Ok(PairingTicket {
                code: existing.code.clone(),
                fresh: false,
            });
        }
        if state.pending.len() >= MAX_PENDING {
            state.pending.remove(0);
        }
        let code = loop {
            let candidate = generate_code();
            if !state.pending.iter().any(|r| r.code == candidate) {
                break candidate;
            }
        };
        state.pending.push(PairingRequest {
            platform,
            user_id: user_id.to_owned(),
            code: code.clone(),
            requested_at: now,
            expires_at: now + CODE_TTL,
        });
        Ok(PairingTicket { code, fresh: true })
    }

    async fn approve(
        &self,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<PairingRequest, PairingError> {
        let mut state = self.inner.lock().expect("pairing lock");
        let request = state.take(code, now)?;
        state.decided.insert(
            (request.platform, request.user_id.clone()),
            SenderStatus::Approved,
        );
        Ok(request)
    }

    async fn deny(&self, code: &str, now: DateTime<Utc>) -> Result<PairingRequest, PairingError> {
        let mut state = self.inner.lock().expect("pairing lock");
        let request = state.take(code, now)?;
        state.decided.insert(
            (request.platform, request.user_id.clone()),
            SenderStatus::Denied,
        );
        Ok(request)
    }

    async fn list(&self, now: DateTime<Utc>) -> Result<Vec<PairingRequest>, PairingError> {
        let mut state = self.inner.lock().expect("pairing lock");
        state.prune(now);
        Ok(state.pending.clone())
    }
}

/// Whether a sender is on the configured allow-list (`"*"` allows everyone).
pub fn allow_listed(allow_from: &[String], user_id: &str) -> bool {
    allow_from.iter().any(|a| a == "*" || a == user_id)
}

/// The text sent with a pairing code.
pub fn pairing_text(code: &str) -> String {
    format!(
        "Hi! I don't know you yet. Ask my owner to approve you with:\n`opticlaw pairing approve {code}`\nThis code expires in one hour."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_use_the_unambiguous_alphabet() {
        for _ in 0..100 {
            let code = generate_code();
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)));
        }
    }

    #[tokio::test]
    async fn unknown_sender_gets_one_code_until_approved() {
        let store = MemoryPairingStore::new();
        let now = Utc::now();
        let first = store.request(Platform::Telegram, "42", now).await.unwrap();
        assert!(first.fresh);
        let again = store.request(Platform::Telegram, "42", now).await.unwrap();
        assert_eq!(
            again,
            PairingTicket {
                code: first.code.clone(),
                fresh: false
            }
        );
        assert_eq!(
            store.status(Platform::Telegram, "42", now).await.unwrap(),
            SenderStatus::Pending
        );
        assert_eq!(store.list(now).await.unwrap().len(), 1);
        let approved = store
            .approve(&first.code.to_lowercase(), now)
            .await
            .unwrap();
        assert_eq!(approved.user_id, "42");
        assert_eq!(
            store.status(Platform::Telegram, "42", now).await.unwrap(),
            SenderStatus::Approved
        );
        assert!(store.list(now).await.unwrap().is_empty());
        // the same user id on another platform is someone else
        assert_eq!(
            store.status(Platform::Slack, "42", now).await.unwrap(),
            SenderStatus::Unknown
        );
    }

    #[tokio::test]
    async fn denied_sender_stays_denied_and_expired_codes_are_unknown() {
        let store = MemoryPairingStore::new();
        let now = Utc::now();
        let ticket = store.request(Platform::Slack, "U1", now).await.unwrap();
        store.deny(&ticket.code, now).await.unwrap();
        assert_eq!(
            store.status(Platform::Slack, "U1", now).await.unwrap(),
            SenderStatus::Denied
        );
        assert!(matches!(
            store.approve(&ticket.code, now).await,
            Err(PairingError::UnknownCode(_))
        ));

        let late = store.request(Platform::Slack, "U2", now).await.unwrap();
        let later = now + CODE_TTL + Duration::seconds(1);
        assert_eq!(
            store.status(Platform::Slack, "U2", later).await.unwrap(),
            SenderStatus::Unknown
        );
        assert!(store.approve(&late.code, later).await.is_err());
    }
}
