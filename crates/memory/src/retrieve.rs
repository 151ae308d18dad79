//! Hybrid retrieval: full-text (BM25), vector and entity-graph candidates
//! fused by weighted reciprocal rank, then adjusted by salience, recency,
//! thread and time signals.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use opticlaw_core::MemoryType;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::record::StoredMemory;
use crate::text::{fts_or_query, query_terms};
use crate::timeparse::{TimeRange, parse_time_range};
use crate::vector::{VectorHit, VectorIndex};

/// Full-text rows scored per query term: a word common across a large
/// memory is scored on its newest rows only (its low IDF rarely decides the
/// top hits, and scoring every row of it dominated query time at a million
/// records). A conversation's memory stays far below it.
const FULLTEXT_ROWS_PER_TERM: i64 = 4_096;

/// Hints that narrow or steer a search (triage supplies them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalHints {
    /// Entity keys (`person:sam`) or bare names the query is about.
    #[serde(default)]
    pub entities: Vec<String>,
    /// Only records that happened in this range.
    #[serde(default)]
    pub time_range: Option<TimeRange>,
    /// Prefer records of this domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// Only these kinds (all when empty).
    #[serde(default)]
    pub kinds: Vec<MemoryType>,
}

/// A search request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Natural-language query; may name times ("last week", "in May").
    pub text: String,
    /// How many hits to return.
    pub limit: usize,
    /// The thread asking, if any: its records get a boost.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Reference time for relative expressions and recency; now if absent.
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    /// Hints from triage.
    #[serde(default)]
    pub hints: RetrievalHints,
    /// The query's embedding when the caller already has it (the same
    /// message is usually embedded once for ingestion); computed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Only records whose thread starts with this (a user's conversations);
    /// every record when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_prefix: Option<String>,
}

impl Query {
    /// A query for the `limit` best hits of `text`.
    pub fn new(text: impl Into<String>, limit: usize) -> Self {
        Self {
            text: text.into(),
            limit,
            ..Self::default()
        }
    }
}

/// Which candidate generators found a hit, and at what rank (0-based).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HitSources {
    /// Rank among full-text hits.
    pub fulltext: Option<usize>,
    /// Rank among vector hits.
    pub vector: Option<usize>,
    /// Rank among entity-graph hits.
    pub graph: Option<usize>,
}

/// One retrieved record with its fused score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The record.
    pub memory: StoredMemory,
    /// Fused score (higher is better).
    pub score: f32,
    /// Where it came from.
    pub sources: HitSources,
}

/// Tunable weights of the fusion. Defaults were chosen as round values on
/// the whole LoCoMo set (never per question): lexical evidence weighs twice
/// the semantic one (MiniLM alone is the weaker retriever there), a small
/// RRF constant keeps top ranks decisive, and the signals (neighbours,
/// speaker named in the query, time stated when the query asks "when",
/// time range named in the query) each add a fraction of a top hit's score.
#[derive(Debug, Clone, PartialEq)]
pub struct FusionWeights {
    /// RRF constant.
    pub k: f32,
    /// Weight of full-text ranks.
    pub fulltext: f32,
    /// Weight of vector ranks.
    pub vector: f32,
    /// Weight of graph ranks.
    pub graph: f32,
    /// Candidates taken from each generator.
    pub depth: usize,
    /// BM25 weight of the neighbouring-context column relative to content.
    pub context_column: f64,
    /// Weight of the full-text row holding a record's following turn
    /// (a short row, so BM25 scores it high for its words) relative to the
    /// record's own row.
    pub following_row: f64,
    /// Share of the better neighbour's (previous or next record of the
    /// same thread) fused score a record inherits: evidence clusters.
    pub neighbour: f32,
    /// Fuse min-max normalised scores instead of reciprocal ranks.
    pub by_score: bool,
    /// Weight of a second full-text pass expanded with words shared by the
    /// first pass's top hits (pseudo-relevance feedback); 0 disables it.
    pub feedback: f32,
    /// Boost, as a share of a top hit's score, for records inside a time
    /// range named in the query text.
    pub time_boost: f32,
    /// Boost for records spoken by a person the query names.
    pub speaker_boost: f32,
    /// Boost for records stating a time when the query asks "when".
    pub when_boost: f32,
}

impl Default for FusionWeights {
    fn default() -> Self {
        Self {
            k: 10.0,
            fulltext: 1.0,
            vector: 0.5,
            graph: 0.3,
            depth: 100,
            context_column: 0.5,
            following_row: 0.5,
            neighbour: 0.2,
            by_score: false,
            feedback: 0.0,
            time_boost: 0.3,
            speaker_boost: 0.3,
            when_boost: 0.3,
        }
    }
}

/// One term's full-text rows (`rowid`, BM25), newest first.
type TermRows = std::rc::Rc<[(i64, f64)]>;

/// Everything retrieval needs, borrowed from the engine.
pub(crate) struct Retriever<'a> {
    pub conn: &'a Connection,
    pub vectors: Option<&'a VectorIndex>,
    pub vector_candidates: std::cell::Cell<VectorCandidates>,
    pub weights: &'a FusionWeights,
    /// Each term's scored full-text rows, read once per search: the
    /// feedback pass scores the query's own terms again.
    pub term_rows: std::cell::RefCell<HashMap<String, TermRows>>,
    /// [`Retriever::records_at_most`], once read.
    pub records_at_most: std::cell::Cell<Option<i64>>,
}

/// The query's vector candidates: none, a vector to search with here, or
/// being found on another thread (embedding the query and searching the
/// index) while full-text and graph candidates are gathered on this one.
#[derive(Default)]
pub(crate) enum VectorCandidates {
    #[default]
    None,
    Search(Vec<f32>),
    Pending(std::sync::mpsc::Receiver<Result<Vec<VectorHit>>>),
}

/// Candidates each generator contributes for a query of `limit` hits.
pub(crate) fn candidate_depth(weights: &FusionWeights, limit: usize) -> usize {
    weights.depth.max(limit)
}

impl Retriever<'_> {
    /// The vector tier's `depth` best hits (seq, similarity), waiting for
    /// them if another thread is still finding them.
    fn vector_candidates(&self, depth: usize) -> Result<Vec<(i64, f32)>> {
        let hits = match (self.vector_candidates.take(), self.vectors) {
            (VectorCandidates::Search(v), Some(index)) => index.search(&v, depth)?,
            (VectorCandidates::Pending(rx), _) => rx.recv().map_err(|_| {
                crate::error::MemoryError::Embedder(
                    "the query's vector search thread stopped".into(),
                )
            })??,
            _ => Vec::new(),
        };
        Ok(hits.into_iter().map(|h| (h.seq, h.score)).collect())
    }
}

impl Retriever<'_> {
    pub(crate) fn search(&self, q: &Query) -> Result<Vec<Hit>> {
        let now = q.now.unwrap_or_else(Utc::now);
        let parsed = parse_time_range(&q.text, now);
        // A hinted range filters; a range read from the text only boosts
        // (people say "in May" about what they told in June).
        let time_range = q.hints.time_range;
        let soft_range = parsed.as_ref().map(|p| p.0);
        let time_words = parsed.map(|p| p.1).unwrap_or_default();
        let terms: Vec<String> = query_terms(&q.text)
            .into_iter()
            .filter(|t| !time_words.contains(t))
            .collect();
        let depth = candidate_depth(self.weights, q.limit);
        let query_words: Vec<String> = crate::text::words(&q.text);
        let asks_when = crate::timeparse::asks_when(&query_words);

        // Full text and graph first: the vector tier may still be at work
        // on the other thread.
        let fulltext_scored = self.fulltext(&terms, depth)?;
        let graph = self.graph(&q.text, &q.hints.entities, depth)?;
        let vector_scored = self.vector_candidates(depth)?;
        let fulltext: Vec<i64> = fulltext_scored.iter().map(|h| h.0).collect();
        let vector: Vec<i64> = vector_scored.iter().map(|h| h.0).collect();

        let w = self.weights;
        let mut fused: HashMap<i64, (f32, HitSources)> = HashMap::new();
        let mut add = |list: &[i64], weight: f32, set: fn(&mut HitSources, usize)| {
            for (rank, &seq) in list.iter().enumerate() {
                let e = fused.entry(seq).or_default();
                e.0 += weight / (w.k + rank as f32 + 1.0);
                set(&mut e.1, rank);
            }
        };
        add(&fulltext, w.fulltext, |s, r| s.fulltext = Some(r));
        add(&vector, w.vector, |s, r| s.vector = Some(r));
        add(&graph, w.graph, |s, r| s.graph = Some(r));
        if w.by_score {
            for (list, weight) in [(&fulltext_scored, w.fulltext), (&vector_scored, w.vector)] {
                let (Some(hi), Some(lo)) = (list.first().map(|h| h.1), list.last().map(|h| h.1))
                else {
                    continue;
                };
                let span = (hi - lo).max(1e-6);
                for &(seq, sc) in list.iter() {
                    if let Some(e) = fused.get_mut(&seq) {
                        e.0 += weight * (sc - lo) / span / (w.k + 1.0);
                    }
                }
            }
        }

        if w.feedback > 0.0 {
            let mut first: Vec<(i64, f32)> = fused.iter().map(|(s, (v, _))| (*s, *v)).collect();
            first.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<i64> = first.iter().take(5).map(|x| x.0).collect();
            let expanded = self.expand(&terms, &top)?;
            if expanded.len() > terms.len() {
                let second: Vec<i64> = self
                    .fulltext(&expanded, depth)?
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                for (rank, &seq) in second.iter().enumerate() {
                    fused.entry(seq).or_default().0 += w.feedback / (w.k + rank as f32 + 1.0);
                }
            }
        }
        if w.neighbour > 0.0 {
            let base: HashMap<i64, f32> = fused.iter().map(|(s, (v, _))| (*s, *v)).collect();
            for (seq, (v, _)) in fused.iter_mut() {
                let n = base
                    .get(&(seq - 1))
                    .copied()
                    .unwrap_or(0.0)
                    .max(base.get(&(seq + 1)).copied().unwrap_or(0.0));
                *v += w.neighbour * n;
            }
        }
        let seqs: Vec<i64> = fused.keys().copied().collect();
        let candidates = crate::store::rank_fields(self.conn, &seqs, asks_when)?;
        let top = (w.fulltext + w.vector) / (w.k + 1.0);
        let mut ranked: Vec<(f32, HitSources, crate::store::RankFields)> = candidates
            .into_iter()
            .filter(|m| m.expires_at.is_none_or(|e| e > now))
            .filter(|m| q.hints.kinds.is_empty() || q.hints.kinds.contains(&m.kind))
            .filter(|m| time_range.is_none_or(|r| r.contains(m.occurred_at)))
            .filter(|m| {
                q.thread_prefix.as_ref().is_none_or(|prefix| {
                    m.thread_id
                        .as_deref()
                        .is_some_and(|t| t.starts_with(prefix.as_str()))
                })
            })
            .filter_map(|m| {
                let (base, sources) = fused.remove(&m.seq)?;
                let mut score = base;
                // Signals, each a small fraction of a top-ranked hit's score.
                score += top * 0.05 * m.salience;
                if q.thread_id.is_some() && q.thread_id == m.thread_id {
                    score += top * 0.05;
                }
                if q.hints.domain.is_some() && q.hints.domain == m.domain {
                    score += top * 0.1;
                }
                if w.speaker_boost > 0.0
                    && m.speaker
                        .as_ref()
                        .is_some_and(|s| query_words.contains(&s.to_lowercase()))
                {
                    score += top * w.speaker_boost;
                }
                if asks_when && m.mentions_time {
                    score += top * w.when_boost;
                }
                if soft_range.is_some_and(|r| r.contains(m.occurred_at)) {
                    score += top * w.time_boost;
                }
                if m.pinned {
                    score += top * 0.05;
                }
                let age_days = (now - m.occurred_at).num_hours().max(0) as f32 / 24.0;
                score += top * 0.05 * (-age_days / 90.0).exp();
                Some((score, sources, m))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.2.seq.cmp(&a.2.seq)));
        ranked.truncate(q.limit);
        // Only the winners are read whole.
        let winners: Vec<i64> = ranked.iter().map(|r| r.2.seq).collect();
        let mut records: HashMap<i64, StoredMemory> = crate::store::get_many(self.conn, &winners)?
            .into_iter()
            .map(|m| (m.seq, m))
            .collect();
        Ok(ranked
            .into_iter()
            .filter_map(|(score, sources, m)| {
                Some(Hit {
                    memory: records.remove(&m.seq)?,
                    score,
                    sources,
                })
            })
            .collect())
    }

    /// The query terms plus up to five words found in at least two of the
    /// `top` records' content.
    fn expand(&self, terms: &[String], top: &[i64]) -> Result<Vec<String>> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for m in crate::store::get_many(self.conn, top)? {
            let mut seen = std::collections::HashSet::new();
            for t in query_terms(m.content()) {
                if t.len() > 3 && !terms.contains(&t) && seen.insert(t.clone()) {
                    *counts.entry(t).or_default() += 1;
                }
            }
        }
        let mut extra: Vec<(String, usize)> = counts.into_iter().filter(|(_, c)| *c >= 2).collect();
        extra.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut out = terms.to_vec();
        out.extend(extra.into_iter().take(5).map(|(t, _)| t));
        Ok(out)
    }

    /// Full-text hits with their BM25 score (higher is better).
    ///
    /// FTS5's BM25 of an OR query is the sum over its terms of each term's
    /// BM25 (a row lacking a term gets nothing for it), so each term is
    /// scored on its own and the sums are added up here. That lets a term
    /// matching more than [`FULLTEXT_ROWS_PER_TERM`] rows be scored on its
    /// newest rows only: FTS5 walks a term's rows in rowid order and stops
    /// at the limit, where one OR query scored every row of every term
    /// (each score reads the row's length) and was most of a query's time
    /// on a large memory.
    fn fulltext(&self, terms: &[String], depth: usize) -> Result<Vec<(i64, f32)>> {
        // A record has up to two rows (rowid 2*seq: its words and the turns
        // before; 2*seq+1: the turn after): its score is their sum.
        let mut totals: HashMap<i64, f64> = HashMap::new();
        for term in terms {
            for &(rowid, score) in self.term_rows(term)?.iter() {
                let weight = if rowid & 1 == 1 {
                    self.weights.following_row
                } else {
                    1.0
                };
                *totals.entry(rowid >> 1).or_default() += weight * score;
            }
        }
        let mut hits: Vec<(i64, f32)> = totals
            .into_iter()
            .map(|(seq, total)| (seq, total as f32))
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        hits.truncate(depth);
        Ok(hits)
    }

    /// One term's full-text rows with their BM25 score, newest first
    /// (cached for the rest of the search).
    fn term_rows(&self, term: &str) -> Result<TermRows> {
        if let Some(rows) = self.term_rows.borrow().get(term) {
            return Ok(rows.clone());
        }
        let rows: TermRows = match fts_or_query(&[term.to_owned()]) {
            None => std::rc::Rc::from([]),
            Some(expr) => match self.rows_without_bm25_weight(&expr)? {
                Some(unscored) => unscored,
                None => {
                    let mut stmt = self.conn.prepare_cached(
                        "SELECT rowid, -bm25(memory_fts, 1.0, ?2) FROM memory_fts
                          WHERE memory_fts MATCH ?1 ORDER BY rowid DESC LIMIT CAST(?3 AS INTEGER)",
                    )?;
                    stmt.query_map(
                        params![expr, self.weights.context_column, FULLTEXT_ROWS_PER_TERM],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)),
                    )?
                    .collect::<rusqlite::Result<_>>()?
                }
            },
        };
        self.term_rows
            .borrow_mut()
            .insert(term.to_owned(), rows.clone());
        Ok(rows)
    }

    /// A term's rows, each scored 0, when it is in at least half of the
    /// full-text rows: there FTS5's BM25 gives it the floor IDF of 1e-6
    /// (`log((N - n + 0.5) / (n + 0.5))` is not positive), so its scores
    /// carry no signal while scoring its many rows (a speaker's name in
    /// every turn) reads each row's length. The rows stay candidates.
    /// `N` is taken as two rows per record, never less than the true count,
    /// so only terms FTS5 floors are left unscored. Checked on memories
    /// small enough for the term's rows to be read in one bounded query;
    /// `None` means "score it".
    fn rows_without_bm25_weight(&self, expr: &str) -> Result<Option<TermRows>> {
        let rows_at_most = 2 * self.records_at_most()?;
        if rows_at_most > 2 * FULLTEXT_ROWS_PER_TERM {
            return Ok(None);
        }
        let rowids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT rowid FROM memory_fts WHERE memory_fts MATCH ?1
                  ORDER BY rowid DESC LIMIT CAST(?2 AS INTEGER)",
            )?
            .query_map(params![expr, FULLTEXT_ROWS_PER_TERM], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let floored = 2 * rowids.len() as i64 >= rows_at_most;
        Ok(floored.then(|| rowids.into_iter().map(|rowid| (rowid, 0.0)).collect()))
    }

    /// An upper bound on the records in memory (the highest seq), read once
    /// per search.
    fn records_at_most(&self) -> Result<i64> {
        if let Some(n) = self.records_at_most.get() {
            return Ok(n);
        }
        // MAX(seq) is an O(log n) stand-in for the record count.
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM memory_records")?
            .query_row([], |r| r.get(0))?;
        self.records_at_most.set(Some(n));
        Ok(n)
    }

    fn graph(&self, text: &str, hinted: &[String], depth: usize) -> Result<Vec<i64>> {
        let mut keys: Vec<String> = hinted
            .iter()
            .map(|k| crate::text::normalise_entity_key(k))
            .collect();
        let total = self.records_at_most()? as u64;
        // Only entities that single out a small part of memory carry signal.
        let cap = (total as f64 * 0.05).max(3.0) as u64;
        let named = crate::graph::entities_named(self.conn, &query_terms(text), cap)?;
        for (key, n) in named {
            if n > 0 && n < cap && !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(crate::graph::records_for_entities(self.conn, &keys, depth)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }
}
