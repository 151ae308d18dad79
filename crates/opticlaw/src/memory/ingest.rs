//! Catching the memory up with the daemon's store: every accepted user
//! message and every reply becomes an episodic record, exactly once.
//!
//! The store's `events.seq` and `replies.seq` only grow and are committed in
//! order by its single writer, so "everything past the cursor" is a complete
//! feed. Both cursors live in the memory file and move in the transaction
//! that adds the records.
//!
//! Arriving turns also drive compaction: a thread whose new turn comes after
//! the session gap (its previous session has closed) or that crosses the
//! record step gets its rolling summaries written right after the batch
//! ([`opticlaw_memory::compress::compaction_due`]). No timer is involved.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use opticlaw_memory::compress::{Level, compaction_due};
use opticlaw_memory::{MemoryEngine, MemoryError, NewMemory, Summarizer, ThreadTail};
use rusqlite::{Connection, OpenFlags};

use super::conversation_key;

const EVENTS_CURSOR: &str = "daemon.events";
const REPLIES_CURSOR: &str = "daemon.replies";
/// Rows read per pass from each table.
const BATCH: i64 = 256;
/// Who replies are attributed to.
pub const ASSISTANT: &str = "assistant";

/// What a catch-up added.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Records remembered.
    pub records: usize,
    /// Summaries that compaction wrote, by id.
    pub summaries: Vec<(i64, Level)>,
}

/// A read-only view of the daemon's store.
pub struct Feed {
    conn: Connection,
    /// Where the feed stands (events, replies), once read from the memory
    /// file; only this feed moves the cursors.
    cursors: Option<(i64, i64)>,
    /// The cursors as last written to the memory file.
    persisted: (i64, i64),
}

/// Rows that gave no record (commands, notices) move the stored cursors
/// only this far behind: a restart reads at most these again, and a burst
/// of commands costs the memory file no write per catch-up.
const UNRECORDED_LAG: i64 = 1024;

/// The fields of a stored event envelope the feed uses. Read through this
/// view, the rest (platform metadata, security, hints) is skipped instead
/// of built and dropped for every message, and text without escapes is
/// borrowed from the row.
#[derive(serde::Deserialize)]
struct EnvelopeView<'a> {
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    thread_id: Cow<'a, str>,
    timestamp: DateTime<Utc>,
    #[serde(borrow)]
    content: ContentView<'a>,
}

/// An envelope's text alone.
#[derive(serde::Deserialize)]
struct TextView<'a> {
    #[serde(borrow)]
    content: ContentView<'a>,
}

#[derive(serde::Deserialize)]
struct ContentView<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// What one read of a table gave.
struct Pass {
    items: Vec<Item>,
    /// The last row read (the cursor's new position).
    to: i64,
    rows: i64,
}

/// One row to remember, with the position it came from.
struct Item {
    at_ms: i64,
    new: NewMemory,
}

impl Feed {
    pub fn open(store_file: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            store_file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {} for memory ingestion", store_file.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            conn,
            cursors: None,
            persisted: (0, 0),
        })
    }

    fn cursors(&mut self, engine: &MemoryEngine) -> Result<(i64, i64)> {
        if let Some(cursors) = self.cursors {
            return Ok(cursors);
        }
        let cursors = (
            engine.cursor(EVENTS_CURSOR)?,
            engine.cursor(REPLIES_CURSOR)?,
        );
        self.cursors = Some(cursors);
        self.persisted = cursors;
        Ok(cursors)
    }

    /// Whether the daemon committed anything since the last catch-up.
    pub fn has_pending(&mut self, engine: &MemoryEngine) -> Result<bool> {
        let (events_from, replies_from) = self.cursors(engine)?;
        Ok(self.events(events_from, 1)?.to != events_from
            || self.replies(replies_from, 1)?.to != replies_from)
    }

    /// Ingest everything committed past the cursors.
    pub fn catch_up(
        &mut self,
        engine: &mut MemoryEngine,
        summarizer: &dyn Summarizer,
    ) -> Result<Ingested> {
        let limit = engine_limit(engine);
        let mut total = Ingested::default();
        loop {
            let (events_from, replies_from) = self.cursors(engine)?;
            // Both tables from one snapshot: one read transaction, not two.
            let read = self.conn.unchecked_transaction()?;
            let events = self.events(events_from, limit)?;
            let replies = self.replies(replies_from, limit)?;
            read.finish()?;
            let (events_to, replies_to) = (events.to, replies.to);
            let more = events.rows == BATCH || replies.rows == BATCH;
            if events_to == events_from && replies_to == replies_from {
                return Ok(total);
            }
            // Interleaved by time, so each turn is indexed next to its neighbours.
            let mut items: Vec<Item> = events.items.into_iter().chain(replies.items).collect();
            let behind = (events_to - self.persisted.0).max(replies_to - self.persisted.1);
            if items.is_empty() && behind < UNRECORDED_LAG {
                self.cursors = Some((events_to, replies_to));
                if !more {
                    return Ok(total);
                }
                continue;
            }
            items.sort_by_key(|i| i.at_ms);
            let mut news: Vec<NewMemory> = items.into_iter().map(|i| i.new).collect();
            let threads = threads_before(engine, &news)?;
            let cursors = [(EVENTS_CURSOR, events_to), (REPLIES_CURSOR, replies_to)];
            // A record the engine refuses must not stall the feed: drop it
            // (logged) and add the rest, cursors included, in one transaction.
            let count = loop {
                match engine.add_batch_at_cursors(news.clone(), &cursors) {
                    Ok(stored) => break stored.len(),
                    Err((i, err)) if refuses_record(&err) && i < news.len() => {
                        tracing::warn!(%err, "memory: a message was not remembered");
                        news.remove(i);
                    }
                    Err((_, err)) => return Err(err.into()),
                }
            };
            // Moved only once written: a failure reads these rows again.
            self.cursors = Some((events_to, replies_to));
            self.persisted = (events_to, replies_to);
            total.records += count;
            total
                .summaries
                .extend(compact_due_threads(engine, summarizer, threads));
            if !more {
                return Ok(total);
            }
        }
    }

    /// User messages after `from`.
    fn events(&self, from: i64, limit: usize) -> Result<Pass> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, envelope, accepted_ms FROM events WHERE seq > ?1 ORDER BY seq LIMIT CAST(?2 AS INTEGER)",
        )?;
        let rows = stmt.query_map([from, BATCH], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut to = from;
        let mut read = 0;
        let mut items = Vec::new();
        for row in rows {
            let (seq, envelope, accepted_ms) = row?;
            to = seq;
            read += 1;
            let Ok(event) = serde_json::from_str::<EnvelopeView>(&envelope) else {
                tracing::warn!(
                    seq,
                    "memory: an event's envelope does not parse; not ingested"
                );
                continue;
            };
            let Some(text) = conversational(&event.content.text, limit) else {
                continue;
            };
            let thread = conversation_key(&event.source, &event.user_id, &event.thread_id);
            items.push(Item {
                at_ms: accepted_ms,
                new: NewMemory::episodic(thread, event.user_id.as_ref(), text, event.timestamp),
            });
        }
        Ok(Pass {
            items,
            to,
            rows: read,
        })
    }

    /// Replies after `from` (not those answering a command).
    fn replies(&self, from: i64, limit: usize) -> Result<Pass> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.seq, r.source, r.user_id, r.thread_id, r.body, r.created_ms, e.envelope,
                    r.kind, e.outcome
               FROM replies r LEFT JOIN events e ON e.seq = r.event_seq
              WHERE r.seq > ?1 ORDER BY r.seq LIMIT CAST(?2 AS INTEGER)",
        )?;
        let rows = stmt.query_map([from, BATCH], |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ),
                r.get::<_, Option<String>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut to = from;
        let mut read = 0;
        let mut items = Vec::new();
        for row in rows {
            let ((seq, source, user, thread, body, created_ms), envelope, kind, outcome) = row?;
            to = seq;
            read += 1;
            let answers_command = envelope
                .as_deref()
                .and_then(|e| serde_json::from_str::<TextView>(e).ok())
                .is_some_and(|view| conversational(&view.content.text, limit).is_none());
            if answers_command || is_system_notice(&kind, outcome.as_deref()) {
                continue;
            }
            let Some(text) = conversational(&body, limit) else {
                continue;
            };
            let at = DateTime::<Utc>::from_timestamp_millis(created_ms).unwrap_or_else(Utc::now);
            items.push(Item {
                at_ms: created_ms,
                new: NewMemory::episodic(
                    conversation_key(&source, &user, &thread),
                    ASSISTANT,
                    text,
                    at,
                ),
            });
        }
        Ok(Pass {
            items,
            to,
            rows: read,
        })
    }
}

/// A thread a batch adds to: where it stood before, when its first new
/// turn happened, and how many turns the batch brings.
struct ThreadGain {
    thread: String,
    before: ThreadTail,
    first_new_at: DateTime<Utc>,
    added: usize,
}

/// The threads of a batch, read before it is added (one indexed query each).
fn threads_before(engine: &MemoryEngine, news: &[NewMemory]) -> Result<Vec<ThreadGain>> {
    let mut gains: std::collections::HashMap<&str, (DateTime<Utc>, usize)> = Default::default();
    for new in news {
        if let (Some(thread), Some(at)) = (new.thread_id.as_deref(), new.occurred_at) {
            let (first, added) = gains.entry(thread).or_insert((at, 0));
            *first = (*first).min(at);
            *added += 1;
        }
    }
    gains
        .into_iter()
        .map(|(thread, (first_new_at, added))| {
            Ok(ThreadGain {
                thread: thread.to_owned(),
                before: engine.thread_tail(thread)?,
                first_new_at,
                added,
            })
        })
        .collect()
}

/// Write the rolling summaries of the threads a batch made due; returns
/// the summaries written. A failure is logged and retried by the thread's
/// next due batch: the turns themselves are already stored.
fn compact_due_threads(
    engine: &mut MemoryEngine,
    summarizer: &dyn Summarizer,
    gains: Vec<ThreadGain>,
) -> Vec<(i64, Level)> {
    let mut written = Vec::new();
    for gain in gains {
        // A record refused by the engine still counts here: at most one
        // compaction early, never one missed.
        let records_after = gain.before.records + gain.added;
        if !compaction_due(gain.before, gain.first_new_at, records_after) {
            continue;
        }
        let thread = gain.thread;
        match engine.compact_thread(&thread, summarizer, Utc::now()) {
            Ok(report) => {
                tracing::debug!(%thread, ?report, "memory: thread compacted");
                written.extend(report.written);
            }
            Err(err) => tracing::warn!(%thread, %err, "memory: compaction failed"),
        }
    }
    written
}

/// A reply the daemon wrote about itself rather than an answer: a notice,
/// "no model is configured", an error or a refusal (the event's outcome
/// says which path answered). Remembering these as the assistant's turns
/// would fill memory with boilerplate that matches every later question.
fn is_system_notice(kind: &str, outcome: Option<&str>) -> bool {
    if kind == opticlaw_core::ResponseKind::Notice.as_str() {
        return true;
    }
    let Some(outcome) = outcome.and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
    else {
        return false;
    };
    let path = outcome["path"].as_str().unwrap_or_default();
    matches!(path, "needs_model" | "no_orchestrator")
        || !outcome["error"].is_null()
        || outcome["answer"]["needs_model"] == serde_json::Value::Bool(true)
}

/// Errors that belong to one record (not the store or the model).
fn refuses_record(err: &MemoryError) -> bool {
    matches!(
        err,
        MemoryError::Oversized { .. } | MemoryError::Invalid(_) | MemoryError::InvalidUtf8 { .. }
    )
}

fn engine_limit(engine: &MemoryEngine) -> usize {
    engine.config().max_record_bytes
}

/// The text worth remembering: not a `/command`, not empty, no NUL bytes,
/// cut at the engine's record limit (on a character boundary).
fn conversational(text: &str, limit: usize) -> Option<String> {
    let text = text.trim();
    if text.is_empty() || opticlaw_core::is_command(text) {
        return None;
    }
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].replace('\0', ""))
}

#[cfg(test)]
mod tests {
    use super::{
        EVENTS_CURSOR, EnvelopeView, Feed, MemoryEngine, TextView, UNRECORDED_LAG, conversational,
    };

    /// The feed's views read what the store writes: a whole envelope,
    /// escapes and platform metadata included.
    #[test]
    fn the_envelope_views_read_a_stored_envelope() {
        let mut event = opticlaw_core::EventEnvelope::local_text(
            "ana",
            "trip",
            "She said \"Lisbon\" \u{e9}t\u{e9}\nthen left",
        );
        event.metadata.insert("slack.ts".into(), "1.2".into());
        let stored = serde_json::to_string(&event).unwrap();
        let view: EnvelopeView = serde_json::from_str(&stored).unwrap();
        assert_eq!(view.content.text, event.content.text);
        assert_eq!(view.source, event.source);
        assert_eq!(view.user_id, "ana");
        assert_eq!(view.thread_id, "trip");
        assert_eq!(view.timestamp, event.timestamp);
        let text: TextView = serde_json::from_str(&stored).unwrap();
        assert_eq!(text.content.text, event.content.text);
    }

    #[test]
    fn commands_and_blank_messages_are_not_remembered() {
        assert_eq!(conversational("  /memory lisbon ", 100), None);
        assert_eq!(conversational("   ", 100), None);
        assert_eq!(
            conversational("I moved to Lisbon", 100).as_deref(),
            Some("I moved to Lisbon")
        );
    }

    #[test]
    fn notices_and_no_model_replies_are_not_remembered() {
        use super::is_system_notice;
        assert!(is_system_notice("notice", None));
        assert!(is_system_notice(
            "reply",
            Some(r#"{"rule":"none","path":"needs_model"}"#)
        ));
        assert!(is_system_notice(
            "reply",
            Some(r#"{"rule":"none","path":"model","answer":{"needs_model":true}}"#)
        ));
        assert!(is_system_notice(
            "reply",
            Some(r#"{"rule":"none","path":"model","error":"timeout"}"#)
        ));
        assert!(!is_system_notice(
            "reply",
            Some(r#"{"rule":"none","path":"model","answer":{"model":"m"}}"#)
        ));
        assert!(!is_system_notice("reply", None));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let text = "é".repeat(10); // 20 bytes
        assert_eq!(conversational(&text, 5).as_deref(), Some("éé"));
        assert_eq!(conversational("a\0b", 10).as_deref(), Some("ab"));
    }

    #[test]
    fn commands_move_the_stored_cursor_only_past_the_lag_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store_file = dir.path().join("opticlaw.db");
        let mut store =
            opticlaw_store::Store::open(&store_file, opticlaw_store::Synchronous::Normal).unwrap();
        let mut accept = |text: &str, n: usize| {
            let mut last = 0;
            for _ in 0..n {
                let event = opticlaw_core::EventEnvelope::local_text("ana", "trip", text);
                last = store.accept_event(&event).unwrap().seq;
            }
            last
        };
        // More than one batch of commands, then a message worth keeping.
        accept("/time", 600);
        let kept = accept("I moved to Lisbon", 1);
        let mut engine = MemoryEngine::open(dir.path().join("memory.db")).unwrap();
        let summarizer = opticlaw_memory::ExtractiveSummarizer;
        let mut feed = Feed::open(&store_file).unwrap();
        assert_eq!(feed.catch_up(&mut engine, &summarizer).unwrap().records, 1);
        assert_eq!(engine.cursor(EVENTS_CURSOR).unwrap(), kept);

        // A few commands: read, skipped, and not worth a write.
        let commands = accept("/time", 10);
        assert_eq!(feed.catch_up(&mut engine, &summarizer).unwrap().records, 0);
        assert_eq!(engine.cursor(EVENTS_CURSOR).unwrap(), kept);
        assert!(!feed.has_pending(&engine).unwrap(), "read again");
        // A restarted feed reads them again and still keeps nothing.
        let mut feed = Feed::open(&store_file).unwrap();
        assert!(feed.has_pending(&engine).unwrap());
        assert_eq!(feed.catch_up(&mut engine, &summarizer).unwrap().records, 0);
        assert!(commands > kept);

        // Past the bound the stored cursor catches up.
        let last = accept("/time", UNRECORDED_LAG as usize);
        assert_eq!(feed.catch_up(&mut engine, &summarizer).unwrap().records, 0);
        assert_eq!(engine.cursor(EVENTS_CURSOR).unwrap(), last);
    }
}
