//! The approval workflow for tier 2 and tier 3 actions.
//!
//! A request records the exact action (canonical JSON and its SHA-256);
//! only the user who asked, in the same chat, may approve or deny it;
//! tier 3 also needs a TOTP code that has not been used before; and a
//! runner checks, with [`ensure_approved`], that what it is about to do is
//! byte for byte what was approved.

use chrono::{DateTime, Duration, Utc};
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_json;
use crate::sql::{atomically, from_ms};
use crate::tier::Tier;
use crate::totp::Totp;

/// How long a request waits for a decision, and how long an approval
/// stays usable.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::minutes(15);

/// Who asked, and where: approvals must come from the same user in the
/// same chat on the same platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub source: String,
    pub user_id: String,
    pub chat_id: String,
}

/// An action waiting to be approved.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    pub tool: String,
    pub scope: String,
    pub tier: Tier,
    /// The exact action, shown to the user and checked before it runs.
    pub action: Value,
    pub requested_for: Principal,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Pending or approved, but past its expiry.
    Expired,
}

/// A recorded approval request.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: String,
    pub tool: String,
    pub scope: String,
    pub tier: Tier,
    pub action: Value,
    /// SHA-256 of the action's canonical JSON (hex).
    pub action_hash: String,
    pub requested_for: Principal,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A TOTP code offered with a tier 3 approval.
#[derive(Debug, Clone, Copy)]
pub struct SecondFactor<'a> {
    pub totp: &'a Totp,
    pub code: &'a str,
}

/// Why an approval step was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("tier {0:?} actions do not go through approval")]
    NotRequired(Tier),
    #[error("no approval request {0}")]
    NotFound(String),
    #[error("approval request {id} is already {status:?}")]
    AlreadyDecided { id: String, status: ApprovalStatus },
    #[error("approval request {0} has expired")]
    Expired(String),
    #[error("approval request {0} belongs to another user or chat")]
    WrongPrincipal(String),
    #[error("tier 3 approval needs a TOTP code")]
    TotpRequired,
    #[error("the TOTP code is wrong or out of date")]
    TotpInvalid,
    #[error("the TOTP code was already used")]
    TotpReused,
    #[error("approval request {0} is not approved")]
    NotApproved(String),
    #[error("the action differs from the one approved in request {0}")]
    ActionMismatch(String),
    #[error("approval store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("approval store holds an unreadable record: {0}")]
    Corrupt(String),
}

/// The SHA-256 (hex) of an action's canonical JSON.
pub fn action_hash(action: &Value) -> String {
    hex::encode(Sha256::digest(to_canonical_json(action).as_bytes()))
}

/// Records a request for the exact `action`, pending until `now + ttl`.
pub fn request(
    conn: &Connection,
    action: &ActionRequest,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Approval, ApprovalError> {
    if action.tier < Tier::SideEffect {
        return Err(ApprovalError::NotRequired(action.tier));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let expires = now + ttl;
    conn.execute(
        "INSERT INTO security_approvals
             (id, tool, scope, tier, action, action_hash, source, user_id, chat_id,
              requested_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id,
            action.tool,
            action.scope,
            action.tier.level(),
            to_canonical_json(&action.action),
            action_hash(&action.action),
            action.requested_for.source,
            action.requested_for.user_id,
            action.requested_for.chat_id,
            now.timestamp_millis(),
            expires.timestamp_millis(),
        ],
    )?;
    get(conn, &id, now)
}

/// One request, with its status as of `now`.
pub fn get(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<Approval, ApprovalError> {
    conn.query_row(&format!("{SELECT} WHERE id = ?1"), [id], |row| {
        Ok(read_row(row, now))
    })
    .optional()?
    .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?
}

/// Requests, oldest first; with `pending_only`, those still awaiting a
/// decision and not expired.
pub fn list(
    conn: &Connection,
    pending_only: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Approval>, ApprovalError> {
    let mut statement = conn.prepare(&format!("{SELECT} ORDER BY requested_ms, id"))?;
    let rows = statement.query_map([], |row| Ok(read_row(row, now)))?;
    let mut out = Vec::new();
    for row in rows {
        let approval = row??;
        if !pending_only || approval.status == ApprovalStatus::Pending {
            out.push(approval);
        }
    }
    Ok(out)
}

/// Approves a pending request. `by` must be the principal it was
/// requested for; tier 3 needs a fresh TOTP code.
pub fn approve(
    conn: &Connection,
    id: &str,
    by: &Principal,
    second_factor: Option<SecondFactor<'_>>,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    atomically(conn, |conn| {
        let approval = decidable(conn, id, by, now)?;
        let mut totp_step = None;
        if approval.tier == Tier::HighRisk {
            let factor = second_factor.ok_or(ApprovalError::TotpRequired)?;
            let unix = u64::try_from(now.timestamp()).unwrap_or(0);
            let step = factor
                .totp
                .verify(factor.code, unix)
                .ok_or(ApprovalError::TotpInvalid)?;
            let fresh = conn.execute(
                "INSERT OR IGNORE INTO security_totp_used (user_id, step, used_ms)
                 VALUES (?1, ?2, ?3)",
                params![by.user_id, step as i64, now.timestamp_millis()],
            )?;
            if fresh == 0 {
                return Err(ApprovalError::TotpReused);
            }
            totp_step = Some(step as i64);
        }
        decide(conn, id, "approved", totp_step, now)
    })
}

/// Denies a pending request. `by` must be the principal it was requested
/// for.
pub fn deny(
    conn: &Connection,
    id: &str,
    by: &Principal,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    atomically(conn, |conn| {
        decidable(conn, id, by, now)?;
        decide(conn, id, "denied", None, now)
    })
}

/// Checks, just before running, that request `id` was approved, has not
/// expired, and approved exactly `action`.
pub fn ensure_approved(
    conn: &Connection,
    id: &str,
    action: &Value,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    let approval = get(conn, id, now)?;
    match approval.status {
        ApprovalStatus::Approved => {}
        ApprovalStatus::Expired => return Err(ApprovalError::Expired(id.to_owned())),
        _ => return Err(ApprovalError::NotApproved(id.to_owned())),
    }
    if approval.action_hash != action_hash(&approval.action) {
        return Err(ApprovalError::Corrupt(format!(
            "{id}: stored action does not match its hash"
        )));
    }
    if approval.action_hash != action_hash(action) {
        return Err(ApprovalError::ActionMismatch(id.to_owned()));
    }
    Ok(approval)
}

fn decidable(
    conn: &Connection,
    id: &str,
    by: &Principal,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    let approval = get(conn, id, now)?;
    if &approval.requested_for != by {
        return Err(ApprovalError::WrongPrincipal(id.to_owned()));
    }
    match approval.status {
        ApprovalStatus::Pending => Ok(approval),
        ApprovalStatus::Expired => Err(ApprovalError::Expired(id.to_owned())),
        status => Err(ApprovalError::AlreadyDecided {
            id: id.to_owned(),
            status,
        }),
    }
}

fn decide(
    conn: &Connection,
    id: &str,
    status: &str,
    totp_step: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    let changed = conn.execute(
        "UPDATE security_approvals SET status = ?2, decided_ms = ?3, totp_step = ?4
         WHERE id = ?1 AND status = 'pending'",
        params![id, status, now.timestamp_millis(), totp_step],
    )?;
    let approval = get(conn, id, now)?;
    if changed == 0 {
        return Err(ApprovalError::AlreadyDecided {
            id: id.to_owned(),
            status: approval.status,
        });
    }
    Ok(approval)
}

const SELECT: &str = "SELECT id, tool, scope, tier, action, action_hash, source, user_id, chat_id,
                             status, requested_ms, expires_ms, decided_ms
                      FROM security_approvals";

fn read_row(row: &Row<'_>, now: DateTime<Utc>) -> Result<Approval, ApprovalError> {
    let id: String = row.get(0)?;
    let corrupt = |what: &str| ApprovalError::Corrupt(format!("{id}: {what}"));
    let tier = Tier::try_from(row.get::<_, u8>(3)?).map_err(|e| corrupt(&e))?;
    let action: Value =
        serde_json::from_str(&row.get::<_, String>(4)?).map_err(|e| corrupt(&e.to_string()))?;
    let expires_at = from_ms(row.get(11)?);
    let stored: String = row.get(9)?;
    let status = match stored.as_str() {
        "denied" => ApprovalStatus::Denied,
        _ if now >= expires_at => ApprovalStatus::Expired,
        "pending" => ApprovalStatus::Pending,
        "approved" => ApprovalStatus::Approved,
        other => return Err(corrupt(&format!("status {other}"))),
    };
    Ok(Approval {
        tool: row.get(1)?,
        scope: row.get(2)?,
        tier,
        action,
        action_hash: row.get(5)?,
        requested_for: Principal {
            source: row.get(6)?,
            user_id: row.get(7)?,
            chat_id: row.get(8)?,
        },
        status,
        requested_at: from_ms(row.get(10)?),
        expires_at,
        decided_at: row.get::<_, Option<i64>>(12)?.map(from_ms),
        id,
    })
}
