//! The gateway's security audit log and pairing state, in the daemon's
//! SQLite file (their own store component, `gateway`).

use chrono::{DateTime, Utc};
use opticlaw_gateway::pairing::{CODE_TTL, generate_code};
use opticlaw_gateway::{
    AuditLog, AuditRecord, CursorStore, PairingError, PairingRequest, PairingStore, PairingTicket,
    Platform, SenderStatus, SinkError,
};
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, params};
use opticlaw_store::{StoreError, StoreHandle};

/// The gateway's tables, migrated with the store.
pub const COMPONENT: opticlaw_store::Component = opticlaw_store::Component {
    name: "gateway",
    migrations: &[
        r#"
        CREATE TABLE gateway_audit (
            id       INTEGER PRIMARY KEY,
            at_ms    INTEGER NOT NULL,
            platform TEXT    NOT NULL,
            kind     TEXT    NOT NULL,
            record   TEXT    NOT NULL
        );
        CREATE TABLE gateway_pairing (
            platform     TEXT    NOT NULL,
            user_id      TEXT    NOT NULL,
            status       TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
            code         TEXT,
            requested_ms INTEGER NOT NULL,
            expires_ms   INTEGER NOT NULL,
            PRIMARY KEY (platform, user_id)
        );
        CREATE INDEX gateway_pairing_code ON gateway_pairing (code) WHERE status = 'pending';
    "#,
        r#"
        CREATE TABLE gateway_send_ledger (
            key       TEXT    PRIMARY KEY,
            state     TEXT    NOT NULL CHECK (state IN ('pending', 'sent')),
            remote_id TEXT,
            at_ms     INTEGER NOT NULL
        );
    "#,
        r#"
        CREATE TABLE gateway_cursor (
            name  TEXT    PRIMARY KEY,
            value TEXT    NOT NULL,
            at_ms INTEGER NOT NULL
        );
    "#,
    ],
};

/// Long-poll positions (Telegram offsets, Matrix `since` tokens) in
/// `gateway_cursor`, saved in the same durable store as the events.
#[derive(Clone)]
pub struct SqliteCursors(pub StoreHandle);

impl CursorStore for SqliteCursors {
    async fn load(&self, name: &str) -> Result<Option<String>, SinkError> {
        let name = name.to_owned();
        self.0
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT value FROM gateway_cursor WHERE name = ?1",
                        [name],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await
            .map_err(|e| SinkError::Failed(e.to_string()))
    }

    async fn save(&self, name: &str, value: &str) -> Result<(), SinkError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        let now_ms = Utc::now().timestamp_millis();
        self.0
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO gateway_cursor (name, value, at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, at_ms = excluded.at_ms",
                    params![name, value, now_ms],
                )?;
                Ok(())
            })
            .await
            .map_err(|e| SinkError::Failed(e.to_string()))
    }
}

/// Removes the store's ledger entries of a delivered reply's parts.
pub fn forget_parts(conn: &Connection, keys: &[String]) -> Result<(), StoreError> {
    let mut delete = conn.prepare_cached("DELETE FROM gateway_send_ledger WHERE key = ?1")?;
    for key in keys {
        delete.execute([key])?;
    }
    Ok(())
}

/// Appends every refusal, replay and pairing event to `gateway_audit`.
#[derive(Clone)]
pub struct SqliteAudit(pub StoreHandle);

impl AuditLog for SqliteAudit {
    async fn record(&self, record: AuditRecord) {
        let result = self
            .0
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO gateway_audit (at_ms, platform, kind, record) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        record.at.timestamp_millis(),
                        record.platform.as_str(),
                        record.kind.as_str(),
                        serde_json::to_string(&record)?
                    ],
                )?;
                Ok(())
            })
            .await;
        if let Err(err) = result {
            tracing::error!(%err, "writing a security audit record failed");
        }
    }
}

/// Pairing state in `gateway_pairing`: one row per sender.
#[derive(Clone)]
pub struct SqlitePairing(pub StoreHandle);

fn pairing_error(err: StoreError) -> PairingError {
    PairingError::Store(err.to_string())
}

fn request_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PairingRequest> {
    let platform: String = row.get(0)?;
    let ms = |v: i64| DateTime::<Utc>::from_timestamp_millis(v).unwrap_or_default();
    Ok(PairingRequest {
        platform: Platform::parse(&platform).unwrap_or(Platform::Telegram),
        user_id: row.get(1)?,
        code: row.get(2)?,
        requested_at: ms(row.get(3)?),
        expires_at: ms(row.get(4)?),
    })
}

/// Moves the pending request holding `code` to `status`.
fn decide(
    conn: &Connection,
    code: &str,
    status: &str,
    now_ms: i64,
) -> Result<Option<PairingRequest>, StoreError> {
    let wanted = code.trim().to_ascii_uppercase();
    let found = conn
        .query_row(
            "SELECT platform, user_id, code, requested_ms, expires_ms FROM gateway_pairing
             WHERE status = 'pending' AND code = ?1 AND expires_ms > ?2",
            params![wanted, now_ms],
            request_from_row,
        )
        .optional()?;
    if let Some(request) = &found {
        conn.execute(
            "UPDATE gateway_pairing SET status = ?3, code = NULL WHERE platform = ?1 AND user_id = ?2",
            params![request.platform.as_str(), request.user_id, status],
        )?;
    }
    Ok(found)
}

impl SqlitePairing {
    async fn decide(
        &self,
        code: &str,
        status: &'static str,
        now: DateTime<Utc>,
    ) -> Result<PairingRequest, PairingError> {
        let owned = code.to_owned();
        let now_ms = now.timestamp_millis();
        self.0
            .call(move |conn| decide(conn, &owned, status, now_ms))
            .await
            .map_err(pairing_error)?
            .ok_or_else(|| PairingError::UnknownCode(code.to_owned()))
    }
}

impl PairingStore for SqlitePairing {
    async fn status(
        &self,
        platform: Platform,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SenderStatus, PairingError> {
        let user = user_id.to_owned();
        let now_ms = now.timestamp_millis();
        let row: Option<(String, i64)> = self
            .0
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT status, expires_ms FROM gateway_pairing WHERE platform = ?1 AND user_id = ?2",
                        params![platform.as_str(), user],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?)
            })
            .await
            .map_err(pairing_error)?;
        Ok(match row {
            Some((status, _)) if status == "approved" => SenderStatus::Approved,
            Some((status, _)) if status == "denied" => SenderStatus::Denied,
            Some((_, expires)) if expires > now_ms => SenderStatus::Pending,
            _ => SenderStatus::Unknown,
        })
    }

    async fn request(
        &self,
        platform: Platform,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<PairingTicket, PairingError> {
        let user = user_id.to_owned();
        let now_ms = now.timestamp_millis();
        let expires_ms = (now + CODE_TTL).timestamp_millis();
        self.0
            .call(move |conn| {
                let live: Option<String> = conn
                    .query_row(
                        "SELECT code FROM gateway_pairing
                         WHERE platform = ?1 AND user_id = ?2 AND status = 'pending' AND expires_ms > ?3",
                        params![platform.as_str(), user, now_ms],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(code) = live {
                    return Ok(PairingTicket { code, fresh: false });
                }
                let code = generate_code();
                conn.execute(
                    "INSERT INTO gateway_pairing (platform, user_id, status, code, requested_ms, expires_ms)
                     VALUES (?1, ?2, 'pending', ?3, ?4, ?5)
                     ON CONFLICT (platform, user_id) DO UPDATE SET
                         status = 'pending', code = excluded.code,
                         requested_ms = excluded.requested_ms, expires_ms = excluded.expires_ms
                     WHERE gateway_pairing.status = 'pending'",
                    params![platform.as_str(), user, code, now_ms, expires_ms],
                )?;
                Ok(PairingTicket { code, fresh: true })
            })
            .await
            .map_err(pairing_error)
    }

    async fn approve(
        &self,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<PairingRequest, PairingError> {
        self.decide(code, "approved", now).await
    }

    async fn deny(&self, code: &str, now: DateTime<Utc>) -> Result<PairingRequest, PairingError> {
        self.decide(code, "denied", now).await
    }

    async fn list(&self, now: DateTime<Utc>) -> Result<Vec<PairingRequest>, PairingError> {
        let now_ms = now.timestamp_millis();
        self.0
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT platform, user_id, code, requested_ms, expires_ms FROM gateway_pairing
                     WHERE status = 'pending' AND expires_ms > ?1 ORDER BY requested_ms",
                )?;
                let rows = stmt.query_map([now_ms], request_from_row)?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .map_err(pairing_error)
    }
}
