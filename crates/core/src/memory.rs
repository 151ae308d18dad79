use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One remembered item (blueprint 7.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryRecord {
    pub memory_id: Uuid,
    #[serde(rename = "type")]
    pub memory_type: MemoryType,
    pub content: String,
    /// `vec://...` reference into the vector index, when embedded.
    #[serde(default)]
    pub embedding_ref: Option<String>,
    /// Entity keys such as `person:sam` or `repo:opticlaw`.
    #[serde(default)]
    pub entities: Vec<String>,
    /// 0.0 (forgettable) to 1.0 (essential).
    pub salience: f32,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryType {
    /// What happened: interactions and actions, time-ordered.
    Episodic,
    /// What is true: facts, preferences, concepts, with confidence.
    Semantic,
    /// How to do things: workflows and code patterns.
    Procedural,
}
