//! The semantic layer of the result cache: a request whose last user
//! message means the same as a cached one (cosine similarity of their
//! embeddings at or above `[models.cache] semantic_threshold`) reuses its
//! reply.
//!
//! Only the last user message is compared by meaning. Everything else the
//! reply depends on must be equal: the earlier messages (system prompt
//! included), the tools, the hash of the context the request read, the
//! embedding model, and the user (a near-duplicate of someone else's
//! message may differ exactly in their private details, which the reply
//! may repeat). Private tasks skip this layer altogether. Those form the entry's *scope*; a lookup only compares
//! vectors within its own scope, so a changed source (a new version) never
//! matches, and [`crate::ResultCache::invalidate_source`] drops semantic
//! entries with the exact ones.
//!
//! Embeddings come through [`RequestEmbedder`], a small trait so this crate
//! stays free of any model runtime; the daemon backs it with the memory
//! engine's in-process all-MiniLM-L6-v2.

use sha2::{Digest, Sha256};

use crate::cache::{ContextSource, hash_request_parts};
use crate::types::{ChatRequest, Role};

/// Turns a request's text into an embedding vector.
pub trait RequestEmbedder: Send + Sync {
    /// A stable name of the model: vectors of different models never meet.
    fn model_id(&self) -> &str;
    /// One vector for `text`. An error disables the semantic layer for that
    /// request only (the call goes ahead).
    fn embed(&self, text: &str) -> Result<Vec<f32>, String>;
}

/// What a semantic lookup or insert needs: the scope and the text compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticQuery {
    /// Hash of everything but the last user message (see the module docs).
    pub scope: String,
    /// The last user message, normalized.
    pub text: String,
}

impl SemanticQuery {
    /// The query for `request` over `sources` with `model_id`'s vectors, or
    /// `None` when the request does not end with a user message (a tool
    /// result, say), which only the exact layer may answer.
    pub fn of(
        request: &ChatRequest,
        sources: &[ContextSource],
        user_id: &str,
        model_id: &str,
    ) -> Option<Self> {
        let (last, earlier) = request.messages.split_last()?;
        if last.role != Role::User {
            return None;
        }
        let text = normalize(&last.content);
        if text.is_empty() {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(model_id.as_bytes());
        hasher.update([0x1f]);
        hasher.update(user_id.as_bytes());
        hasher.update([0x1f]);
        hash_request_parts(&mut hasher, earlier, &request.tools, sources);
        Some(Self {
            scope: hex::encode(hasher.finalize()),
            text,
        })
    }
}

/// Lower case, whitespace collapsed, surrounding punctuation dropped.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_lowercase()
}

/// Cosine similarity; 0 when either vector is zero or the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages,
            tools: vec![],
            max_tokens: 10,
            temperature: 0.1,
            stream: true,
        }
    }

    #[test]
    fn scope_ignores_the_last_message_but_not_the_rest() {
        let a = request(vec![Message::system("s"), Message::user("Hello there!")]);
        let b = request(vec![Message::system("s"), Message::user("hi")]);
        let other_system = request(vec![Message::system("t"), Message::user("hi")]);
        let qa = SemanticQuery::of(&a, &[], "u", "e").unwrap();
        let qb = SemanticQuery::of(&b, &[], "u", "e").unwrap();
        assert_eq!(qa.scope, qb.scope);
        assert_eq!(qa.text, "hello there");
        assert_ne!(
            qb.scope,
            SemanticQuery::of(&other_system, &[], "u", "e")
                .unwrap()
                .scope
        );
        assert_ne!(
            qb.scope,
            SemanticQuery::of(&b, &[], "u", "f").unwrap().scope
        );
        assert_ne!(
            qb.scope,
            SemanticQuery::of(&b, &[], "v", "e").unwrap().scope
        );
        let source = ContextSource {
            source_id: "notes".into(),
            version: "2".into(),
        };
        assert_ne!(
            qb.scope,
            SemanticQuery::of(&b, &[source], "u", "e").unwrap().scope
        );
    }

    #[test]
    fn only_a_trailing_user_message_is_compared_by_meaning() {
        let tool_result = request(vec![
            Message::user("weather?"),
            Message {
                role: Role::Tool,
                ..Message::user("{\"temp\": 20}")
            },
        ]);
        assert!(SemanticQuery::of(&tool_result, &[], "u", "e").is_none());
        assert!(SemanticQuery::of(&request(vec![Message::user(" ?! ")]), &[], "u", "e").is_none());
    }

    #[test]
    fn cosine_of_parallel_orthogonal_and_mismatched_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
