//! Security audit records: every refused request leaves one, and nothing else.

use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Platform;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// No signature, token or bearer where one is required.
    MissingCredential,
    /// A signature, secret token or bearer that does not match.
    ForgedRequest,
    /// A validly formed request whose signed timestamp is too old (or too new).
    StaleRequest,
    /// A verified delivery already stored (a platform retry or a replay).
    DuplicateDelivery,
    /// An unknown sender was given a pairing code.
    PairingRequested,
    /// A message from a sender the owner denied was dropped.
    DeniedSender,
}

impl AuditKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::MissingCredential => "missing_credential",
            AuditKind::ForgedRequest => "forged_request",
            AuditKind::StaleRequest => "stale_request",
            AuditKind::DuplicateDelivery => "duplicate_delivery",
            AuditKind::PairingRequested => "pairing_requested",
            AuditKind::DeniedSender => "denied_sender",
        }
    }

    /// True for refusals (forged, stale, missing credentials).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            AuditKind::MissingCredential | AuditKind::ForgedRequest | AuditKind::StaleRequest
        )
    }
}

/// One audit record. Bodies are not kept, only their hash and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub platform: Platform,
    pub kind: AuditKind,
    /// Human-readable reason (never contains a secret).
    pub detail: String,
    /// HTTP status answered, when the record is about a request.
    pub status: Option<u16>,
    /// Peer address, when the server was started with connect info.
    pub remote_addr: Option<String>,
    /// Hex SHA-256 of the raw body.
    pub body_sha256: String,
    pub body_len: usize,
    /// The sender, when known (pairing and denial records).
    pub user_id: Option<String>,
}

/// Where audit records go; the daemon appends them to its store.
pub trait AuditLog: Send + Sync + 'static {
    /// Appends one record. Failures are the implementation's to report; the
    /// refusal stands either way.
    fn record(&self, record: AuditRecord) -> impl Future<Output = ()> + Send;
}

/// An [`AuditLog`] kept in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().expect("audit lock").clone()
    }
}

impl AuditLog for MemoryAuditLog {
    async fn record(&self, record: AuditRecord) {
        tracing::warn!(
            platform = %record.platform,
            kind = record.kind.as_str(),
            detail = %record.detail,
            "gateway audit"
        );
        self.records.lock().expect("audit lock").push(record);
    }
}
