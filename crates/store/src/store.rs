use std::path::Path;

use chrono::{DateTime, Utc};
use opticlaw_core::{EventEnvelope, ResponseKind, ResponsePacket};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StoreError;
use crate::migrations;
use crate::model::{
    Acceptance, Completion, DeferredTask, EventStatus, NewDeferredTask, NewReply, StoreStats,
    Synchronous,
};

/// Bytes per page of a new store. Every commit writes whole pages to the
/// log, and a gateway commit changes a few hundred bytes in each of about
/// eight (its rows and index leaves): at SQLite's default 4 KiB the log
/// took 16 KB a message, at 2 KiB it takes 9.6 KB, and the gateway bench
/// runs about 4% faster. 1 KiB halves the bytes again but spreads rows
/// over more pages (42% more log writes than 4 KiB) and ran slower.
const PAGE_SIZE: i64 = 2048;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// The synchronous store over one SQLite connection.
///
/// Every operation is also available as a free function over `&Connection`
/// (in this module) so that the group-commit writer can run many of them in
/// one transaction.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store file, switches it to WAL mode and
    /// applies pending migrations.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        Self::open_with(path, synchronous, &[])
    }

    /// Like [`Store::open`], also migrating other crates' tables.
    pub fn open_with(
        path: &Path,
        synchronous: Synchronous,
        components: &[migrations::Component],
    ) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let open_error = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_error)?;
        // Takes effect only while the file is new; an existing store keeps
        // the page size it was made with.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(open_error)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %shown, mode, "SQLite refused WAL mode");
        }
        let sync = match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        // Every crate's hot statements go through `prepare_cached`; with
        // rusqlite's default of 16 they evict each other and are parsed
        // again on every use.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrations::migrate(&mut conn, &shown)?;
        for component in components {
            migrations::migrate_component(&mut conn, component)?;
        }
        Ok(Self { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one immediate transaction.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    pub fn accept_event(&mut self, event: &EventEnvelope) -> Result<Acceptance, StoreError> {
        self.transaction(|conn| accept_event(conn, event, now_ms()))
    }

    pub fn complete_event(&mut self, done: &Completion) -> Result<Vec<ResponsePacket>, StoreError> {
        self.transaction(|conn| complete_event(conn, done, now_ms()))
    }

    pub fn fire_due(
        &mut self,
        now_ms: i64,
        render: impl Fn(&DeferredTask) -> Vec<NewReply>,
    ) -> Result<Vec<ResponsePacket>, StoreError> {
        self.transaction(|conn| fire_due(conn, now_ms, render))
    }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Records an event unless `(source, event_id)` is already in the log.
pub fn accept_event(
    conn: &Connection,
    event: &EventEnvelope,
    now_ms: i64,
) -> Result<Acceptance, StoreError> {
    let envelope = serde_json::to_string(event)?;
    match insert_event(conn, event, &envelope, None, now_ms)? {
        Some(seq) => Ok(Acceptance {
            seq,
            duplicate: false,
            status: EventStatus::Pending,
            replies: Vec::new(),
        }),
        None => duplicate_acceptance(conn, event),
    }
}

/// The fast path's accept and complete in one statement: records an event
/// already processed (`done.status`, `done.outcome`; `done.event_seq` is
/// ignored) unless `(source, event_id)` is in the log, then writes what it
/// produced. `envelope` is the event's JSON, serialised by the caller off
/// the writer thread. A duplicate writes nothing and answers as
/// [`accept_event`] does, with the first run's replies.
pub fn accept_completed_event(
    conn: &Connection,
    event: &EventEnvelope,
    envelope: &str,
    done: &Completion,
    now_ms: i64,
) -> Result<(Acceptance, Vec<ResponsePacket>), StoreError> {
    let Some(seq) = insert_event(conn, event, envelope, Some(done), now_ms)? else {
        return Ok((duplicate_acceptance(conn, event)?, Vec::new()));
    };
    let replies = write_effects(conn, seq, done, now_ms)?;
    let acceptance = Acceptance {
        seq,
        duplicate: false,
        status: done.status,
        replies: Vec::new(),
    };
    Ok((acceptance, replies))
}

/// Inserts the event, pending or already `done`; `None` when
/// `(source, event_id)` is already in the log.
fn insert_event(
    conn: &Connection,
    event: &EventEnvelope,
    envelope: &str,
    done: Option<&Completion>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    // Its replies, if it comes answered, are written next: they follow
    // every reply now in the outbox (see `replies_for_event`).
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events
                 (source, event_id, priority, envelope, accepted_ms, status, processed_ms, outcome,
                  replies_after, reply_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                     (SELECT COALESCE(max(seq), 0) FROM replies), ?9)
             ON CONFLICT (source, event_id) DO NOTHING",
        )?
        .execute(params![
            event.source,
            event.event_id,
            event.hints.priority.rank() as i64,
            envelope,
            now_ms,
            done.map_or(EventStatus::Pending, |d| d.status).as_str(),
            done.map(|_| now_ms),
            done.map(|d| d.outcome.to_string()),
            done.map_or(0, |d| d.replies.len() as i64)
        ])?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid()))
}

/// The answer to an event already in the log: its seq, status and the
/// replies its first run produced.
fn duplicate_acceptance(
    conn: &Connection,
    event: &EventEnvelope,
) -> Result<Acceptance, StoreError> {
    let (seq, status): (i64, String) = conn
        .prepare_cached("SELECT seq, status FROM events WHERE source = ?1 AND event_id = ?2")?
        .query_row(params![event.source, event.event_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(Acceptance {
        seq,
        duplicate: true,
        status: EventStatus::parse(&status),
        replies: replies_for_event(conn, seq)?,
    })
}

/// Marks an event processed and writes what it produced, all at once.
/// Returns the written replies with their outbox sequence numbers.
pub fn complete_event(
    conn: &Connection,
    done: &Completion,
    now_ms: i64,
) -> Result<Vec<ResponsePacket>, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE events SET status = ?2, processed_ms = ?3, outcome = ?4,
                 replies_after = (SELECT COALESCE(max(seq), 0) FROM replies), reply_count = ?5
             WHERE seq = ?1 AND status = 'pending'",
        )?
        .execute(params![
            done.event_seq,
            done.status.as_str(),
            now_ms,
            done.outcome.to_string(),
            done.replies.len() as i64
        ])?;
    if changed == 0 {
        // Already completed (a redelivery after a crash raced the first
        // run): the first result stands and nothing is written twice.
        let exists: Option<i64> = conn
            .query_row(
                "SELECT seq FROM events WHERE seq = ?1",
                [done.event_seq],
                |r| r.get(0),
            )
            .optional()?;
        return match exists {
            Some(_) => replies_for_event(conn, done.event_seq),
            None => Err(StoreError::UnknownEvent(done.event_seq)),
        };
    }
    write_effects(conn, done.event_seq, done, now_ms)
}

/// What a processed event produced: its deferred tasks, cancellations and
/// replies (answering event `seq`).
fn write_effects(
    conn: &Connection,
    seq: i64,
    done: &Completion,
    now_ms: i64,
) -> Result<Vec<ResponsePacket>, StoreError> {
    for task in &done.schedule {
        add_deferred(conn, task, now_ms)?;
    }
    for task_id in &done.cancel {
        cancel_deferred(conn, task_id)?;
    }
    done.replies
        .iter()
        .map(|reply| insert_reply(conn, Some(seq), reply, now_ms))
        .collect()
}

/// Writes a reply that answers no stored event (a notice, a pairing code).
pub fn add_reply(
    conn: &Connection,
    reply: &NewReply,
    now_ms: i64,
) -> Result<ResponsePacket, StoreError> {
    insert_reply(conn, None, reply, now_ms)
}

fn insert_reply(
    conn: &Connection,
    event_seq: Option<i64>,
    reply: &NewReply,
    now_ms: i64,
) -> Result<ResponsePacket, StoreError> {
    conn.prepare_cached(
        "INSERT INTO replies (event_seq, in_reply_to, source, user_id, thread_id, kind, body, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event_seq,
        reply.in_reply_to,
        reply.source,
        reply.user_id,
        reply.thread_id,
        reply.kind.as_str(),
        reply.text,
        now_ms
    ])?;
    Ok(ResponsePacket {
        seq: conn.last_insert_rowid(),
        in_reply_to: reply.in_reply_to.clone(),
        source: reply.source.clone(),
        user_id: reply.user_id.clone(),
        thread_id: reply.thread_id.clone(),
        kind: reply.kind,
        text: reply.text.clone(),
        attachments: Vec::new(),
        created_at: from_ms(now_ms),
    })
}

/// The columns `reply_from_row` reads, as a literal so that constant
/// statements can `concat!` it.
macro_rules! reply_columns {
    () => {
        "seq, in_reply_to, source, user_id, thread_id, kind, body, created_ms"
    };
}

const REPLY_COLUMNS: &str = reply_columns!();

fn reply_from_row(row: &Row<'_>) -> rusqlite::Result<ResponsePacket> {
    let kind: String = row.get(5)?;
    Ok(ResponsePacket {
        seq: row.get(0)?,
        in_reply_to: row.get(1)?,
        source: row.get(2)?,
        user_id: row.get(3)?,
        thread_id: row.get(4)?,
        kind: ResponseKind::parse(&kind).unwrap_or(ResponseKind::Notice),
        text: row.get(6)?,
        attachments: Vec::new(),
        created_at: from_ms(row.get(7)?),
    })
}

/// The replies event `?1` produced, oldest first. They were written
/// together, right after the event or its completion recorded
/// `replies_after` and `reply_count` (migration 4), so this reads forward
/// from there by rowid and stops at the last of them; there is no index on
/// `event_seq` to keep up on every reply.
pub const REPLIES_FOR_EVENT: &str = concat!(
    "SELECT ",
    reply_columns!(),
    " FROM replies
     WHERE seq > (SELECT replies_after FROM events WHERE seq = ?1) AND event_seq = ?1
     ORDER BY seq
     LIMIT (SELECT COALESCE(max(reply_count), 0) FROM events WHERE seq = ?1)"
);

pub fn replies_for_event(
    conn: &Connection,
    event_seq: i64,
) -> Result<Vec<ResponsePacket>, StoreError> {
    let mut stmt = conn.prepare_cached(REPLIES_FOR_EVENT)?;
    let rows = stmt.query_map([event_seq], reply_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replies for one web chat or CLI thread (source `local`) with
/// `seq > after`, oldest first. The source is written into the statement:
/// the thread index holds only local replies, and SQLite uses a partial
/// index only when the query's own text implies its condition.
pub fn local_replies_after(
    conn: &Connection,
    thread_id: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<ResponsePacket>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REPLY_COLUMNS} FROM replies
         WHERE source = 'local' AND thread_id = ?1 AND seq > ?2 ORDER BY seq LIMIT CAST(?3 AS INTEGER)"
    ))?;
    let rows = stmt.query_map(params![thread_id, after, limit as i64], reply_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replies to chat platforms (any source but `local`) not yet delivered,
/// oldest first.
pub fn undelivered_replies(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<ResponsePacket>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REPLY_COLUMNS} FROM replies
         WHERE delivered_ms IS NULL AND source <> 'local' ORDER BY seq LIMIT CAST(?1 AS INTEGER)"
    ))?;
    let rows = stmt.query_map([limit as i64], reply_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a reply handed to its platform (or given up on).
pub fn mark_delivered(conn: &Connection, seq: i64, now_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE replies SET delivered_ms = ?2 WHERE seq = ?1")?
        .execute(params![seq, now_ms])?;
    Ok(())
}

/// The stored envelope of an event, by its platform id.
pub fn event_envelope(
    conn: &Connection,
    source: &str,
    event_id: &str,
) -> Result<Option<EventEnvelope>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT envelope FROM events WHERE source = ?1 AND event_id = ?2")?
        .query_row(params![source, event_id], |row| row.get(0))
        .optional()?;
    Ok(match json {
        Some(text) => Some(serde_json::from_str(&text)?),
        None => None,
    })
}

/// Accepted events not yet processed, in arrival order, with `seq > after`.
pub fn pending_events(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, EventEnvelope)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, envelope FROM events WHERE status = 'pending' AND seq > ?1 ORDER BY seq LIMIT CAST(?2 AS INTEGER)",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, json) = row?;
        events.push((seq, serde_json::from_str(&json)?));
    }
    Ok(events)
}

pub fn add_deferred(
    conn: &Connection,
    task: &NewDeferredTask,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO deferred_tasks
             (task_id, wake_at_ms, condition, payload, owner_source, owner_user, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (task_id) DO NOTHING",
    )?
    .execute(params![
        task.task_id,
        task.wake_at_ms,
        task.condition.as_ref().map(|c| c.to_string()),
        task.payload.to_string(),
        task.owner_source,
        task.owner_user,
        now_ms
    ])?;
    Ok(())
}

/// Cancels a pending task; `false` when there was none by that id.
pub fn cancel_deferred(conn: &Connection, task_id: &str) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE deferred_tasks SET status = 'cancelled' WHERE task_id = ?1 AND status = 'pending'",
        )?
        .execute([task_id])?;
    Ok(changed == 1)
}

/// The earliest pending `wake_at`: the one instant the runtime arms a timer for.
pub fn next_wake_at(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT MIN(wake_at_ms) FROM deferred_tasks WHERE status = 'pending'")?
        .query_row([], |row| row.get(0))?)
}

const TASK_COLUMNS: &str =
    "task_id, wake_at_ms, condition, payload, owner_source, owner_user, status";

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<DeferredTask> {
    let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(DeferredTask {
        task_id: row.get(0)?,
        wake_at_ms: row.get(1)?,
        condition: parse(row.get(2)?),
        payload: parse(row.get(3)?).unwrap_or(serde_json::Value::Null),
        owner_source: row.get(4)?,
        owner_user: row.get(5)?,
        status: row.get(6)?,
    })
}

/// Fires every pending task with `wake_at <= now`, oldest first: each is
/// marked fired and the replies `render` makes for it are written, in the
/// same transaction, so a task fires once even across a crash.
pub fn fire_due(
    conn: &Connection,
    now_ms: i64,
    render: impl Fn(&DeferredTask) -> Vec<NewReply>,
) -> Result<Vec<ResponsePacket>, StoreError> {
    let due: Vec<DeferredTask> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM deferred_tasks
             WHERE status = 'pending' AND wake_at_ms <= ?1 ORDER BY wake_at_ms, created_ms, task_id"
        ))?;
        stmt.query_map([now_ms], task_from_row)?
            .collect::<Result<_, _>>()?
    };
    let mut written = Vec::new();
    for task in &due {
        conn.prepare_cached(
            "UPDATE deferred_tasks SET status = 'fired', fired_ms = ?2 WHERE task_id = ?1",
        )?
        .execute(params![task.task_id, now_ms])?;
        for reply in render(task) {
            written.push(insert_reply(conn, None, &reply, now_ms)?);
        }
    }
    Ok(written)
}

/// Pending tasks of one owner, soonest first.
pub fn list_deferred(
    conn: &Connection,
    owner_source: &str,
    owner_user: &str,
) -> Result<Vec<DeferredTask>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM deferred_tasks
         WHERE status = 'pending' AND owner_source = ?1 AND owner_user = ?2 ORDER BY wake_at_ms"
    ))?;
    let rows = stmt.query_map(params![owner_source, owner_user], task_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn event_status(
    conn: &Connection,
    source: &str,
    event_id: &str,
) -> Result<Option<(i64, EventStatus)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, status FROM events WHERE source = ?1 AND event_id = ?2")?
        .query_row(params![source, event_id], |row| {
            Ok((row.get(0)?, EventStatus::parse(&row.get::<_, String>(1)?)))
        })
        .optional()?)
}

pub fn stats(conn: &Connection) -> Result<StoreStats, StoreError> {
    let count = |sql: &str| -> Result<i64, StoreError> {
        Ok(conn.prepare_cached(sql)?.query_row([], |row| row.get(0))?)
    };
    Ok(StoreStats {
        events_total: count("SELECT COUNT(*) FROM events")?,
        events_pending: count("SELECT COUNT(*) FROM events WHERE status = 'pending'")?,
        replies_total: count("SELECT COUNT(*) FROM replies")?,
        deferred_pending: count("SELECT COUNT(*) FROM deferred_tasks WHERE status = 'pending'")?,
        next_wake_at_ms: next_wake_at(conn)?,
        schema_version: count("PRAGMA user_version")?,
    })
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// What forgotten text is replaced with in the event log and the outbox.
pub const FORGOTTEN: &str = "[forgotten]";

/// Erase `text` from what the store keeps of one conversation, named by
/// its key `source/user_id/thread_id`: every string of an event envelope
/// (the message text, platform metadata) and every reply body containing
/// it get it replaced by [`FORGOTTEN`]. Rows, event ids and so the dedupe
/// keys stay: a redelivered event is still recognised and nothing is
/// processed twice. The connection's `secure_delete` is turned on first so
/// the old text is overwritten in the file, not just unlinked. Returns how
/// many rows changed.
pub fn redact_text(conn: &Connection, conversation: &str, text: &str) -> Result<usize, StoreError> {
    if text.trim().is_empty() {
        return Ok(0);
    }
    conn.pragma_update(None, "secure_delete", "ON")?;
    let events: Vec<(i64, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT seq, envelope, outcome FROM events
              WHERE source || '/' || json_extract(envelope, '$.user_id') || '/'
                    || json_extract(envelope, '$.thread_id') = ?1",
        )?
        .query_map([conversation], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let redacted = |json: &str| {
        let mut value = serde_json::from_str::<serde_json::Value>(json).ok()?;
        redact_strings(&mut value, text).then(|| value.to_string())
    };
    let mut changed = 0;
    for (seq, envelope, outcome) in events {
        let envelope = redacted(&envelope);
        // The outcome explains the decision and may quote the message.
        let outcome = outcome.as_deref().and_then(redacted);
        if envelope.is_some() || outcome.is_some() {
            conn.execute(
                "UPDATE events SET envelope = COALESCE(?2, envelope), outcome = COALESCE(?3, outcome)
                  WHERE seq = ?1",
                rusqlite::params![seq, envelope, outcome],
            )?;
            changed += 1;
        }
    }
    changed += conn.execute(
        "UPDATE replies SET body = replace(body, ?2, ?3)
          WHERE source || '/' || user_id || '/' || thread_id = ?1 AND instr(body, ?2) > 0",
        rusqlite::params![conversation, text, FORGOTTEN],
    )?;
    Ok(changed)
}

/// Replace `text` in every string inside `value`; whether any changed.
fn redact_strings(value: &mut serde_json::Value, text: &str) -> bool {
    match value {
        serde_json::Value::String(s) if s.contains(text) => {
            *s = s.replace(text, FORGOTTEN);
            true
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| redact_strings(v, text) | any),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |any, v| redact_strings(v, text) | any),
        _ => false,
    }
}
