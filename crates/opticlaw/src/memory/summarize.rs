//! Abstractive rewrites of the rolling summaries through the model router.
//!
//! Compaction always writes extractive summaries first, on the memory
//! thread, in the same pass as the turns that made it due: cheap, and never
//! waiting on a model. When a model is configured (and `[memory]
//! abstractive_summaries` is on), each new session (meso) and whole-thread
//! (macro) summary is then offered to the model: the prompt holds the
//! extractive digest of its turns at a few times the summary's budget, the
//! call goes through the router (value gate, budgets, accounting), and the
//! answer comes back to the memory thread as a message that replaces the
//! summary's text. A refused or failed call leaves the extractive summary.
//! Micro summaries (a few turns) stay extractive: a model adds little there.

use opticlaw_memory::compress::Level;
use opticlaw_memory::{ExtractiveSummarizer, MemoryEngine, StoredMemory, Summarizer};

use crate::model_answerer::ModelAnswerer;

/// How much larger than the summary's own budget the digest sent is.
const DIGEST_FACTOR: usize = 4;

/// A rewrite the model finished: summary id, text, model.
pub struct Rewritten {
    pub summary_id: i64,
    pub text: String,
    pub model: String,
}

/// Sends summaries to the model and their rewrites back to the memory thread.
pub struct Rewriter {
    pub model: ModelAnswerer,
    pub runtime: tokio::runtime::Handle,
    /// Delivers a finished rewrite to the memory thread.
    pub deliver: Box<dyn Fn(Rewritten) + Send + Sync>,
}

impl Rewriter {
    /// Offer summary `id` to the model, unless it is micro or gone.
    pub fn offer(self: &std::sync::Arc<Self>, engine: &MemoryEngine, id: i64, level: Level) {
        if level == Level::Micro {
            return;
        }
        let records = match engine.summary_sources(id) {
            Ok(Some(records)) if !records.is_empty() => records,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(summary = id, %err, "memory: reading a summary's turns");
                return;
            }
        };
        let budget = level.budget_tokens();
        let Ok(digest) = ExtractiveSummarizer.summarize(level, &records, budget * DIGEST_FACTOR)
        else {
            return;
        };
        let prompt = prompt(level, budget, &digest);
        let user = owner(&records);
        let this = self.clone();
        self.runtime.spawn(async move {
            let task_id = format!("memory-summary-{id}");
            match this.model.complete(&task_id, &user, &prompt).await {
                Ok((text, model)) if !text.trim().is_empty() => (this.deliver)(Rewritten {
                    summary_id: id,
                    text: cut_to_words(&text, words_for(budget)),
                    model,
                }),
                Ok(_) => tracing::info!(summary = id, "memory: the model's summary was empty; the extractive one stays"),
                Err(why) => {
                    tracing::info!(summary = id, %why, "memory: no abstractive summary; the extractive one stays")
                }
            }
        });
    }
}

/// Store the model's rewrite of a summary (ignored when the summary was
/// rebuilt or forgotten meanwhile).
pub fn apply(engine: &mut MemoryEngine, done: &Rewritten) {
    let method = format!("model:{}", done.model);
    match engine.rewrite_summary(done.summary_id, &done.text, &method) {
        Ok(true) => tracing::debug!(summary = done.summary_id, "memory: summary rewritten"),
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(summary = done.summary_id, %err, "memory: storing a rewritten summary")
        }
    }
}

fn words_for(budget_tokens: usize) -> usize {
    budget_tokens * 3 / 4
}

/// The prompt: what to keep, how long, and the digest.
pub fn prompt(level: Level, budget_tokens: usize, digest: &str) -> String {
    let what = match level {
        Level::Macro => "everything this person and the assistant have talked about so far",
        _ => "one conversation session",
    };
    format!(
        "Summarise {what} in at most {words} words, as plain sentences. Keep names, dates, \
         places, numbers, decisions and promises; drop greetings and small talk. Reply with \
         the summary only.\n\nThe most telling lines, oldest first:\n{digest}",
        words = words_for(budget_tokens)
    )
}

/// The user whose budget pays: the `user` of the `source/user/thread` key.
fn owner(records: &[StoredMemory]) -> String {
    records
        .first()
        .and_then(|r| r.record.thread_id.as_deref())
        .and_then(|t| t.split('/').nth(1))
        .unwrap_or("memory")
        .to_owned()
}

/// At most `words` words of `text`.
fn cut_to_words(text: &str, words: usize) -> String {
    text.split_whitespace()
        .take(words)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_asks_for_the_level_and_length_and_carries_the_digest() {
        let p = prompt(Level::Meso, 200, "Alice: I moved to Lisbon");
        assert!(p.contains("one conversation session"), "{p}");
        assert!(p.contains("at most 150 words"), "{p}");
        assert!(p.ends_with("Alice: I moved to Lisbon"), "{p}");
        assert!(prompt(Level::Macro, 400, "x").contains("at most 300 words"));
    }

    #[test]
    fn a_long_answer_is_cut_to_the_word_budget() {
        assert_eq!(cut_to_words("a  b\nc d", 3), "a b c");
        assert_eq!(cut_to_words("short", 3), "short");
    }
}
