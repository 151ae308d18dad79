//! L2: records, full-text rows, vectors and entity links in SQLite.
//!
//! Plain functions over `&rusqlite::Connection` so the daemon's store can
//! call them on its own connection. Callers wrap each logical write in one
//! transaction ([`crate::MemoryEngine`] does).

use chrono::{DateTime, Utc};
use opticlaw_core::MemoryRecord;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use crate::error::{MemoryError, Result};
use crate::record::{StoredMemory, from_ms, kind_str, parse_kind, to_ms};

/// A validated record ready for insertion.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    /// Its id.
    pub memory_id: Uuid,
    /// Record fields (content, kind, flags...).
    pub new: crate::record::NewMemory,
    /// Neighbouring text indexed with lower weight (previous turns).
    pub context: String,
    /// Earlier records of the thread whose context this record's content
    /// joins (their following turn).
    pub previous_seqs: Vec<i64>,
    /// Final salience.
    pub salience: f32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Normalised entity keys (given + extracted + speaker).
    pub entities: Vec<String>,
}

impl PreparedRecord {
    /// The record as [`get_many`] would read it back once inserted as `seq`
    /// (times at the store's millisecond precision), without the read.
    pub fn stored(&self, seq: i64) -> StoredMemory {
        let n = &self.new;
        StoredMemory {
            seq,
            record: MemoryRecord {
                memory_id: self.memory_id,
                memory_type: n.kind,
                content: n.content.clone(),
                embedding_ref: None,
                entities: self.entities.clone(),
                salience: self.salience,
                expires_at: n.expires_at.map(|t| from_ms(to_ms(t))),
                pinned: n.pinned,
                thread_id: n.thread_id.clone(),
                created_at: Some(from_ms(to_ms(self.created_at))),
            },
            speaker: n.speaker.clone(),
            source: n.source.clone(),
            confidence: n.confidence,
            domain: n.domain.clone(),
            occurred_at: from_ms(to_ms(self.occurred_at)),
        }
    }
}

pub(crate) const RECORD_COLUMNS: &str = "seq, memory_id, kind, content, thread_id, speaker, source, \
     confidence, domain, salience, pinned, expires_at, occurred_at, created_at, entities, embedding_ref";

/// Map a row selected with [`RECORD_COLUMNS`].
pub(crate) fn row_to_memory(row: &Row<'_>) -> rusqlite::Result<StoredMemory> {
    let id: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let entities: String = row.get(14)?;
    let occurred_at = from_ms(row.get(12)?);
    Ok(StoredMemory {
        seq: row.get(0)?,
        record: MemoryRecord {
            memory_id: Uuid::parse_str(&id).unwrap_or_default(),
            memory_type: parse_kind(&kind).unwrap_or(opticlaw_core::MemoryType::Episodic),
            content: row.get(3)?,
            embedding_ref: row.get(15)?,
            entities: serde_json::from_str(&entities).unwrap_or_default(),
            salience: row.get::<_, f64>(9)? as f32,
            expires_at: row.get::<_, Option<i64>>(11)?.map(from_ms),
            pinned: row.get::<_, i64>(10)? != 0,
            thread_id: row.get(4)?,
            created_at: Some(from_ms(row.get(13)?)),
        },
        speaker: row.get(5)?,
        source: row.get(6)?,
        confidence: row.get::<_, Option<f64>>(7)?.map(|c| c as f32),
        domain: row.get(8)?,
        occurred_at,
    })
}

/// Insert a record with its full-text row and entity links; returns its seq.
pub fn insert_record(conn: &Connection, rec: &PreparedRecord) -> Result<i64> {
    let n = &rec.new;
    conn.prepare_cached(
        "INSERT INTO memory_records (memory_id, kind, content, context, thread_id, speaker, source,
             confidence, domain, salience, pinned, expires_at, occurred_at, created_at, entities)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        rec.memory_id.to_string(),
        kind_str(n.kind),
        n.content,
        rec.context,
        n.thread_id,
        n.speaker,
        n.source,
        n.confidence.map(f64::from),
        n.domain,
        f64::from(rec.salience),
        n.pinned as i64,
        n.expires_at.map(to_ms),
        to_ms(rec.occurred_at),
        to_ms(rec.created_at),
        serde_json::to_string(&rec.entities).unwrap_or_else(|_| "[]".into()),
    ])
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            MemoryError::Invalid(format!("memory id {} already exists", rec.memory_id))
        }
        e => e.into(),
    })?;
    let seq = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO memory_fts (rowid, content, context) VALUES (?1, ?2, ?3)")?
        .execute(params![own_row(seq), index_text(rec), rec.context])?;
    for &prev in &rec.previous_seqs {
        // memory_records.context keeps the whole context (forgetting finds
        // a record's text there); the index gets a row of its own, so
        // nothing already indexed is rewritten.
        conn.prepare_cached(
            "UPDATE memory_records SET context = context || ' ' || ?2 WHERE seq = ?1",
        )?
        .execute(params![prev, n.content])?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO memory_fts (rowid, content, context) VALUES (?1, '', ?2)",
        )?
        .execute(params![following_row(prev), n.content])?;
    }
    let speaker_entity = n
        .speaker
        .as_ref()
        .map(|s| crate::text::normalise_entity_key(&format!("person:{s}")));
    let mut ids = Vec::with_capacity(rec.entities.len());
    for key in &rec.entities {
        let id = upsert_entity(conn, key, rec.created_at)?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO memory_record_entities (seq, entity_id) VALUES (?1, ?2)",
        )?
        .execute(params![seq, id])?;
        ids.push((key, id));
    }
    if let Some(sp) = speaker_entity {
        let sp_id = upsert_entity(conn, &sp, rec.created_at)?;
        for (key, id) in &ids {
            if **key != sp {
                add_relation_row(conn, sp_id, "mentions", *id, Some(seq), rec.created_at)?;
            }
        }
    }
    Ok(seq)
}

/// Full-text rowid of a record's own row (its words and the turns before).
pub(crate) fn own_row(seq: i64) -> i64 {
    seq * 2
}

/// Full-text rowid of the row holding the turn after a record.
pub(crate) fn following_row(seq: i64) -> i64 {
    seq * 2 + 1
}

/// Text put in the main full-text column: content plus the speaker's name,
/// so "what did Sam say about X" matches Sam's turns.
fn index_text(rec: &PreparedRecord) -> String {
    match &rec.new.speaker {
        Some(s) => format!("{s}: {}", rec.new.content),
        None => rec.new.content.clone(),
    }
}

/// Find or create the entity with `key`; returns its id.
pub fn upsert_entity(conn: &Connection, key: &str, now: DateTime<Utc>) -> Result<i64> {
    if let Some(id) = conn
        .prepare_cached("SELECT entity_id FROM memory_entities WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO memory_entities (key, name, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![key, crate::text::entity_name(key), to_ms(now)])?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn add_relation_row(
    conn: &Connection,
    src: i64,
    relation: &str,
    dst: i64,
    source_seq: Option<i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO memory_relations (src, relation, dst, weight, source_seq, created_at)
         VALUES (?1, ?2, ?3, 1.0, ?4, ?5)
         ON CONFLICT (src, relation, dst) DO UPDATE SET weight = weight + 1.0",
    )?
    .execute(params![src, relation, dst, source_seq, to_ms(now)])?;
    Ok(())
}

/// Store (or replace) a record's vector as little-endian f32 bytes.
pub fn put_vector(conn: &Connection, seq: i64, model: &str, v: &[f32]) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO memory_vectors (seq, model, dim, vector) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![seq, model, v.len() as i64, vector_to_blob(v)])?;
    conn.prepare_cached("UPDATE memory_records SET embedding_ref = ?2 WHERE seq = ?1")?
        .execute(params![seq, format!("vec://{model}/{seq}")])?;
    Ok(())
}

/// Encode a vector as little-endian f32 bytes.
pub fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decode little-endian f32 bytes.
pub fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Fetch a record by id.
pub fn get(conn: &Connection, id: Uuid) -> Result<Option<StoredMemory>> {
    Ok(conn
        .query_row(
            &format!("SELECT {RECORD_COLUMNS} FROM memory_records WHERE memory_id = ?1"),
            [id.to_string()],
            row_to_memory,
        )
        .optional()?)
}

/// Fetch records by seq, in the order given (missing ones skipped).
pub fn get_many(conn: &Connection, seqs: &[i64]) -> Result<Vec<StoredMemory>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM memory_records WHERE seq = ?1"
    ))?;
    let mut out = Vec::with_capacity(seqs.len());
    for s in seqs {
        if let Some(m) = stmt.query_row([s], row_to_memory).optional()? {
            out.push(m);
        }
    }
    Ok(out)
}

/// What ranking needs of a candidate record, without its content (unless
/// asked), entities or ids: retrieval ranks a few hundred candidates and
/// reads only the winners whole.
#[derive(Debug, Clone)]
pub(crate) struct RankFields {
    pub seq: i64,
    pub kind: opticlaw_core::MemoryType,
    pub thread_id: Option<String>,
    pub speaker: Option<String>,
    pub domain: Option<String>,
    pub salience: f32,
    pub pinned: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
    /// Whether the content states a time; only computed when asked.
    pub mentions_time: bool,
}

/// [`RankFields`] of the records among `seqs` (missing ones skipped).
pub(crate) fn rank_fields(
    conn: &Connection,
    seqs: &[i64],
    with_time_mentions: bool,
) -> Result<Vec<RankFields>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, kind, thread_id, speaker, domain, salience, pinned, expires_at, occurred_at,
                CASE WHEN ?2 THEN content END
           FROM memory_records WHERE seq = ?1",
    )?;
    let mut out = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let row = stmt
            .query_row(params![seq, with_time_mentions], |row| {
                let kind: String = row.get(1)?;
                let mentions_time = row
                    .get_ref(9)?
                    .as_str_or_null()?
                    .is_some_and(crate::timeparse::mentions_time);
                Ok(RankFields {
                    seq: row.get(0)?,
                    kind: parse_kind(&kind).unwrap_or(opticlaw_core::MemoryType::Episodic),
                    thread_id: row.get(2)?,
                    speaker: row.get(3)?,
                    domain: row.get(4)?,
                    salience: row.get::<_, f64>(5)? as f32,
                    pinned: row.get::<_, i64>(6)? != 0,
                    expires_at: row.get::<_, Option<i64>>(7)?.map(from_ms),
                    occurred_at: from_ms(row.get(8)?),
                    mentions_time,
                })
            })
            .optional()?;
        out.extend(row);
    }
    Ok(out)
}

/// Records of a thread in time order, optionally within `[from, to)`.
pub fn thread_records(
    conn: &Connection,
    thread_id: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<StoredMemory>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM memory_records WHERE thread_id = ?1
           AND occurred_at >= ?2 AND occurred_at < ?3 ORDER BY occurred_at, seq"
    ))?;
    let rows = stmt.query_map(
        params![
            thread_id,
            from.map_or(i64::MIN, to_ms),
            to.map_or(i64::MAX, to_ms)
        ],
        row_to_memory,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Move the named cursor to `position` (created on first use).
pub fn set_cursor(conn: &Connection, name: &str, position: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO memory_cursors (name, position) VALUES (?1, ?2)
           ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )?
    .execute(params![name, position])?;
    Ok(())
}

/// Pin or unpin a record; false when there is no such record.
pub fn set_pinned(conn: &Connection, id: Uuid, pinned: bool) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE memory_records SET pinned = ?2 WHERE memory_id = ?1",
        params![id.to_string(), pinned as i64],
    )? > 0)
}

/// Truly delete a record: its row, full-text row, vector, entity links,
/// relations it introduced and summaries built from it (they quote it).
/// Returns the deleted seq, or `None` when there was no such record.
pub fn forget(conn: &Connection, id: Uuid) -> Result<Option<i64>> {
    let Some(seq): Option<i64> = conn
        .query_row(
            "SELECT seq FROM memory_records WHERE memory_id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    forget_seq(conn, seq)?;
    Ok(Some(seq))
}

/// [`forget`] by seq.
pub fn forget_seq(conn: &Connection, seq: i64) -> Result<()> {
    delete_record(conn, seq, true)
}

/// Delete a record but keep summaries built from it (decay-based
/// forgetting: the summary is the record's compressed form).
pub fn forget_seq_keep_summaries(conn: &Connection, seq: i64) -> Result<()> {
    delete_record(conn, seq, false)
}

fn delete_record(conn: &Connection, seq: i64, drop_summaries: bool) -> Result<()> {
    // Neighbours index this record's text as their context: strip it there.
    let row: Option<(Option<String>, String)> = conn
        .query_row(
            "SELECT thread_id, content FROM memory_records WHERE seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((Some(thread), content)) = row {
        let touched: Vec<i64> = conn
            .prepare_cached(
                "SELECT seq FROM memory_records WHERE thread_id = ?1 AND seq != ?2 AND instr(context, ?3) > 0",
            )?
            .query_map(params![thread, seq, content], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for n in touched {
            conn.execute(
                "UPDATE memory_records SET context = replace(context, ?2, '') WHERE seq = ?1",
                params![n, content],
            )?;
            // Re-index the neighbour as one row with what is left of its
            // context; the delete purges the old terms (secure-delete).
            delete_fulltext(conn, n)?;
            conn.execute(
                "INSERT INTO memory_fts (rowid, content, context)
                 SELECT ?2, CASE WHEN speaker IS NULL THEN content ELSE speaker || ': ' || content END,
                        context FROM memory_records WHERE seq = ?1",
                params![n, own_row(n)],
            )?;
        }
    }
    delete_fulltext(conn, seq)?;
    conn.execute("DELETE FROM memory_vectors WHERE seq = ?1", [seq])?;
    let linked: Vec<i64> = conn
        .prepare_cached("SELECT entity_id FROM memory_record_entities WHERE seq = ?1")?
        .query_map([seq], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute("DELETE FROM memory_record_entities WHERE seq = ?1", [seq])?;
    conn.execute("DELETE FROM memory_relations WHERE source_seq = ?1", [seq])?;
    if drop_summaries {
        conn.execute(
            "DELETE FROM memory_summaries WHERE summary_id IN
               (SELECT summary_id FROM memory_summary_sources WHERE seq = ?1)",
            [seq],
        )?;
        conn.execute(
            "DELETE FROM memory_summary_sources WHERE summary_id NOT IN
               (SELECT summary_id FROM memory_summaries)",
            [],
        )?;
    } else {
        conn.execute("DELETE FROM memory_summary_sources WHERE seq = ?1", [seq])?;
    }
    conn.execute("DELETE FROM memory_records WHERE seq = ?1", [seq])?;
    // Entities nothing refers to any more go too (they name what was forgotten).
    let mut orphan = conn.prepare_cached(
        "DELETE FROM memory_entities WHERE entity_id = ?1
           AND NOT EXISTS (SELECT 1 FROM memory_record_entities WHERE entity_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM memory_relations WHERE src = ?1)
           AND NOT EXISTS (SELECT 1 FROM memory_relations WHERE dst = ?1)",
    )?;
    for id in linked {
        orphan.execute([id])?;
    }
    Ok(())
}

/// Remove a record's full-text rows (its own and its following turn's).
fn delete_fulltext(conn: &Connection, seq: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM memory_fts WHERE rowid IN (?1, ?2)")?
        .execute(params![own_row(seq), following_row(seq)])?;
    Ok(())
}

/// Seqs of records whose `expires_at` has passed.
pub fn expired(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq FROM memory_records WHERE expires_at IS NOT NULL AND expires_at <= ?1",
    )?;
    let rows = stmt.query_map([to_ms(now)], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Record that records were returned by retrieval (feeds salience decay).
pub fn touch(conn: &Connection, seqs: &[i64], now: DateTime<Utc>) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE memory_records SET last_access_at = ?2, access_count = access_count + 1 WHERE seq = ?1",
    )?;
    for s in seqs {
        stmt.execute(params![s, to_ms(now)])?;
    }
    Ok(())
}

/// Counts for `stats`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Records by kind: episodic, semantic, procedural.
    pub episodic: u64,
    /// Semantic records.
    pub semantic: u64,
    /// Procedural records.
    pub procedural: u64,
    /// Pinned records.
    pub pinned: u64,
    /// Records with a vector.
    pub vectors: u64,
    /// Entities in the graph.
    pub entities: u64,
    /// Relations in the graph.
    pub relations: u64,
    /// Summaries at any level.
    pub summaries: u64,
}

/// Count records, vectors, entities, relations and summaries.
pub fn stats(conn: &Connection) -> Result<StoreStats> {
    let count =
        |sql: &str| -> Result<u64> { Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
    Ok(StoreStats {
        episodic: count("SELECT COUNT(*) FROM memory_records WHERE kind = 'episodic'")?,
        semantic: count("SELECT COUNT(*) FROM memory_records WHERE kind = 'semantic'")?,
        procedural: count("SELECT COUNT(*) FROM memory_records WHERE kind = 'procedural'")?,
        pinned: count("SELECT COUNT(*) FROM memory_records WHERE pinned != 0")?,
        vectors: count("SELECT COUNT(*) FROM memory_vectors")?,
        entities: count("SELECT COUNT(*) FROM memory_entities")?,
        relations: count("SELECT COUNT(*) FROM memory_relations")?,
        summaries: count("SELECT COUNT(*) FROM memory_summaries")?,
    })
}
