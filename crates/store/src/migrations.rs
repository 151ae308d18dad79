//! Versioned schema migrations.
//!
//! The store's own tables are versioned in SQLite's `user_version`. Other
//! crates that keep tables in the same file (the model router's accounting,
//! the memory engine) bring their own ordered migration lists as
//! [`Component`]s, each versioned separately in `schema_components`, so a
//! new migration of one never renumbers another's.

use rusqlite::Connection;

use crate::StoreError;

/// Each entry moves the schema from version `i` to `i + 1`. Append only:
/// a shipped migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: the event log, the reply outbox and the deferred-task index.
    r#"
    CREATE TABLE events (
        seq          INTEGER PRIMARY KEY,
        source       TEXT    NOT NULL,
        event_id     TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        envelope     TEXT    NOT NULL,
        status       TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'done', 'failed')),
        accepted_ms  INTEGER NOT NULL,
        processed_ms INTEGER,
        outcome      TEXT,
        UNIQUE (source, event_id)
    );
    CREATE INDEX events_pending ON events (seq) WHERE status = 'pending';

    CREATE TABLE replies (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        event_seq    INTEGER REFERENCES events (seq),
        in_reply_to  TEXT,
        source       TEXT    NOT NULL,
        user_id      TEXT    NOT NULL,
        thread_id    TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        body         TEXT    NOT NULL,
        created_ms   INTEGER NOT NULL
    );
    CREATE INDEX replies_by_thread ON replies (source, thread_id, seq);
    CREATE INDEX replies_by_event ON replies (event_seq);

    CREATE TABLE deferred_tasks (
        task_id      TEXT    PRIMARY KEY,
        wake_at_ms   INTEGER NOT NULL,
        condition    TEXT,
        payload      TEXT    NOT NULL,
        status       TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'fired', 'cancelled')),
        owner_source TEXT    NOT NULL,
        owner_user   TEXT    NOT NULL,
        created_ms   INTEGER NOT NULL,
        fired_ms     INTEGER
    );
    CREATE INDEX deferred_by_wake_at ON deferred_tasks (wake_at_ms) WHERE status = 'pending';
    "#,
    // 2: delivery tracking for replies that go out to chat platforms.
    r#"
    ALTER TABLE replies ADD COLUMN delivered_ms INTEGER;
    CREATE INDEX replies_undelivered ON replies (seq)
        WHERE delivered_ms IS NULL AND source <> 'local';
    "#,
    // 3: only the web chat reads replies by thread, so only its replies are
    // indexed by thread: a platform reply's random (source, thread) key cost
    // a B-tree page in the log for every reply.
    r#"
    DROP INDEX replies_by_thread;
    CREATE INDEX replies_local_by_thread ON replies (thread_id, seq) WHERE source = 'local';
    "#,
    // 4: an event's replies are found from the event itself instead of an
    // index on `event_seq`, which cost a page in the log for every commit
    // that wrote a reply, to serve only redeliveries. An event's replies are
    // all written in the transaction that completes it, right after it, so
    // the event keeps how many there are and a sequence number they all
    // follow: the first `reply_count` replies of the event after
    // `replies_after` are all of them. The backfill reads the old index
    // once before it goes.
    r#"
    ALTER TABLE events ADD COLUMN replies_after INTEGER;
    ALTER TABLE events ADD COLUMN reply_count INTEGER NOT NULL DEFAULT 0;
    UPDATE events
       SET replies_after = (SELECT min(seq) - 1 FROM replies WHERE event_seq = events.seq),
           reply_count   = (SELECT count(*) FROM replies WHERE event_seq = events.seq)
     WHERE seq IN (SELECT event_seq FROM replies);
    DROP INDEX replies_by_event;
    "#,
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: current,
            known: LATEST,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version as i64))
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.commit()?;
    }
    Ok(())
}

/// Another crate's tables in the same file: its name and its ordered,
/// append-only migrations.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub name: &'static str,
    pub migrations: &'static [&'static str],
}

pub fn migrate_component(conn: &mut Connection, component: &Component) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_components (
             name    TEXT PRIMARY KEY,
             version INTEGER NOT NULL
         )",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE((SELECT version FROM schema_components WHERE name = ?1), 0)",
        [component.name],
        |row| row.get(0),
    )?;
    let known = component.migrations.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            path: format!("component {}", component.name),
            found: current,
            known,
        });
    }
    for (index, sql) in component
        .migrations
        .iter()
        .enumerate()
        .skip(current as usize)
    {
        let version = index + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_components (name, version) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                    rusqlite::params![component.name, version as i64],
                )
                .map(|_| ())
            })
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    /// A store written by version 3 keeps finding each event's replies
    /// after migration 4 drops the index it used: the backfill records
    /// where they start and how many there are.
    #[test]
    fn migration_4_backfills_where_each_events_replies_are() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&MIGRATIONS[..3].concat()).unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO events (seq, source, event_id, priority, envelope, accepted_ms)
                 VALUES (1, 's', 'a', 0, '{}', 0), (2, 's', 'b', 0, '{}', 0), (3, 's', 'c', 0, '{}', 0);
             INSERT INTO replies (event_seq, source, user_id, thread_id, kind, body, created_ms)
                 VALUES (1, 's', 'u', 't', 'reply', 'a1', 0), (2, 's', 'u', 't', 'reply', 'b1', 0),
                        (1, 's', 'u', 't', 'reply', 'a2', 0), (NULL, 's', 'u', 't', 'notice', 'n', 0);",
        )
        .unwrap();

        migrate(&mut conn, ":memory:").unwrap();

        let range = |seq: i64| -> (Option<i64>, i64) {
            conn.query_row(
                "SELECT replies_after, reply_count FROM events WHERE seq = ?1",
                [seq],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(range(1), (Some(0), 2));
        assert_eq!(range(2), (Some(1), 1));
        assert_eq!(range(3), (None, 0));
        let replies: Vec<String> = conn
            .prepare(crate::store::REPLIES_FOR_EVENT)
            .unwrap()
            .query_map([1], |r| r.get(6))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(replies, ["a1", "a2"]);
        let index: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE name = 'replies_by_event'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap();
        assert_eq!(index, None);
    }
}
