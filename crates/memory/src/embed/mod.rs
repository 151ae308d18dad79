//! Sentence embeddings behind a small trait: in-process all-MiniLM-L6-v2
//! (feature `embeddings`), or any OpenAI-compatible / Ollama `/embeddings`
//! HTTP endpoint.

mod http;
#[cfg(feature = "embeddings")]
mod minilm;

pub use http::HttpEmbedder;
#[cfg(feature = "embeddings")]
pub use minilm::MiniLmEmbedder;

use crate::error::Result;

/// Turns texts into fixed-size, L2-normalised vectors.
pub trait Embedder: Send + Sync {
    /// A stable name of the model, stored with each vector.
    fn model_id(&self) -> &str;
    /// Length of every vector this embedder returns.
    fn dim(&self) -> usize;
    /// Embed a batch of texts, one vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Default project-local directory of the MiniLM model, as written by
/// `scripts/fetch-embedding-model`.
pub const DEFAULT_MODEL_DIR: &str = ".cache/models/all-MiniLM-L6-v2";

/// Files a Hugging Face-layout model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
