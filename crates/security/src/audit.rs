//! The append-only, hash-chained audit log.
//!
//! Each record's hash is SHA-256 over its canonical fields and the previous
//! record's hash, so editing, deleting, reordering or inserting a record
//! breaks the chain at that record. The current head (last seq and hash) is
//! also kept in `security_audit_head` and returned by [`append`], so that
//! deleting records from the end is caught too; keep a copy of the head
//! somewhere else (a reply, another file) for an anchor a writer to this
//! file cannot move. Triggers refuse UPDATE and DELETE on the log; the
//! chain is what catches someone who drops them.

use chrono::{DateTime, Utc};
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_json;
use crate::sql::{atomically, from_ms};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// What happened: `tool_action`, `approval`, `refusal`, `token_refused`…
    pub kind: String,
    /// Who did it: a runner, a user, the daemon.
    pub actor: String,
    pub action: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The last record's seq and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// How the chain is broken at the first bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// A seq is missing: a record was deleted (or seqs were renumbered).
    Missing,
    /// The record's `prev_hash` is not the previous record's hash: a record
    /// was inserted, deleted or moved before it.
    BrokenLink,
    /// The record's fields do not hash to its stored hash: it was edited.
    Edited,
    /// Records after the recorded head are gone.
    Truncated,
    /// Records exist past the recorded head: appended behind the log's back.
    Unrecorded,
    /// The chain is self-consistent but ends somewhere other than the head
    /// (or the anchor): it was rewritten from some point on.
    HeadMismatch,
}

/// The first bad record found by [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tampering {
    pub seq: i64,
    pub problem: Tamper,
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub records: u64,
    pub head: Option<Head>,
    pub first_bad: Option<Tampering>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Errors reading or writing the log (tampering is reported, not an error).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("audit record {seq} holds unreadable JSON: {message}")]
    Corrupt { seq: i64, message: String },
}

/// The hash of a record: SHA-256 over the length-prefixed canonical fields
/// and the previous hash, hex-encoded.
pub fn record_hash(
    seq: i64,
    at_ms: i64,
    kind: &str,
    actor: &str,
    action_json: &str,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"opticlaw-audit-v1");
    hasher.update(seq.to_be_bytes());
    hasher.update(at_ms.to_be_bytes());
    for field in [kind, actor, action_json, prev_hash] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Appends one record and returns it; its seq and hash are the new head.
pub fn append(
    conn: &Connection,
    kind: &str,
    actor: &str,
    action: &Value,
    now: DateTime<Utc>,
) -> Result<AuditRecord, AuditError> {
    atomically(conn, |conn| {
        let (seq, prev_hash) = match head(conn)? {
            Some(head) => (head.seq + 1, head.hash),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let at_ms = now.timestamp_millis();
        let action_json = to_canonical_json(action);
        let hash = record_hash(seq, at_ms, kind, actor, &action_json, &prev_hash);
        conn.prepare_cached(
            "INSERT INTO security_audit (seq, at_ms, kind, actor, action, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            seq,
            at_ms,
            kind,
            actor,
            action_json,
            prev_hash,
            hash
        ])?;
        conn.prepare_cached(
            "INSERT INTO security_audit_head (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )?
        .execute(params![seq, hash])?;
        Ok(AuditRecord {
            seq,
            at: from_ms(at_ms),
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            action: action.clone(),
            prev_hash,
            hash,
        })
    })
}

/// The recorded head, if anything was ever appended.
pub fn head(conn: &Connection) -> Result<Option<Head>, AuditError> {
    Ok(conn
        .prepare_cached("SELECT seq, hash FROM security_audit_head WHERE id = 1")?
        .query_row([], |row| {
            Ok(Head {
                seq: row.get(0)?,
                hash: row.get(1)?,
            })
        })
        .optional()?)
}

/// Up to `limit` records after `after_seq`, in order.
pub fn records(
    conn: &Connection,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, AuditError> {
    let mut statement = conn.prepare(
        "SELECT seq, at_ms, kind, actor, action, prev_hash, hash FROM security_audit
         WHERE seq > ?1 ORDER BY seq LIMIT CAST(?2 AS INTEGER)",
    )?;
    let rows = statement.query_map(params![after_seq, limit as i64], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at_ms, kind, actor, action, prev_hash, hash) = row?;
        let action = serde_json::from_str(&action).map_err(|error| AuditError::Corrupt {
            seq,
            message: error.to_string(),
        })?;
        out.push(AuditRecord {
            seq,
            at: from_ms(at_ms),
            kind,
            actor,
            action,
            prev_hash,
            hash,
        });
    }
    Ok(out)
}

/// Walks the whole chain and the recorded head, and names the first bad
/// record.
pub fn verify(conn: &Connection) -> Result<AuditReport, AuditError> {
    let recorded = head(conn)?;
    verify_inner(conn, recorded.as_ref())
}

/// [`verify`] against a head kept outside this file (stronger: the head
/// table lives in the same file as the log).
pub fn verify_against(conn: &Connection, anchor: &Head) -> Result<AuditReport, AuditError> {
    let mut report = verify(conn)?;
    if report.first_bad.is_none() && report.head.as_ref() != Some(anchor) {
        let last = report.head.as_ref().map_or(0, |head| head.seq);
        report.first_bad = Some(if last < anchor.seq {
            Tampering {
                seq: last + 1,
                problem: Tamper::Truncated,
            }
        } else {
            Tampering {
                seq: anchor.seq.min(last),
                problem: Tamper::HeadMismatch,
            }
        });
    }
    Ok(report)
}

fn verify_inner(conn: &Connection, recorded: Option<&Head>) -> Result<AuditReport, AuditError> {
    let mut statement = conn.prepare(
        "SELECT seq, at_ms, kind, actor, action, prev_hash, hash FROM security_audit ORDER BY seq",
    )?;
    let mut rows = statement.query([])?;
    let mut expected_seq = 1;
    let mut prev = GENESIS_HASH.to_owned();
    let mut count = 0u64;
    let mut first_bad = None;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let at_ms: i64 = row.get(1)?;
        let kind: String = row.get(2)?;
        let actor: String = row.get(3)?;
        let action: String = row.get(4)?;
        let prev_hash: String = row.get(5)?;
        let hash: String = row.get(6)?;
        let problem = if seq != expected_seq {
            Some((expected_seq, Tamper::Missing))
        } else if prev_hash != prev {
            Some((seq, Tamper::BrokenLink))
        } else if record_hash(seq, at_ms, &kind, &actor, &action, &prev_hash) != hash {
            Some((seq, Tamper::Edited))
        } else {
            None
        };
        if let Some((seq, problem)) = problem {
            first_bad = Some(Tampering { seq, problem });
            break;
        }
        count += 1;
        expected_seq = seq + 1;
        prev = hash;
    }
    let last = Head {
        seq: expected_seq - 1,
        hash: prev,
    };
    if first_bad.is_none() {
        first_bad = match recorded {
            None if last.seq == 0 => None,
            None => Some(Tampering {
                seq: 1,
                problem: Tamper::Unrecorded,
            }),
            Some(head) if head.seq > last.seq => Some(Tampering {
                seq: last.seq + 1,
                problem: Tamper::Truncated,
            }),
            Some(head) if head.seq < last.seq => Some(Tampering {
                seq: head.seq + 1,
                problem: Tamper::Unrecorded,
            }),
            Some(head) if head.hash != last.hash => Some(Tampering {
                seq: head.seq,
                problem: Tamper::HeadMismatch,
            }),
            Some(_) => None,
        };
    }
    Ok(AuditReport {
        records: count,
        head: (last.seq > 0).then_some(last),
        first_bad,
    })
}
