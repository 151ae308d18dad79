//! Export and import as JSON Lines: one [`ExportLine`] per record.
//!
//! Vectors are not exported (they are derived: the importing engine embeds
//! with its own model). Import is all-or-nothing: a bad line fails the whole
//! import with its line number, in one transaction.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use opticlaw_core::MemoryType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::MemoryEngine;
use crate::error::{MemoryError, Result};
use crate::record::NewMemory;

/// One exported record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    /// Record id.
    pub memory_id: Uuid,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: MemoryType,
    /// Content.
    pub content: String,
    /// Thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// Source of a fact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Confidence of a fact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Entity keys.
    #[serde(default)]
    pub entities: Vec<String>,
    /// Salience.
    pub salience: f32,
    /// Pinned.
    #[serde(default)]
    pub pinned: bool,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl MemoryEngine {
    /// Write every record as JSON Lines, oldest first; returns the count.
    pub fn export_jsonl(&self, mut out: impl Write) -> Result<usize> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM memory_records ORDER BY seq",
            crate::store::RECORD_COLUMNS
        ))?;
        let rows = stmt.query_map([], crate::store::row_to_memory)?;
        let mut n = 0;
        for row in rows {
            let m = row?;
            let line = ExportLine {
                memory_id: m.record.memory_id,
                kind: m.record.memory_type,
                content: m.record.content,
                thread_id: m.record.thread_id,
                speaker: m.speaker,
                source: m.source,
                confidence: m.confidence,
                domain: m.domain,
                entities: m.record.entities,
                salience: m.record.salience,
                pinned: m.record.pinned,
                expires_at: m.record.expires_at,
                occurred_at: m.occurred_at,
            };
            serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        out.flush()?;
        Ok(n)
    }

    /// Read JSON Lines written by [`MemoryEngine::export_jsonl`] and add every
    /// record in one transaction; any bad line (invalid UTF-8, bad JSON,
    /// invalid record, duplicate id) imports nothing. Blank lines are skipped.
    pub fn import_jsonl(&mut self, input: impl BufRead) -> Result<usize> {
        let mut news = Vec::new();
        for (i, line) in input.split(b'\n').enumerate() {
            let line_no = i + 1;
            let bytes = line?;
            let text = std::str::from_utf8(&bytes).map_err(|e| MemoryError::Import {
                line: line_no,
                message: format!("not valid UTF-8 (byte {})", e.valid_up_to()),
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let l: ExportLine = serde_json::from_str(text).map_err(|e| MemoryError::Import {
                line: line_no,
                message: e.to_string(),
            })?;
            news.push((
                line_no,
                NewMemory {
                    kind: l.kind,
                    content: l.content,
                    thread_id: l.thread_id,
                    speaker: l.speaker,
                    occurred_at: Some(l.occurred_at),
                    source: l.source,
                    confidence: l.confidence,
                    domain: l.domain,
                    entities: l.entities,
                    salience: Some(l.salience),
                    pinned: l.pinned,
                    expires_at: l.expires_at,
                    memory_id: Some(l.memory_id),
                },
            ));
        }
        let lines: Vec<usize> = news.iter().map(|(l, _)| *l).collect();
        let n = news.len();
        self.add_batch_numbered(news.into_iter().map(|(_, m)| m).collect(), &[])
            .map_err(|(idx, e)| MemoryError::Import {
                line: lines.get(idx).copied().unwrap_or(0),
                message: e.to_string(),
            })?;
        Ok(n)
    }
}
