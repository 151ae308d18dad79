//! The memory commands (`/memory`, `/remember`, `/forget`) and the model
//! path's context.
//!
//! Triage passes these commands on instead of answering them (it touches no
//! store); this [`Answerer`] sits in front of the model answerer, answers
//! them from the memory thread without any model, and for every other
//! message puts the budgeter's context in the event's metadata
//! (`memory_context`) for the model answerer to add to its request.

use std::sync::Arc;

use opticlaw_runtime::{Answer, AnswerFuture, AnswerRequest, Answerer};
use serde_json::json;

use super::{MemoryHandle, Scope};

/// Metadata key the model answerer reads its memory context from.
pub const CONTEXT_KEY: &str = "memory_context";

/// Hits listed by `/memory`.
const SEARCH_HITS: usize = 5;

/// Memory commands first, then the model answerer with context.
pub struct MemoryAnswerer {
    /// `None` when `[memory] enabled = false`.
    pub memory: Option<MemoryHandle>,
    /// The model path; `None` when no model is configured.
    pub inner: Option<Arc<dyn Answerer>>,
    /// Most tokens of memory context per model request.
    pub context_budget: usize,
    /// How to add a model, for the notice when none is configured.
    pub no_model_hint: String,
}

/// A memory command and its argument.
#[derive(Debug, PartialEq)]
pub enum Command<'a> {
    Search(&'a str),
    Remember(&'a str),
    Forget(&'a str),
}

/// Parses `/memory q`, `/remember fact`, `/forget x` (also `/cmd@Bot`).
pub fn parse_command(text: &str) -> Option<Command<'_>> {
    let rest = text.trim().strip_prefix('/')?;
    let (name, arg) = rest
        .split_once(char::is_whitespace)
        .map(|(n, a)| (n, a.trim()))
        .unwrap_or((rest, ""));
    let name = name.split('@').next().unwrap_or(name).to_ascii_lowercase();
    match name.as_str() {
        "memory" => Some(Command::Search(arg)),
        "remember" => Some(Command::Remember(arg)),
        "forget" => Some(Command::Forget(arg)),
        _ => None,
    }
}

impl Answerer for MemoryAnswerer {
    fn answer(&self, mut request: AnswerRequest) -> AnswerFuture {
        let memory = self.memory.clone();
        let event = &request.event;
        let scope = Scope::of(&event.source, &event.user_id, &event.thread_id);
        let text = event.content.text.trim().to_owned();
        if let Some(command) = parse_command(&text) {
            let (name, arg) = match command {
                Command::Search(a) => ("memory", a.to_owned()),
                Command::Remember(a) => ("remember", a.to_owned()),
                Command::Forget(a) => ("forget", a.to_owned()),
            };
            return Box::pin(async move {
                let Some(memory) = memory else {
                    return Ok(Answer {
                        text: format!(
                            "/{name} is off: memory is disabled ([memory] enabled = false in config.toml)."
                        ),
                        outcome: json!({ "memory_command": name, "disabled": true }),
                    });
                };
                let reply = run_command(&memory, scope, name, &arg).await?;
                Ok(Answer {
                    text: reply,
                    outcome: json!({ "memory_command": name }),
                })
            });
        }
        let inner = self.inner.clone();
        let budget = self.context_budget;
        let notice = opticlaw_runtime::no_model_notice(&self.no_model_hint);
        Box::pin(async move {
            let Some(inner) = inner else {
                if let Some(memory) = &memory {
                    memory.catch_up();
                }
                return Ok(Answer {
                    text: notice,
                    outcome: json!({ "needs_model": true }),
                });
            };
            // Context first (the thread serves requests in order), then
            // the message itself is ingested.
            let context = match &memory {
                Some(memory) if budget > 0 => {
                    let before = request.event.timestamp;
                    let hints = retrieval_hints(&request.triage.hints);
                    let context = memory.context(scope, text, hints, budget, before).await;
                    memory.catch_up();
                    context
                }
                _ => Ok(Default::default()),
            };
            match context {
                Ok(pack) if !pack.slices.is_empty() => {
                    request
                        .event
                        .metadata
                        .insert(CONTEXT_KEY.to_owned(), json!(pack.text()));
                }
                Ok(_) => {
                    request.event.metadata.remove(CONTEXT_KEY);
                }
                Err(why) => {
                    tracing::warn!(%why, "memory: no context for the model");
                    request.event.metadata.remove(CONTEXT_KEY);
                }
            }
            inner.answer(request).await
        })
    }
}

/// Triage's hints as memory retrieval takes them: the entities it found
/// (graph candidates) and the intent's domain (records of that domain rank
/// higher). Its time range is left out: retrieval reads time expressions
/// from the text itself, relative to the question's time, and the context
/// is already cut at the message's time.
pub fn retrieval_hints(
    triage: &opticlaw_triage::RetrievalHints,
) -> opticlaw_memory::RetrievalHints {
    opticlaw_memory::RetrievalHints {
        entities: triage.entities.clone(),
        domain: triage.domain.clone(),
        ..Default::default()
    }
}

async fn run_command(
    memory: &MemoryHandle,
    scope: Scope,
    name: &str,
    arg: &str,
) -> Result<String, String> {
    if arg.is_empty() {
        return Ok(match name {
            "memory" => "Usage: /memory <what to look for>".to_owned(),
            "remember" => "Usage: /remember <a fact to keep>".to_owned(),
            _ => "Usage: /forget <memory id, or text the memories to forget contain>".to_owned(),
        });
    }
    match name {
        "memory" => {
            let hits = memory.search(scope, arg.to_owned(), SEARCH_HITS).await?;
            if hits.is_empty() {
                return Ok(format!("I remember nothing about \"{arg}\"."));
            }
            let lines: Vec<String> = hits
                .iter()
                .map(|h| format!("- {}", super::one_line(&h.memory)))
                .collect();
            Ok(format!(
                "What I remember about \"{arg}\":\n{}",
                lines.join("\n")
            ))
        }
        "remember" => {
            let m = memory.remember(scope, arg.to_owned()).await?;
            Ok(format!("Remembered (id {}).", m.id()))
        }
        _ => {
            let gone = memory.forget(scope, arg.to_owned()).await?;
            // The reply names ids only: it must not repeat what was forgotten.
            Ok(match gone.len() {
                0 => "Nothing I remember matches that; `/memory <words>` shows ids to forget."
                    .to_owned(),
                n => format!(
                    "Forgot {n} memor{}: {}",
                    if n == 1 { "y" } else { "ies" },
                    gone.iter()
                        .map(|m| m.id().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_commands_parse_with_their_argument() {
        assert_eq!(
            parse_command("/memory  Lisbon "),
            Some(Command::Search("Lisbon"))
        );
        assert_eq!(
            parse_command("/remember@Bot I like tea"),
            Some(Command::Remember("I like tea"))
        );
        assert_eq!(parse_command("/FORGET abc"), Some(Command::Forget("abc")));
        assert_eq!(parse_command("/forget"), Some(Command::Forget("")));
        assert_eq!(parse_command("/help"), None);
        assert_eq!(parse_command("remember this"), None);
    }

    #[test]
    fn triage_entities_and_domain_reach_memory_retrieval() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-20T10:00:00+00:00").unwrap();
        let triaged = opticlaw_triage::hints::extract(
            "Did Alice book the flight to Lisbon last week?",
            now,
            Some("travel".to_owned()),
        );
        assert!(triaged.time_range.is_some(), "{triaged:?}");
        let hints = retrieval_hints(&triaged);
        assert!(
            hints.entities.iter().any(|e| e.contains("Alice")),
            "{hints:?}"
        );
        assert!(
            hints.entities.iter().any(|e| e.contains("Lisbon")),
            "{hints:?}"
        );
        assert_eq!(hints.domain.as_deref(), Some("travel"));
        assert_eq!(
            hints.time_range, None,
            "retrieval reads times from the text"
        );
    }
}
