//! Exactly-once side effects: an idempotency ledger.
//!
//! The key is stored (and committed) before the call and the result after
//! it. A key already done returns its stored result without calling again.
//! A key started but never finished means a crash (or an error) came
//! between the two writes: the effect may or may not have happened, so the
//! call is made again with [`Call::resumed`] set and the same key. The
//! effect itself must honour the key (a provider's idempotency header, a
//! message id the remote dedupes on, a lookup before acting): that is what
//! turns "at least once" retries into exactly-once effects.
//!
//! One caller runs a given key at a time (the orchestrator runs each node
//! once); the ledger makes restarts safe, not concurrent duplicates.

use chrono::{DateTime, Utc};
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What the side-effecting function is told about this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// The idempotency key to hand to the remote side.
    pub key: &'a str,
    /// True when an earlier attempt with this key started and never
    /// recorded a result: the effect may already have happened.
    pub resumed: bool,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// Where a key stands in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Never seen.
    Unknown,
    /// Started `attempts` times, no result recorded.
    Started { attempts: u32 },
    /// Done; the stored result (JSON).
    Done { result: String },
}

/// Why [`run_once`] did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    #[error("the side-effecting call failed: {0}")]
    Call(E),
    #[error("run_once must run outside a transaction, or the key is not stored before the call")]
    InsideTransaction,
    #[error("idempotency ledger: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("stored result for key {key} cannot be read back: {message}")]
    Result { key: String, message: String },
}

/// Runs `f` at most once to completion per `key`, returning the first
/// successful result on every later call.
pub fn run_once<T, E, F>(
    conn: &Connection,
    key: &str,
    now: DateTime<Utc>,
    f: F,
) -> Result<T, IdempotencyError<E>>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(Call<'_>) -> Result<T, E>,
{
    if !conn.is_autocommit() {
        return Err(IdempotencyError::InsideTransaction);
    }
    let attempt = match begin(conn, key, now)? {
        KeyState::Done { result } => return decode(key, &result),
        KeyState::Started { attempts } => attempts,
        KeyState::Unknown => unreachable!("begin always records the key"),
    };
    let value = f(Call {
        key,
        resumed: attempt > 1,
        attempt,
    })
    .map_err(IdempotencyError::Call)?;
    let json = serde_json::to_string(&value).map_err(|error| IdempotencyError::Result {
        key: key.to_owned(),
        message: error.to_string(),
    })?;
    finish(conn, key, &json, now)?;
    Ok(value)
}

/// Step one, for callers that cannot use [`run_once`] (an async call in
/// between): records the key and counts the attempt, or reports it done.
pub fn begin(
    conn: &Connection,
    key: &str,
    now: DateTime<Utc>,
) -> Result<KeyState, rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO security_idempotency (key, state, attempts, started_ms)
         VALUES (?1, 'started', 1, ?2)
         ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1
         WHERE state = 'started'",
    )?
    .execute(params![key, now.timestamp_millis()])?;
    state(conn, key)
}

/// Step two: records the result. Recording twice keeps the first.
pub fn finish(
    conn: &Connection,
    key: &str,
    result_json: &str,
    now: DateTime<Utc>,
) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "UPDATE security_idempotency SET state = 'done', result = ?2, finished_ms = ?3
         WHERE key = ?1 AND state = 'started'",
    )?
    .execute(params![key, result_json, now.timestamp_millis()])?;
    Ok(())
}

/// Where `key` stands.
pub fn state(conn: &Connection, key: &str) -> Result<KeyState, rusqlite::Error> {
    let row = conn
        .prepare_cached("SELECT state, attempts, result FROM security_idempotency WHERE key = ?1")?
        .query_row([key], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    Ok(match row {
        None => KeyState::Unknown,
        Some((state, _, Some(result))) if state == "done" => KeyState::Done { result },
        Some((_, attempts, _)) => KeyState::Started { attempts },
    })
}

fn decode<T: DeserializeOwned, E>(key: &str, json: &str) -> Result<T, IdempotencyError<E>> {
    serde_json::from_str(json).map_err(|error| IdempotencyError::Result {
        key: key.to_owned(),
        message: error.to_string(),
    })
}
