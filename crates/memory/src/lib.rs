//! OptiClaw's memory engine (blueprint 4.6).
//!
//! Three kinds of [`MemoryRecord`](opticlaw_core::MemoryRecord) —
//! episodic, semantic, procedural — kept in SQLite (L2) behind a byte-bounded
//! hot cache (L1), indexed by FTS5/BM25, an embedded vector index and an
//! entity graph (L3). Retrieval fuses the three; compaction writes rolling
//! micro/meso/macro summaries; the context budgeter packs the smallest set of
//! slices that answers a query within a token budget.
//!
//! ```
//! use opticlaw_memory::{EngineConfig, MemoryEngine, NewMemory, Query};
//!
//! let mut memory = MemoryEngine::open_in_memory(EngineConfig::default())?;
//! memory.add(NewMemory::semantic("Sam is allergic to peanuts", 0.9, "chat"))?;
//! let hits = memory.search(&Query::new("what is Sam allergic to?", 5))?;
//! assert!(hits[0].memory.content().contains("peanuts"));
//! # Ok::<(), opticlaw_memory::MemoryError>(())
//! ```

pub mod bench;
pub mod budget;
pub mod cache;
pub mod compress;
pub mod doctor;
pub mod embed;
pub mod engine;
pub mod error;
pub mod graph;
pub mod jsonl;
pub mod record;
pub mod retrieve;
pub mod schema;
pub mod store;
pub mod text;
pub mod timeparse;
pub mod vector;

pub use budget::{ContextPack, ContextRequest};
pub use compress::{DecayPolicy, ExtractiveSummarizer, Level, Summarizer, ThreadTail};
pub use doctor::{DoctorReport, doctor_environment};
pub use embed::Embedder;
pub use engine::{EngineConfig, MemoryEngine, content_from_bytes};
pub use error::{MemoryError, Result};
pub use record::{NewMemory, StoredMemory};
pub use retrieve::{Hit, Query, RetrievalHints};
pub use schema::{MIGRATIONS, migrate};
pub use timeparse::TimeRange;
