//! The LoCoMo retrieval benchmark.
//!
//! Every turn of a conversation goes through [`MemoryEngine::add_batch`] as
//! an episodic record dated with its session's time; every question with
//! evidence (categories 1-4) goes through [`MemoryEngine::search`]. Recall@k
//! is the fraction of a question's evidence turns among the top k, averaged
//! over questions. Only `speaker_a/b`, `session_N`, `session_N_date_time` and
//! `qa` are read: never the dataset's summaries, observations or events.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;

use crate::budget::ContextRequest;
use crate::embed::Embedder;
use crate::engine::{EngineConfig, MemoryEngine};
use crate::error::{MemoryError, Result};
use crate::record::NewMemory;
use crate::retrieve::Query;

const KS: [usize; 4] = [1, 5, 10, 20];

/// Recall of one question category.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CategoryRecall {
    /// Questions scored.
    pub questions: usize,
    /// Mean recall at 1, 5, 10, 20.
    pub recall: [f64; 4],
}

/// What [`locomo`] measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LocomoReport {
    /// Conversations run.
    pub conversations: usize,
    /// Turns ingested.
    pub turns: usize,
    /// Turns ingested per second (embedding included).
    pub ingest_per_sec: f64,
    /// Recall by category 1-4 (multi-hop, temporal, open-domain, single-hop).
    pub by_category: [CategoryRecall; 4],
    /// Recall over all questions.
    pub overall: CategoryRecall,
    /// Median query latency, ms.
    pub query_p50_ms: f64,
    /// 95th percentile query latency, ms (embedding the query included).
    pub query_p95_ms: f64,
    /// 95th percentile of embedding the query alone, ms (0 without a model).
    pub embed_p95_ms: f64,
    /// Median of the embedding alone, ms.
    pub embed_p50_ms: f64,
    /// 95th percentile of retrieval given the query vector, ms.
    pub retrieval_p95_ms: f64,
    /// Median of retrieval with the vector given, ms.
    pub retrieval_p50_ms: f64,
    /// Mean tokens of the context the budgeter returned for a 2,000-token budget.
    pub context_tokens_mean: f64,
    /// Largest such context.
    pub context_tokens_max: usize,
    /// The embedding model used, or why none.
    pub embedder: String,
}

const CATEGORY_NAMES: [&str; 4] = ["multi-hop", "temporal", "open-domain", "single-hop"];

impl fmt::Display for LocomoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "embedder: {}", self.embedder)?;
        writeln!(
            f,
            "ingest: {} turns of {} conversations, {:.0} turns/s",
            self.turns, self.conversations, self.ingest_per_sec
        )?;
        for (i, c) in self.by_category.iter().enumerate() {
            writeln!(
                f,
                "category {} {:<11} questions={:<4} recall@1={:.3} recall@5={:.3} recall@10={:.3} recall@20={:.3}",
                i + 1,
                CATEGORY_NAMES[i],
                c.questions,
                c.recall[0],
                c.recall[1],
                c.recall[2],
                c.recall[3]
            )?;
        }
        writeln!(
            f,
            "query_p50_ms={:.2} query_p95_ms={:.2} (of which: embed_p50_ms={:.2} embed_p95_ms={:.2}, retrieval_p50_ms={:.2} retrieval_p95_ms={:.2} with the vector given)",
            self.query_p50_ms,
            self.query_p95_ms,
            self.embed_p50_ms,
            self.embed_p95_ms,
            self.retrieval_p50_ms,
            self.retrieval_p95_ms
        )?;
        writeln!(
            f,
            "context_tokens_mean={:.0} context_tokens_max={} (budget 2000)",
            self.context_tokens_mean, self.context_tokens_max
        )?;
        write!(
            f,
            "questions={} recall@1={:.3} recall@5={:.3} recall@10={:.3} recall@20={:.3} query_p95_ms={:.2}",
            self.overall.questions,
            self.overall.recall[0],
            self.overall.recall[1],
            self.overall.recall[2],
            self.overall.recall[3],
            self.query_p95_ms
        )
    }
}

fn bad(path: &Path, message: impl Into<String>) -> MemoryError {
    MemoryError::BenchInput {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Parse LoCoMo's `1:56 pm on 8 May, 2023`.
fn parse_session_time(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s.trim(), "%I:%M %p on %d %B, %Y")
        .ok()
        .map(|t| t.and_utc())
}

struct Turn {
    dia_id: String,
    new: NewMemory,
}

/// A conversation as read: sessions of turns, questions, last turn's time.
type Conversation = (Vec<Vec<Turn>>, Vec<Question>, DateTime<Utc>);

struct Question {
    text: String,
    category: usize,
    evidence: Vec<String>,
}

fn read_conversation(path: &Path, thread: &str) -> Result<Conversation> {
    let text = std::fs::read_to_string(path)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
    let mut sessions = Vec::new();
    let mut last = DateTime::<Utc>::MIN_UTC;
    for n in 1.. {
        let Some(turns) = v.get(format!("session_{n}")).and_then(Value::as_array) else {
            break;
        };
        let date = v
            .get(format!("session_{n}_date_time"))
            .and_then(Value::as_str)
            .and_then(parse_session_time)
            .ok_or_else(|| bad(path, format!("session_{n}_date_time missing or unparsable")))?;
        let mut out = Vec::with_capacity(turns.len());
        for (i, t) in turns.iter().enumerate() {
            let (Some(speaker), Some(dia_id), Some(body)) = (
                t["speaker"].as_str(),
                t["dia_id"].as_str(),
                t["text"].as_str(),
            ) else {
                return Err(bad(
                    path,
                    format!("session_{n} turn {i} lacks speaker, dia_id or text"),
                ));
            };
            // A shared photo is part of the turn as the assistant saw it.
            let content = match t.get("blip_caption").and_then(Value::as_str) {
                Some(c) => format!("{body} [shares a photo: {c}]"),
                None => body.to_string(),
            };
            let at = date + Duration::seconds(i as i64 * 30);
            last = last.max(at);
            out.push(Turn {
                dia_id: dia_id.to_string(),
                new: NewMemory::episodic(thread, speaker, content, at),
            });
        }
        sessions.push(out);
    }
    let mut questions = Vec::new();
    for q in v["qa"].as_array().ok_or_else(|| bad(path, "no qa array"))? {
        let category = q["category"].as_u64().unwrap_or(0) as usize;
        let evidence: Vec<String> = q["evidence"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .flat_map(|e| e.split([';', ',', ' ']))
            .map(str::trim)
            .filter(|e| e.starts_with('D') && e.contains(':'))
            .map(str::to_string)
            .collect();
        if (1..=4).contains(&category) && !evidence.is_empty() {
            if let Some(text) = q["question"].as_str() {
                questions.push(Question {
                    text: text.to_string(),
                    category,
                    evidence,
                });
            }
        }
    }
    Ok((sessions, questions, last))
}

/// Run the LoCoMo benchmark on `files` with the local embedder when one is
/// available (see [`crate::embed::local_embedder`]), full-text and graph only
/// otherwise.
pub fn locomo(files: &[PathBuf]) -> Result<LocomoReport> {
    let make = || crate::embed::local_embedder();
    locomo_with(files, &EngineConfig::default(), &make)
}

/// [`locomo`] with an engine config and an embedder factory (called once per
/// conversation; an `Err` runs without vectors and is reported).
pub fn locomo_with(
    files: &[PathBuf],
    config: &EngineConfig,
    embedder: &dyn Fn() -> std::result::Result<Box<dyn Embedder>, String>,
) -> Result<LocomoReport> {
    let mut report = LocomoReport::default();
    let mut sums = [[0.0f64; 4]; 4];
    let mut latencies = Vec::new();
    let mut embed_lat = Vec::new();
    let mut retrieval_lat = Vec::new();
    let mut tokens = Vec::new();
    let mut ingest_secs = 0.0;
    for path in files {
        let thread = format!(
            "locomo-{}",
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("conversation")
        );
        let (sessions, questions, last) = read_conversation(path, &thread)?;
        let mut engine = MemoryEngine::open_in_memory(config.clone())?;
        match embedder() {
            Ok(e) => {
                report.embedder = e.model_id().to_string();
                engine.set_embedder(e)?;
            }
            Err(why) => report.embedder = format!("none ({why})"),
        }
        let mut dia_of_seq: HashMap<i64, String> = HashMap::new();
        let started = Instant::now();
        for session in sessions {
            let ids: Vec<String> = session.iter().map(|t| t.dia_id.clone()).collect();
            let before = engine.thread_tail(&thread)?;
            let first_at = session.iter().filter_map(|t| t.new.occurred_at).min();
            let stored = engine.add_batch(session.into_iter().map(|t| t.new).collect())?;
            report.turns += stored.len();
            for (m, id) in stored.iter().zip(ids) {
                dia_of_seq.insert(m.seq, id);
            }
            // Rolling summaries when the daemon would write them: a session
            // closed by this one's first turn, or a record step crossed.
            let after = engine.thread_tail(&thread)?;
            let due = |at| crate::compress::compaction_due(before, at, after.records);
            if first_at.is_some_and(due) {
                let now = after.last_at.unwrap_or(last);
                engine.compact_thread(&thread, &crate::compress::ExtractiveSummarizer, now)?;
            }
        }
        // The last session closes when the user comes back later.
        engine.compact_thread(
            &thread,
            &crate::compress::ExtractiveSummarizer,
            last + Duration::days(1),
        )?;
        ingest_secs += started.elapsed().as_secs_f64();
        let now = last + Duration::days(1);
        for q in &questions {
            let query = Query {
                text: q.text.clone(),
                limit: 20,
                thread_id: Some(thread.clone()),
                now: Some(now),
                ..Query::default()
            };
            // The full path once (embedding included), then the two parts
            // separately, the cache emptied so it does not help.
            engine.clear_query_cache();
            let t0 = Instant::now();
            let hits = engine.search(&query)?;
            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            engine.clear_query_cache();
            let t1 = Instant::now();
            let vector = engine.embed_query(&q.text)?;
            embed_lat.push(t1.elapsed().as_secs_f64() * 1000.0);
            let t2 = Instant::now();
            engine.search(&Query {
                vector,
                ..query.clone()
            })?;
            retrieval_lat.push(t2.elapsed().as_secs_f64() * 1000.0);
            let ranked: Vec<&str> = hits
                .iter()
                .filter_map(|h| dia_of_seq.get(&h.memory.seq))
                .map(String::as_str)
                .collect();
            let c = q.category - 1;
            for (ki, &k) in KS.iter().enumerate() {
                let found = q
                    .evidence
                    .iter()
                    .filter(|e| ranked.iter().take(k).any(|r| r == e))
                    .count();
                sums[c][ki] += found as f64 / q.evidence.len() as f64;
            }
            report.by_category[c].questions += 1;
            let ctx = engine.build_context(&ContextRequest {
                now: Some(now),
                ..ContextRequest::new(&q.text, 2_000)
            })?;
            tokens.push(ctx.tokens);
        }
        report.conversations += 1;
    }
    for (cat, sum) in report.by_category.iter_mut().zip(&sums) {
        let n = cat.questions.max(1) as f64;
        cat.recall = sum.map(|s| s / n);
    }
    report.overall.questions = report.by_category.iter().map(|c| c.questions).sum();
    let n = report.overall.questions.max(1) as f64;
    report.overall.recall = std::array::from_fn(|k| sums.iter().map(|s| s[k]).sum::<f64>() / n);
    report.ingest_per_sec = report.turns as f64 / ingest_secs.max(1e-9);
    latencies.sort_by(f64::total_cmp);
    report.query_p50_ms = super::percentile(&latencies, 50.0);
    report.query_p95_ms = super::percentile(&latencies, 95.0);
    embed_lat.sort_by(f64::total_cmp);
    retrieval_lat.sort_by(f64::total_cmp);
    report.embed_p95_ms = super::percentile(&embed_lat, 95.0);
    report.retrieval_p95_ms = super::percentile(&retrieval_lat, 95.0);
    report.embed_p50_ms = super::percentile(&embed_lat, 50.0);
    report.retrieval_p50_ms = super::percentile(&retrieval_lat, 50.0);
    report.context_tokens_mean = tokens.iter().sum::<usize>() as f64 / tokens.len().max(1) as f64;
    report.context_tokens_max = tokens.iter().copied().max().unwrap_or(0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_times_parse_in_locomo_format() {
        let t = parse_session_time("1:56 pm on 8 May, 2023").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-05-08T13:56:00+00:00");
        assert!(parse_session_time("10:37 am on 27 June, 2023").is_some());
    }
}
