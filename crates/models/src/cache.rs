//! The result cache: keyed on the normalized request and the hash of the
//! context it used, invalidated when a source it read changes.
//!
//! The key leaves out the model, the temperature and the output cap: an
//! answer to the same question over the same context is reusable whichever
//! rung produced it. (A semantic layer over embeddings is to come with the
//! memory engine.)

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::{ChatRequest, ChatResponse};

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
    for message in &request.messages {
        // serde_json of our own types cannot fail.
        hasher.update(serde_json::to_vec(message).unwrap_or_default());
        hasher.update([0x1e]);
    }
    for tool in &request.tools {
        hasher.update(serde_json::to_vec(tool).unwrap_or_default());
        hasher.update([0x1d]);
    }
    hasher.update(context_hash(sources).as_bytes());
    hex::encode(hasher.finalize())
}

/// A bounded map from cache key to reply, with an index from each source to
/// the entries that read it.
#[derive(Debug)]
pub struct ResultCache {
    capacity: usize,
    entries: HashMap<String, (ChatResponse, Vec<String>)>,
    order: VecDeque<String>,
    by_source: HashMap<String, HashSet<String>>,
}

impl ResultCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            by_source: HashMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&ChatResponse> {
        self.entries.get(key).map(|(response, _)| response)
    }

    /// Stores a reply; the oldest entry goes when the cache is full.
    pub fn insert(&mut self, key: String, response: ChatResponse, sources: &[ContextSource]) {
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
    fn full_cache_drops_the_oldest_entry() {
        let mut cache = ResultCache::new(1);
        cache.insert("k1".into(), reply("1"), &[]);
        cache.insert("k2".into(), reply("2"), &[]);
        assert!(cache.get("k1").is_none());
        assert_eq!(cache.len(), 1);
    }
}
