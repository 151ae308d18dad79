//! Record types: what goes in ([`NewMemory`]) and what comes out
//! ([`StoredMemory`]), around core's [`MemoryRecord`] contract.

use chrono::{DateTime, TimeZone, Utc};
use opticlaw_core::{MemoryRecord, MemoryType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A record to be remembered. Build one with [`NewMemory::episodic`],
/// [`NewMemory::semantic`] or [`NewMemory::procedural`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMemory {
    /// Episodic, semantic or procedural.
    pub kind: MemoryType,
    /// The text remembered.
    pub content: String,
    /// Conversation or task thread this belongs to.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Who said or did it (episodic).
    #[serde(default)]
    pub speaker: Option<String>,
    /// When it happened; defaults to now.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Where a fact came from (semantic).
    #[serde(default)]
    pub source: Option<String>,
    /// Confidence in a fact, 0..=1 (semantic).
    #[serde(default)]
    pub confidence: Option<f32>,
    /// Free-form domain such as `work` or `health`, used by retrieval hints.
    #[serde(default)]
    pub domain: Option<String>,
    /// Entity keys such as `person:sam`; more are extracted from the text.
    #[serde(default)]
    pub entities: Vec<String>,
    /// 0..=1; scored from the text when absent.
    #[serde(default)]
    pub salience: Option<f32>,
    /// Pinned records are never forgotten by decay.
    #[serde(default)]
    pub pinned: bool,
    /// After this instant the record is dropped.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Keep this id (imports); a fresh v7 id otherwise.
    #[serde(default)]
    pub memory_id: Option<Uuid>,
}

impl NewMemory {
    /// A record of `kind` with only its content set.
    pub fn new(kind: MemoryType, content: impl Into<String>) -> Self {
        Self {
            kind,
            content: content.into(),
            thread_id: None,
            speaker: None,
            occurred_at: None,
            source: None,
            confidence: None,
            domain: None,
            entities: Vec::new(),
            salience: None,
            pinned: false,
            expires_at: None,
            memory_id: None,
        }
    }

    /// Something that happened in a thread: who said what, when.
    pub fn episodic(
        thread_id: impl Into<String>,
        speaker: impl Into<String>,
        content: impl Into<String>,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            thread_id: Some(thread_id.into()),
            speaker: Some(speaker.into()),
            occurred_at: Some(occurred_at),
            ..Self::new(MemoryType::Episodic, content)
        }
    }

    /// A fact, preference or concept with a confidence and a source.
    pub fn semantic(
        content: impl Into<String>,
        confidence: f32,
        source: impl Into<String>,
    ) -> Self {
        Self {
            confidence: Some(confidence),
            source: Some(source.into()),
            ..Self::new(MemoryType::Semantic, content)
        }
    }

    /// A reusable workflow or code pattern.
    pub fn procedural(content: impl Into<String>) -> Self {
        Self::new(MemoryType::Procedural, content)
    }

    /// Builder: set the thread.
    pub fn in_thread(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Builder: pin the record.
    pub fn pinned(mut self) -> Self {
        self.pinned = true;
        self
    }

    /// Builder: set an expiry.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Builder: add an entity key.
    pub fn with_entity(mut self, key: impl Into<String>) -> Self {
        self.entities.push(key.into());
        self
    }

    /// Builder: set the domain.
    pub fn in_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }
}

/// A record as stored: core's [`MemoryRecord`] plus the engine's extras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMemory {
    /// Core contract fields.
    #[serde(flatten)]
    pub record: MemoryRecord,
    /// Internal row number (also the full-text and vector key).
    #[serde(skip)]
    pub seq: i64,
    /// Who said or did it.
    #[serde(default)]
    pub speaker: Option<String>,
    /// Where a fact came from.
    #[serde(default)]
    pub source: Option<String>,
    /// Confidence in a fact.
    #[serde(default)]
    pub confidence: Option<f32>,
    /// Domain label.
    #[serde(default)]
    pub domain: Option<String>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl StoredMemory {
    /// The record's kind.
    pub fn kind(&self) -> MemoryType {
        self.record.memory_type
    }

    /// The record's content.
    pub fn content(&self) -> &str {
        &self.record.content
    }

    /// The record's id.
    pub fn id(&self) -> Uuid {
        self.record.memory_id
    }

    /// Content as shown in a prompt: `[date] speaker: text`.
    pub fn render(&self) -> String {
        let date = self.occurred_at.format("%Y-%m-%d");
        match &self.speaker {
            Some(s) => format!("[{date}] {s}: {}", self.record.content),
            None => format!("[{date}] {}", self.record.content),
        }
    }
}

/// Kind as stored in SQLite.
pub(crate) fn kind_str(kind: MemoryType) -> &'static str {
    match kind {
        MemoryType::Episodic => "episodic",
        MemoryType::Semantic => "semantic",
        MemoryType::Procedural => "procedural",
    }
}

/// Parse a stored kind.
pub(crate) fn parse_kind(s: &str) -> Option<MemoryType> {
    match s {
        "episodic" => Some(MemoryType::Episodic),
        "semantic" => Some(MemoryType::Semantic),
        "procedural" => Some(MemoryType::Procedural),
        _ => None,
    }
}

/// Milliseconds since the epoch.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Back from milliseconds since the epoch.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
