//! The result cache: keyed on the normalized request and the hash of the
//! context it used, invalidated when a source it read changes.
//!
//! The key leaves out the model, the temperature and the output cap: an
//! answer to the same question over the same context is reusable whichever
//! rung produced it. An entry may also carry an embedding of its last user
//! message ([`crate::semantic`]): [`ResultCache::get_similar`] finds a
//! reply to a request that means the same within the same scope. Eviction
//! and invalidation drop both layers together.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::{ChatRequest, ChatResponse, Message, ToolSpec};

/// A piece of context a request read: a memory record, a file, a calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSource {
    pub source_id: String,
    /// A hash or version of the content as it was read.
    pub version: String,
}

/// The hash of the context a request used (order-insensitive).
pub fn context_hash(sources: &[ContextSource]) -> String {
    let mut parts: Vec<_> = sources
        .iter()
        .map(|s| format!("{}\u{1f}{}", s.source_id, s.version))
        .collect();
    parts.sort();
    hex::encode(Sha256::digest(parts.join("\u{1e}").as_bytes()))
}

/// The cache key of `request` over `sources`.
pub fn cache_key(request: &ChatRequest, sources: &[ContextSource]) -> String {
    let mut hasher = Sha256::new();
    hash_request_parts(&mut hasher, &request.messages, &request.tools, sources);
    hex::encode(hasher.finalize())
}

/// Feeds `messages`, `tools` and the context hash of `sources` to `hasher`,
/// with separators so no two different inputs feed the same bytes.
pub(crate) fn hash_request_parts(
    hasher: &mut Sha256,
    messages: &[Message],
    tools: &[ToolSpec],
    sources: &[ContextSource],
) {
    for message in messages {
        // serde_json of our own types cannot fail.
        hasher.update(serde_json::to_vec(message).unwrap_or_default());
        hasher.update([0x1e]);
    }
    for tool in tools {
        hasher.update(serde_json::to_vec(tool).unwrap_or_default());
        hasher.update([0x1d]);
    }
    hasher.update(context_hash(sources).as_bytes());
}

/// An entry's place in the semantic layer: its scope and its vector.
#[derive(Debug, Clone)]
struct SemanticEntry {
    scope: String,
    vector: Vec<f32>,
}

/// A bounded map from cache key to reply, with an index from each source to
/// the entries that read it.
#[derive(Debug)]
pub struct ResultCache {
    capacity: usize,
    entries: HashMap<String, (ChatResponse, Vec<String>)>,
    /// Cache key -> semantic entry, for entries stored with a vector.
    semantic: HashMap<String, SemanticEntry>,
    order: VecDeque<String>,
    by_source: HashMap<String, HashSet<String>>,
}

impl ResultCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            semantic: HashMap::new(),
            order: VecDeque::new(),
            by_source: HashMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&ChatResponse> {
        self.entries.get(key).map(|(response, _)| response)
    }

    /// The cached reply whose vector is most similar to `vector` within
    /// `scope`, with its similarity, if that is at least `threshold`.
    pub fn get_similar(
        &self,
        scope: &str,
        vector: &[f32],
        threshold: f32,
    ) -> Option<(&ChatResponse, f32)> {
        let (key, similarity) = self
            .semantic
            .iter()
            .filter(|(_, entry)| entry.scope == scope)
            .map(|(key, entry)| (key, crate::semantic::cosine(&entry.vector, vector)))
            .filter(|(_, similarity)| *similarity >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        self.get(key).map(|response| (response, similarity))
    }

    /// Stores a reply; the oldest entry goes when the cache is full.
    pub fn insert(&mut self, key: String, response: ChatResponse, sources: &[ContextSource]) {
        self.insert_with_vector(key, response, sources, None);
    }

    /// Stores a reply with its semantic `(scope, vector)`, if it has one.
    pub fn insert_with_vector(
        &mut self,
        key: String,
        response: ChatResponse,
        sources: &[ContextSource],
        semantic: Option<(String, Vec<f32>)>,
    ) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.contains_key(&key) {
            self.remove(&key);
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        let ids: Vec<String> = sources.iter().map(|s| s.source_id.clone()).collect();
        for id in &ids {
            self.by_source
                .entry(id.clone())
                .or_default()
                .insert(key.clone());
        }
        if let Some((scope, vector)) = semantic {
            self.semantic
                .insert(key.clone(), SemanticEntry { scope, vector });
        }
        self.order.push_back(key.clone());
        self.entries.insert(key, (response, ids));
    }

    /// Drops every entry that read `source_id`; returns how many.
    pub fn invalidate_source(&mut self, source_id: &str) -> usize {
        let keys = self.by_source.remove(source_id).unwrap_or_default();
        for key in &keys {
            self.remove(key);
        }
        keys.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn remove(&mut self, key: &str) {
        self.semantic.remove(key);
        if let Some((_, ids)) = self.entries.remove(key) {
            for id in ids {
                if let Some(set) = self.by_source.get_mut(&id) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_source.remove(&id);
                    }
                }
            }
            self.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FinishReason, Message, Usage};

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![Message::user(text)],
            tools: vec![],
            max_tokens: 10,
            temperature: 0.1,
            stream: true,
        }
    }

    fn reply(text: &str) -> ChatResponse {
        ChatResponse {
            text: text.into(),
            tool_calls: vec![],
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
        }
    }

    fn source(id: &str, v: &str) -> ContextSource {
        ContextSource {
            source_id: id.into(),
            version: v.into(),
        }
    }

    #[test]
    fn changed_source_invalidates_only_the_entries_that_read_it() {
        let mut cache = ResultCache::new(8);
        let a = cache_key(&request("a"), &[source("notes", "1")]);
        let b = cache_key(&request("b"), &[source("calendar", "1")]);
        cache.insert(a.clone(), reply("A"), &[source("notes", "1")]);
        cache.insert(b.clone(), reply("B"), &[source("calendar", "1")]);
        assert_eq!(cache.invalidate_source("notes"), 1);
        assert!(cache.get(&a).is_none());
        assert_eq!(cache.get(&b).unwrap().text, "B");
    }

    #[test]
    fn key_depends_on_context_version_but_not_on_model() {
        let mut other_model = request("a");
        other_model.model = "big".into();
        assert_eq!(
            cache_key(&request("a"), &[source("s", "1")]),
            cache_key(&other_model, &[source("s", "1")])
        );
        assert_ne!(
            cache_key(&request("a"), &[source("s", "1")]),
            cache_key(&request("a"), &[source("s", "2")])
        );
    }

    #[test]
    fn similar_lookup_stays_in_scope_and_dies_with_its_entry() {
        let mut cache = ResultCache::new(8);
        let notes = [source("notes", "1")];
        cache.insert_with_vector(
            "k1".into(),
            reply("1"),
            &notes,
            Some(("scope-a".into(), vec![1.0, 0.0])),
        );
        let (hit, similarity) = cache.get_similar("scope-a", &[0.9, 0.1], 0.9).unwrap();
        assert_eq!(hit.text, "1");
        assert!(similarity > 0.99);
        assert!(cache.get_similar("scope-b", &[1.0, 0.0], 0.9).is_none());
        assert!(cache.get_similar("scope-a", &[0.0, 1.0], 0.9).is_none());
        assert_eq!(cache.invalidate_source("notes"), 1);
        assert!(cache.get_similar("scope-a", &[1.0, 0.0], 0.5).is_none());
    }

    #[test]
    fn full_cache_drops_the_oldest_entry() {
        let mut cache = ResultCache::new(1);
        cache.insert("k1".into(), reply("1"), &[]);
        cache.insert("k2".into(), reply("2"), &[]);
        assert!(cache.get("k1").is_none());
        assert_eq!(cache.len(), 1);
    }
}
