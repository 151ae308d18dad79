//! Compression: rolling per-thread summaries at three resolutions, and
//! salience decay with forgetting (never of pinned records).
//!
//! * micro: every [`MICRO_WINDOW`] consecutive records of a thread;
//! * meso: a session (records separated by less than [`SESSION_GAP_HOURS`]);
//! * macro: the whole thread, rebuilt on each compaction.
//!
//! Summaries are extractive by default ([`ExtractiveSummarizer`]); an
//! abstractive [`Summarizer`] (the model router) can be plugged in.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::engine::MemoryEngine;
use crate::error::Result;
use crate::record::{StoredMemory, from_ms, to_ms};
use crate::text::estimate_tokens;

/// Records per micro summary.
pub const MICRO_WINDOW: usize = 8;
/// A gap longer than this starts a new session.
pub const SESSION_GAP_HOURS: i64 = 6;
/// Records a thread gains between two compactions while its session goes on.
pub const COMPACT_EVERY_RECORDS: usize = 8 * MICRO_WINDOW;

/// Hours between two forgetting passes ([`MemoryEngine::forget_if_due`]).
pub const FORGET_EVERY_HOURS: i64 = 24;
/// Where the last forgetting pass's time is kept (a cursor, in ms).
const FORGET_CURSOR: &str = "maintenance.forget";

/// Full-text index pages one compaction may write while merging segments.
const FTS_MERGE_PAGES_PER_COMPACTION: i64 = 256;

/// Where a thread stands: how many records it has and when the last was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadTail {
    /// Records in the thread.
    pub records: usize,
    /// When its latest record happened.
    pub last_at: Option<DateTime<Utc>>,
}

/// Whether a thread that stood at `before` and now holds `records_after`
/// records (the first new one at `first_new_at`) is due a compaction: the new turn
/// came more than [`SESSION_GAP_HOURS`] after the last, so the session before
/// it has closed (its meso summary can be written), or the thread crossed a
/// multiple of [`COMPACT_EVERY_RECORDS`] (new micro windows, macro refreshed).
/// Driven by arriving turns only: no timer is needed.
pub fn compaction_due(
    before: ThreadTail,
    first_new_at: DateTime<Utc>,
    records_after: usize,
) -> bool {
    let session_closed = before
        .last_at
        .is_some_and(|last| first_new_at - last > Duration::hours(SESSION_GAP_HOURS));
    let crossed = records_after / COMPACT_EVERY_RECORDS > before.records / COMPACT_EVERY_RECORDS;
    session_closed || crossed
}

/// Summary resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A few turns.
    Micro,
    /// One session.
    Meso,
    /// The whole relationship.
    Macro,
}

impl Level {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Micro => "micro",
            Level::Meso => "meso",
            Level::Macro => "macro",
        }
    }

    fn parse(s: &str) -> Level {
        match s {
            "micro" => Level::Micro,
            "meso" => Level::Meso,
            _ => Level::Macro,
        }
    }

    /// Token budget of one summary at this level.
    pub fn budget_tokens(self) -> usize {
        match self {
            Level::Micro => 80,
            Level::Meso => 200,
            Level::Macro => 400,
        }
    }
}

/// Turns records into a summary of at most `budget_tokens`.
pub trait Summarizer {
    /// `"extractive"`, or the model used.
    fn method(&self) -> &str;
    /// Summarise `records` (time-ordered) at `level`.
    fn summarize(
        &self,
        level: Level,
        records: &[StoredMemory],
        budget_tokens: usize,
    ) -> Result<String>;
    /// The summary and the method that wrote it, for summarizers that fall
    /// back to another method on some calls (a model that is refused or
    /// fails falls back to extraction).
    fn summarize_with_method(
        &self,
        level: Level,
        records: &[StoredMemory],
        budget_tokens: usize,
    ) -> Result<(String, String)> {
        let text = self.summarize(level, records, budget_tokens)?;
        Ok((text, self.method().to_owned()))
    }
}

/// Picks the most salient, most central sentences, keeps them in time order.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExtractiveSummarizer;

impl Summarizer for ExtractiveSummarizer {
    fn method(&self) -> &str {
        "extractive"
    }

    fn summarize(
        &self,
        _level: Level,
        records: &[StoredMemory],
        budget_tokens: usize,
    ) -> Result<String> {
        // Centrality: how many content words a record shares with the rest.
        let mut df: HashMap<String, usize> = HashMap::new();
        let bags: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                let mut w = crate::text::query_terms(&r.record.content);
                w.retain(|x| x.len() > 2);
                w
            })
            .collect();
        for b in &bags {
            for w in b {
                *df.entry(w.clone()).or_default() += 1;
            }
        }
        let mut scored: Vec<(usize, f32)> = records
            .iter()
            .zip(&bags)
            .enumerate()
            .map(|(i, (r, b))| {
                let central = b.iter().map(|w| (df[w] as f32 - 1.0).min(3.0)).sum::<f32>()
                    / (b.len() as f32 + 4.0);
                (
                    i,
                    r.record.salience + 0.3 * central + if r.record.pinned { 1.0 } else { 0.0 },
                )
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut chosen = Vec::new();
        let mut used = 0;
        for (i, _) in scored {
            let line = records[i].render();
            let t = estimate_tokens(&line);
            if used + t > budget_tokens {
                continue;
            }
            used += t;
            chosen.push(i);
        }
        chosen.sort_unstable();
        Ok(chosen
            .into_iter()
            .map(|i| records[i].render())
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// A stored summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Row id.
    pub summary_id: i64,
    /// Thread summarised.
    pub thread_id: String,
    /// Resolution.
    pub level: Level,
    /// First record's time.
    pub start_at: DateTime<Utc>,
    /// Last record's time.
    pub end_at: DateTime<Utc>,
    /// The summary text.
    pub content: String,
    /// Record seqs it was built from.
    pub sources: Vec<i64>,
    /// Estimated tokens of those records (the summary's compression base).
    pub source_tokens: usize,
}

/// What a compaction wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionReport {
    /// New micro summaries.
    pub micro: usize,
    /// New meso summaries.
    pub meso: usize,
    /// Macro summaries (re)built.
    pub macro_: usize,
    /// Every summary written, by id, in order.
    pub written: Vec<(i64, Level)>,
}

fn insert_summary(
    conn: &Connection,
    thread: &str,
    level: Level,
    records: &[StoredMemory],
    content: &str,
    method: &str,
) -> Result<Option<i64>> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(None);
    };
    conn.execute(
        "INSERT INTO memory_summaries (thread_id, level, start_at, end_at, content, method, created_at, source_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            thread,
            level.as_str(),
            to_ms(first.occurred_at),
            to_ms(last.occurred_at),
            content,
            method,
            to_ms(Utc::now()),
            records.iter().map(|r| estimate_tokens(&r.render())).sum::<usize>() as i64
        ],
    )?;
    let id = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO memory_summary_sources (summary_id, seq) VALUES (?1, ?2)",
    )?;
    for r in records {
        stmt.execute(params![id, r.seq])?;
    }
    Ok(Some(id))
}

/// Sessions of time-ordered records: split where the gap exceeds
/// [`SESSION_GAP_HOURS`].
pub fn sessions(records: &[StoredMemory]) -> Vec<&[StoredMemory]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..records.len() {
        if records[i].occurred_at - records[i - 1].occurred_at > Duration::hours(SESSION_GAP_HOURS)
        {
            out.push(&records[start..i]);
            start = i;
        }
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// Summaries of a thread (all levels when `level` is `None`), oldest first.
pub fn summaries(conn: &Connection, thread: &str, level: Option<Level>) -> Result<Vec<Summary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT summary_id, thread_id, level, start_at, end_at, content, source_tokens FROM memory_summaries
          WHERE thread_id = ?1 AND (?2 IS NULL OR level = ?2) ORDER BY start_at, summary_id",
    )?;
    let rows = stmt.query_map(params![thread, level.map(Level::as_str)], |r| {
        Ok(Summary {
            summary_id: r.get(0)?,
            thread_id: r.get(1)?,
            level: Level::parse(&r.get::<_, String>(2)?),
            start_at: from_ms(r.get(3)?),
            end_at: from_ms(r.get(4)?),
            content: r.get(5)?,
            sources: Vec::new(),
            source_tokens: r.get::<_, i64>(6)? as usize,
        })
    })?;
    let mut out: Vec<Summary> = rows.collect::<rusqlite::Result<_>>()?;
    for s in &mut out {
        s.sources = summary_seqs(conn, s.summary_id)?;
    }
    Ok(out)
}

/// The record seqs summary `id` was built from, in seq order.
fn summary_seqs(conn: &Connection, id: i64) -> Result<Vec<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT seq FROM memory_summary_sources WHERE summary_id = ?1 ORDER BY seq",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// How decay-based forgetting works.
#[derive(Debug, Clone, PartialEq)]
pub struct DecayPolicy {
    /// Days after which an untouched record's salience halves.
    pub half_life_days: f32,
    /// Records whose decayed salience falls below this are forgotten.
    pub forget_below: f32,
    /// Only records already covered by a summary are forgotten (their gist
    /// survives in it).
    pub require_summary: bool,
}

impl Default for DecayPolicy {
    fn default() -> Self {
        Self {
            half_life_days: 30.0,
            forget_below: 0.05,
            require_summary: true,
        }
    }
}

/// The salience of a record after decay: halves every `half_life_days`
/// since it last mattered (occurred or was retrieved), lifted by use.
pub fn decayed_salience(
    salience: f32,
    days_idle: f32,
    access_count: u32,
    half_life_days: f32,
) -> f32 {
    let use_boost = 1.0 + (access_count as f32).ln_1p() * 0.5;
    (salience * use_boost * 0.5f32.powf(days_idle.max(0.0) / half_life_days)).min(1.0)
}

impl MemoryEngine {
    /// Write rolling summaries for `thread`: new complete micro windows, new
    /// closed sessions (meso), and the macro summary rebuilt. One transaction.
    pub fn compact_thread(
        &mut self,
        thread: &str,
        summarizer: &dyn Summarizer,
        now: DateTime<Utc>,
    ) -> Result<CompactionReport> {
        let records = crate::store::thread_records(&self.conn, thread, None, None)?;
        let existing = summaries(&self.conn, thread, None)?;
        let covered = |level: Level, first: &StoredMemory| {
            existing
                .iter()
                .any(|s| s.level == level && s.sources.first() == Some(&first.seq))
        };
        let mut report = CompactionReport::default();
        let tx = self.conn.unchecked_transaction()?;
        for window in records
            .chunks(MICRO_WINDOW)
            .filter(|w| w.len() == MICRO_WINDOW)
        {
            if !covered(Level::Micro, &window[0]) {
                let (text, method) = summarizer.summarize_with_method(
                    Level::Micro,
                    window,
                    Level::Micro.budget_tokens(),
                )?;
                let id = insert_summary(&tx, thread, Level::Micro, window, &text, &method)?;
                report.written.extend(id.map(|id| (id, Level::Micro)));
                report.micro += 1;
            }
        }
        let sess = sessions(&records);
        for (i, s) in sess.iter().enumerate() {
            let closed = i + 1 < sess.len()
                || now - s[s.len() - 1].occurred_at > Duration::hours(SESSION_GAP_HOURS);
            if closed && !covered(Level::Meso, &s[0]) {
                let (text, method) = summarizer.summarize_with_method(
                    Level::Meso,
                    s,
                    Level::Meso.budget_tokens(),
                )?;
                let id = insert_summary(&tx, thread, Level::Meso, s, &text, &method)?;
                report.written.extend(id.map(|id| (id, Level::Meso)));
                report.meso += 1;
            }
        }
        if !records.is_empty() {
            tx.execute(
                "DELETE FROM memory_summary_sources WHERE summary_id IN
                   (SELECT summary_id FROM memory_summaries WHERE thread_id = ?1 AND level = 'macro')",
                [thread],
            )?;
            tx.execute(
                "DELETE FROM memory_summaries WHERE thread_id = ?1 AND level = 'macro'",
                [thread],
            )?;
            let (text, method) = summarizer.summarize_with_method(
                Level::Macro,
                &records,
                Level::Macro.budget_tokens(),
            )?;
            let id = insert_summary(&tx, thread, Level::Macro, &records, &text, &method)?;
            report.written.extend(id.map(|id| (id, Level::Macro)));
            report.macro_ = 1;
        }
        tx.commit()?;
        self.merge_full_text_segments()?;
        Ok(report)
    }

    /// A bounded step of FTS5's incremental merge. Each ingestion batch
    /// leaves a small full-text segment, and every query opens one iterator
    /// per segment and term, so segments left to pile up slow every search.
    /// FTS5's own automerge waits for several segments on one level; the
    /// negative page count here also merges below that threshold, and the
    /// bound keeps a compaction's write small however large the index is
    /// (<https://sqlite.org/fts5.html#the_merge_command>).
    fn merge_full_text_segments(&self) -> Result<()> {
        self.conn.execute(
            "INSERT INTO memory_fts (memory_fts, rank) VALUES ('merge', ?1)",
            [-FTS_MERGE_PAGES_PER_COMPACTION],
        )?;
        Ok(())
    }

    /// How many records `thread` has and when its latest happened.
    pub fn thread_tail(&self, thread: &str) -> Result<ThreadTail> {
        let (records, last): (i64, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), MAX(occurred_at) FROM memory_records WHERE thread_id = ?1",
            )?
            .query_row([thread], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(ThreadTail {
            records: records as usize,
            last_at: last.map(from_ms),
        })
    }

    /// The records summary `id` was built from, time-ordered (`None` when
    /// the summary is gone: rebuilt, or forgotten with a source).
    pub fn summary_sources(&self, id: i64) -> Result<Option<Vec<StoredMemory>>> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM memory_summaries WHERE summary_id = ?1")?
            .exists([id])?;
        if !exists {
            return Ok(None);
        }
        let seqs = summary_seqs(&self.conn, id)?;
        let mut records = crate::store::get_many(&self.conn, &seqs)?;
        records.sort_by_key(|r| (r.occurred_at, r.seq));
        Ok(Some(records))
    }

    /// Replace summary `id`'s text (an abstractive rewrite of what was
    /// written first); false when the summary is gone.
    pub fn rewrite_summary(&mut self, id: i64, content: &str, method: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE memory_summaries SET content = ?2, method = ?3 WHERE summary_id = ?1",
            params![id, content, method],
        )? > 0)
    }

    /// Summaries of a thread.
    pub fn summaries(&self, thread: &str, level: Option<Level>) -> Result<Vec<Summary>> {
        summaries(&self.conn, thread, level)
    }

    /// Purge expired records and forget decayed ones ([`Self::decay_and_forget`]),
    /// unless a pass ran less than [`FORGET_EVERY_HOURS`] before `now` (its
    /// time is kept in the memory file, so restarts do not repeat it).
    /// Meant to be called when work arrives: it needs no timer. Returns
    /// (expired, decayed) records forgotten, or `None` when not due.
    pub fn forget_if_due(
        &mut self,
        policy: &DecayPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<(usize, usize)>> {
        let last = self.cursor(FORGET_CURSOR)?;
        let now_ms = to_ms(now);
        if last != 0 && now_ms - last < Duration::hours(FORGET_EVERY_HOURS).num_milliseconds() {
            return Ok(None);
        }
        let expired = self.purge_expired(now)?;
        let decayed = self.decay_and_forget(policy, now)?;
        crate::store::set_cursor(&self.conn, FORGET_CURSOR, now_ms)?;
        Ok(Some((expired, decayed)))
    }

    /// Forget records whose decayed salience fell below the policy's
    /// threshold. Pinned records are never forgotten. Returns how many went.
    pub fn decay_and_forget(&mut self, policy: &DecayPolicy, now: DateTime<Utc>) -> Result<usize> {
        let victims: Vec<i64> = {
            let mut stmt = self.conn.prepare(
                "SELECT seq, salience, COALESCE(last_access_at, occurred_at), access_count,
                        EXISTS (SELECT 1 FROM memory_summary_sources s WHERE s.seq = r.seq)
                   FROM memory_records r WHERE pinned = 0",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(1)? as f32,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?;
            let mut v = Vec::new();
            for row in rows {
                let (seq, sal, last, count, summarised) = row?;
                let idle = (now - from_ms(last)).num_minutes() as f32 / 1440.0;
                let s = decayed_salience(sal, idle, count as u32, policy.half_life_days);
                if s < policy.forget_below && (summarised || !policy.require_summary) {
                    v.push(seq);
                }
            }
            v
        };
        let tx = self.conn.unchecked_transaction()?;
        for &s in &victims {
            crate::store::forget_seq_keep_summaries(&tx, s)?;
        }
        tx.commit()?;
        for &s in &victims {
            self.drop_from_memory(s);
        }
        Ok(victims.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::hours(hours)
    }

    fn tail(records: usize, last_hours: Option<i64>) -> ThreadTail {
        ThreadTail {
            records,
            last_at: last_hours.map(at),
        }
    }

    #[test]
    fn a_turn_after_the_session_gap_closes_the_session_before_it() {
        let gap = SESSION_GAP_HOURS;
        assert!(compaction_due(tail(3, Some(0)), at(gap + 1), 4));
        assert!(!compaction_due(tail(3, Some(0)), at(gap), 4));
        // A thread's first turn closes nothing.
        assert!(!compaction_due(tail(0, None), at(100), 1));
    }

    #[test]
    fn a_long_session_is_compacted_each_time_it_crosses_the_record_step() {
        let n = COMPACT_EVERY_RECORDS;
        assert!(!compaction_due(tail(n - 3, Some(0)), at(0), n - 1));
        assert!(compaction_due(tail(n - 1, Some(0)), at(0), n));
        assert!(!compaction_due(tail(n, Some(0)), at(0), n + 1));
        // A batch that jumps past a step still counts.
        assert!(compaction_due(tail(2 * n - 5, Some(0)), at(0), 2 * n + 7));
    }
}
