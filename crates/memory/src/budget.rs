//! The context budgeter: given a query and a token budget, choose the
//! smallest set of memory slices (summaries first, raw records where
//! needed) whose estimated chance of holding the answer reaches a target.
//!
//! Each retrieved record gets a relevance probability from its fused score
//! relative to the best hit. A summary that quotes a record verbatim carries
//! that record's probability (extractive summaries do); a summary that only
//! covers it carries half of it times the summary's compression ratio. Confidence of a set is `1 - Π(1 - p)` over the
//! records it carries. Slices are added greedily, largest confidence gain
//! first (summaries win near-ties), until the target or the budget is
//! reached; a slice that does not fit the remaining budget is skipped.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::compress::Level;
use crate::engine::MemoryEngine;
use crate::error::Result;
use crate::retrieve::{Query, RetrievalHints};
use crate::text::estimate_tokens;

/// What the caller wants a context for.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRequest {
    /// The query the context should answer.
    pub query: String,
    /// Most tokens the context may take.
    pub budget_tokens: usize,
    /// Stop adding slices once estimated confidence reaches this (0..=1).
    pub confidence_target: f32,
    /// The asking thread.
    pub thread_id: Option<String>,
    /// Reference time.
    pub now: Option<DateTime<Utc>>,
    /// Retrieval hints.
    pub hints: RetrievalHints,
    /// Only records of threads starting with this (see [`Query::thread_prefix`]).
    pub thread_prefix: Option<String>,
}

impl ContextRequest {
    /// A request with the default confidence target (0.9).
    pub fn new(query: &str, budget_tokens: usize) -> Self {
        Self {
            query: query.to_string(),
            budget_tokens,
            confidence_target: 0.9,
            thread_id: None,
            now: None,
            hints: RetrievalHints::default(),
            thread_prefix: None,
        }
    }
}

/// What a slice is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SliceSource {
    /// A stored summary.
    Summary {
        /// Its id.
        summary_id: i64,
        /// Its level.
        level: Level,
    },
    /// A raw record.
    Record {
        /// Its id.
        memory_id: uuid::Uuid,
    },
}

/// One piece of the context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slice {
    /// Summary or record.
    pub source: SliceSource,
    /// Text to put in the prompt.
    pub text: String,
    /// Its estimated tokens.
    pub tokens: usize,
    /// Confidence it added.
    pub gain: f32,
    /// Why it was chosen.
    pub why: String,
}

/// The chosen context and the reasoning.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContextPack {
    /// Chosen slices, in prompt order.
    pub slices: Vec<Slice>,
    /// Total estimated tokens.
    pub tokens: usize,
    /// Estimated chance the context holds what the query needs.
    pub confidence: f32,
    /// Whether the target was reached.
    pub target_met: bool,
    /// Why it stopped.
    pub stop_reason: String,
}

impl ContextPack {
    /// The slices' text joined for a prompt.
    pub fn text(&self) -> String {
        self.slices
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct Candidate {
    source: SliceSource,
    text: String,
    tokens: usize,
    /// (hit index, share of its probability carried).
    carries: Vec<(usize, f32)>,
    why: String,
}

/// The top hit answers with this probability (calibration of fused scores).
const TOP_HIT_PROBABILITY: f32 = 0.6;

impl MemoryEngine {
    /// Choose the context for `req` (see the module docs).
    pub fn build_context(&self, req: &ContextRequest) -> Result<ContextPack> {
        let query = Query {
            text: req.query.clone(),
            limit: 20,
            thread_id: req.thread_id.clone(),
            now: req.now,
            hints: req.hints.clone(),
            vector: None,
            thread_prefix: req.thread_prefix.clone(),
        };
        let hits = self.search(&query)?;
        let Some(top) = hits.first().map(|h| h.score) else {
            return Ok(ContextPack {
                stop_reason: "no memory matches the query".into(),
                ..ContextPack::default()
            });
        };
        // Relevance falls with the square of the score ratio to the best hit.
        let p: Vec<f32> = hits
            .iter()
            .map(|h| TOP_HIT_PROBABILITY * (h.score / top).powi(2))
            .collect();
        let mut candidates: Vec<Candidate> = Vec::new();
        // Summaries covering the hits, coarse levels first.
        let hit_index: HashMap<i64, usize> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| (h.memory.seq, i))
            .collect();
        let threads: HashSet<&str> = hits
            .iter()
            .filter_map(|h| h.memory.record.thread_id.as_deref())
            .collect();
        for t in threads {
            for s in self.summaries(t, None)? {
                // A record the summary quotes is fully carried; one it only
                // covers is carried in proportion to the compression ratio.
                let tokens = estimate_tokens(&s.content);
                let gist = 0.5 * (tokens as f32 / s.source_tokens.max(1) as f32).min(1.0);
                let carries: Vec<(usize, f32)> = s
                    .sources
                    .iter()
                    .filter_map(|seq| hit_index.get(seq))
                    .map(|&i| {
                        (
                            i,
                            if s.content.contains(hits[i].memory.content()) {
                                1.0
                            } else {
                                gist
                            },
                        )
                    })
                    .collect();
                if carries.is_empty() {
                    continue;
                }
                candidates.push(Candidate {
                    source: SliceSource::Summary {
                        summary_id: s.summary_id,
                        level: s.level,
                    },
                    tokens,
                    why: format!(
                        "{} summary covering {} of the top hits",
                        s.level.as_str(),
                        carries.len()
                    ),
                    text: s.content,
                    carries,
                });
            }
        }
        for (i, h) in hits.iter().enumerate() {
            let text = h.memory.render();
            candidates.push(Candidate {
                source: SliceSource::Record {
                    memory_id: h.memory.id(),
                },
                tokens: estimate_tokens(&text),
                why: format!("hit #{} (p={:.2})", i + 1, p[i]),
                text,
                carries: vec![(i, 1.0)],
            });
        }
        let mut missing: Vec<f32> = vec![1.0; hits.len()]; // Π(1-p) per hit not yet carried
        let mut pack = ContextPack::default();
        let mut used = vec![false; candidates.len()];
        loop {
            let confidence = 1.0 - missing.iter().product::<f32>();
            pack.confidence = confidence;
            if confidence >= req.confidence_target {
                pack.target_met = true;
                pack.stop_reason = format!(
                    "confidence {:.2} reached the target {:.2}",
                    confidence, req.confidence_target
                );
                break;
            }
            let best = candidates
                .iter()
                .enumerate()
                .filter(|(i, c)| !used[*i] && pack.tokens + c.tokens <= req.budget_tokens)
                .map(|(i, c)| {
                    let after: f32 = missing
                        .iter()
                        .enumerate()
                        .map(|(h, m)| {
                            c.carries
                                .iter()
                                .filter(|(ci, _)| *ci == h)
                                .fold(*m, |m, (_, share)| m * (1.0 - p[h] * share))
                        })
                        .product();
                    let gain = (1.0 - after) - confidence;
                    // Fewest slices: the largest gain wins; summaries get a
                    // 20% edge so they come first when nearly as good.
                    let summary = matches!(c.source, SliceSource::Summary { .. });
                    (i, gain, if summary { gain * 1.2 } else { gain })
                })
                .filter(|(_, g, _)| *g > 1e-4)
                .max_by(|a, b| a.2.total_cmp(&b.2));
            let Some((i, gain, _)) = best else {
                pack.stop_reason = format!(
                    "stopped at confidence {:.2}: nothing else fits the {}-token budget or adds confidence",
                    confidence, req.budget_tokens
                );
                break;
            };
            used[i] = true;
            let c = &candidates[i];
            for &(h, share) in &c.carries {
                missing[h] *= 1.0 - p[h] * share;
            }
            pack.tokens += c.tokens;
            pack.slices.push(Slice {
                source: c.source.clone(),
                text: c.text.clone(),
                tokens: c.tokens,
                gain,
                why: c.why.clone(),
            });
        }
        Ok(pack)
    }
}
