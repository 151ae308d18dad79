//! The memory engine's SQLite schema.
//!
//! All tables are prefixed `memory_`. [`MIGRATIONS`] is an ordered list of
//! SQL batches meant to be appended to the daemon store's migrations; each
//! entry runs once. [`migrate`] applies them to a connection on its own,
//! recording progress in `memory_schema_version`, for a [`crate::MemoryEngine`]
//! that owns its connection.

use rusqlite::Connection;

use crate::error::Result;

/// Ordered schema migrations (tables prefixed `memory_`). Never edit an
/// entry once released: append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: records, full-text index, vectors, entity graph, summaries.
    r#"
CREATE TABLE memory_records (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id      TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL CHECK (kind IN ('episodic', 'semantic', 'procedural')),
    content        TEXT    NOT NULL,
    context        TEXT    NOT NULL DEFAULT '',
    thread_id      TEXT,
    speaker        TEXT,
    source         TEXT,
    confidence     REAL,
    domain         TEXT,
    salience       REAL    NOT NULL DEFAULT 0.5,
    pinned         INTEGER NOT NULL DEFAULT 0,
    expires_at     INTEGER,
    occurred_at    INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    last_access_at INTEGER,
    access_count   INTEGER NOT NULL DEFAULT 0,
    entities       TEXT    NOT NULL DEFAULT '[]',
    embedding_ref  TEXT
);
CREATE INDEX memory_records_thread ON memory_records (thread_id, occurred_at);
CREATE INDEX memory_records_occurred ON memory_records (occurred_at);
CREATE INDEX memory_records_expires ON memory_records (expires_at) WHERE expires_at IS NOT NULL;

CREATE VIRTUAL TABLE memory_fts USING fts5 (
    content, context,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
-- Deletes remove a row's terms from the index at once, not at the next merge.
INSERT INTO memory_fts (memory_fts, rank) VALUES ('secure-delete', 1);

CREATE TABLE memory_vectors (
    seq    INTEGER PRIMARY KEY,
    model  TEXT    NOT NULL,
    dim    INTEGER NOT NULL,
    vector BLOB    NOT NULL
);

CREATE TABLE memory_entities (
    entity_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX memory_entities_name ON memory_entities (name);

CREATE TABLE memory_record_entities (
    seq       INTEGER NOT NULL,
    entity_id INTEGER NOT NULL,
    PRIMARY KEY (entity_id, seq)
) WITHOUT ROWID;
CREATE INDEX memory_record_entities_seq ON memory_record_entities (seq);

CREATE TABLE memory_relations (
    src        INTEGER NOT NULL,
    relation   TEXT    NOT NULL,
    dst        INTEGER NOT NULL,
    weight     REAL    NOT NULL DEFAULT 1.0,
    source_seq INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (src, relation, dst)
) WITHOUT ROWID;
CREATE INDEX memory_relations_dst ON memory_relations (dst);
CREATE INDEX memory_relations_source ON memory_relations (source_seq) WHERE source_seq IS NOT NULL;

CREATE TABLE memory_summaries (
    summary_id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id  TEXT    NOT NULL,
    level      TEXT    NOT NULL CHECK (level IN ('micro', 'meso', 'macro')),
    start_at   INTEGER NOT NULL,
    end_at     INTEGER NOT NULL,
    content    TEXT    NOT NULL,
    source_tokens INTEGER NOT NULL DEFAULT 0,
    method     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX memory_summaries_thread ON memory_summaries (thread_id, level, start_at);

CREATE TABLE memory_summary_sources (
    summary_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (seq, summary_id)
) WITHOUT ROWID;
CREATE INDEX memory_summary_sources_summary ON memory_summary_sources (summary_id);
"#,
    // 2: ingestion cursors (how far a feed, e.g. the daemon's event log, has
    // been ingested), advanced in the same transaction as the records.
    r#"
CREATE TABLE memory_cursors (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 3: ingestion only inserts into the full-text index. A record's row
    // (rowid 2*seq) holds its words and the turns before it; the turn after
    // it, which arrives later, gets a row of its own (rowid 2*seq+1)
    // instead of rewriting the record's row. Rewrites with secure-delete
    // made ingestion slow at scale (each one purged the old row's terms
    // from the index); now only forgetting deletes, and secure-delete still
    // purges what is forgotten at once. (Not contentless: FTS5's
    // contentless_delete tables delete through tombstones and keep the
    // terms in the index pages.)
    r#"
DROP TABLE memory_fts;
CREATE VIRTUAL TABLE memory_fts USING fts5 (
    content, context,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO memory_fts (memory_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO memory_fts (rowid, content, context)
    SELECT seq * 2, CASE WHEN speaker IS NULL THEN content ELSE speaker || ': ' || content END, context
      FROM memory_records;
"#,
];

/// Apply every migration in [`MIGRATIONS`] not yet applied to `conn`, each in
/// its own transaction. Progress is kept in `memory_schema_version`.
pub fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS memory_schema_version (version INTEGER NOT NULL)",
    )?;
    let applied: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM memory_schema_version",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO memory_schema_version (version) VALUES (?1)",
            [(i + 1) as i64],
        )?;
        tx.commit()?;
    }
    Ok(())
}
