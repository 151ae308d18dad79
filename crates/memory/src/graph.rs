//! The entity graph: entities, typed relations between them, and traversal.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::text::normalise_entity_key;

/// An entity reached by traversal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Neighbour {
    /// Entity key, e.g. `person:sam`.
    pub key: String,
    /// Hops from the start entity (1 = direct).
    pub depth: u32,
    /// Relation of the last hop.
    pub relation: String,
}

/// Add (or strengthen) the relation `src -[relation]-> dst`, creating the
/// entities as needed.
pub fn relate(
    conn: &Connection,
    src: &str,
    relation: &str,
    dst: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let s = crate::store::upsert_entity(conn, &normalise_entity_key(src), now)?;
    let d = crate::store::upsert_entity(conn, &normalise_entity_key(dst), now)?;
    crate::store::add_relation_row(conn, s, relation, d, None, now)
}

/// Entities within `max_depth` hops of `key`, following relations in both
/// directions, nearest first.
pub fn neighbours(conn: &Connection, key: &str, max_depth: u32) -> Result<Vec<Neighbour>> {
    let key = normalise_entity_key(key);
    let Some(start): Option<i64> = conn
        .query_row(
            "SELECT entity_id FROM memory_entities WHERE key = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE walk(entity_id, depth, relation) AS (
             SELECT ?1, 0, ''
             UNION
             SELECT CASE WHEN r.src = w.entity_id THEN r.dst ELSE r.src END, w.depth + 1, r.relation
               FROM walk w JOIN memory_relations r ON r.src = w.entity_id OR r.dst = w.entity_id
              WHERE w.depth < ?2
         )
         SELECT e.key, MIN(w.depth), w.relation FROM walk w JOIN memory_entities e USING (entity_id)
          WHERE w.entity_id != ?1 GROUP BY e.key ORDER BY MIN(w.depth), e.key",
    )?;
    let rows = stmt.query_map(params![start, max_depth], |r| {
        Ok(Neighbour {
            key: r.get(0)?,
            depth: r.get::<_, i64>(1)? as u32,
            relation: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Seqs of records linked to any of the entity keys, newest first, with the
/// number of those entities each record mentions.
pub fn records_for_entities(
    conn: &Connection,
    keys: &[String],
    limit: usize,
) -> Result<Vec<(i64, u32)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; keys.len()].join(",");
    let sql = format!(
        "SELECT re.seq, COUNT(*) AS hits FROM memory_record_entities re
           JOIN memory_entities e ON e.entity_id = re.entity_id
          WHERE e.key IN ({placeholders})
          GROUP BY re.seq ORDER BY hits DESC, re.seq DESC LIMIT {limit}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(keys.iter()), |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as u32))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Entity keys whose name appears as a word in `words`, with the number of
/// records each links to, counted up to `cap` (rarer entities are more
/// telling; counting stops early for common ones).
pub fn entities_named(conn: &Connection, words: &[String], cap: u64) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.key, (SELECT COUNT(*) FROM (SELECT 1 FROM memory_record_entities re
                          WHERE re.entity_id = e.entity_id LIMIT CAST(?2 AS INTEGER)))
           FROM memory_entities e WHERE e.name = ?1",
    )?;
    let mut out = Vec::new();
    for w in words {
        let rows = stmt.query_map(params![w, cap as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}
