//! Sentence embeddings behind a small trait: in-process all-MiniLM-L6-v2
//! (feature `embeddings`), or any OpenAI-compatible / Ollama `/embeddings`
//! HTTP endpoint.

#[cfg(feature = "embeddings")]
mod bert;
mod hashing;
mod http;
#[cfg(feature = "embeddings")]
mod minilm;

pub use hashing::HashingEmbedder;
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
    /// Whether one `embed` call already keeps two cores busy; a search then
    /// embeds before gathering full-text candidates instead of beside it.
    fn uses_two_threads(&self) -> bool {
        false
    }
}

/// Default project-local directory of the MiniLM model, as written by
/// `scripts/fetch-embedding-model`.
pub const DEFAULT_MODEL_DIR: &str = ".cache/models/all-MiniLM-L6-v2";

/// Files a Hugging Face-layout model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Where to look for the local model: `$OPTICLAW_EMBEDDING_MODEL_DIR`, else
/// [`DEFAULT_MODEL_DIR`] under the current directory or any ancestor.
pub fn find_model_dir() -> Option<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("OPTICLAW_EMBEDDING_MODEL_DIR") {
        return Some(d.into());
    }
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let candidate = dir.join(DEFAULT_MODEL_DIR);
        if candidate.join("model.safetensors").is_file() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// The local embedder if the `embeddings` feature is on and a model is
/// found by [`find_model_dir`]; otherwise why not.
pub fn local_embedder() -> std::result::Result<Box<dyn Embedder>, String> {
    local_embedder_from(None)
}

/// The local embedder loaded from `dir`, or from [`find_model_dir`] when
/// `dir` is `None`; otherwise why not (feature off, model missing, bad files).
pub fn local_embedder_from(
    dir: Option<&std::path::Path>,
) -> std::result::Result<Box<dyn Embedder>, String> {
    #[cfg(feature = "embeddings")]
    {
        let dir = dir.map(std::path::Path::to_path_buf).or_else(find_model_dir).ok_or_else(|| {
            format!("no embedding model: run scripts/fetch-embedding-model or set OPTICLAW_EMBEDDING_MODEL_DIR (looked for {DEFAULT_MODEL_DIR})")
        })?;
        MiniLmEmbedder::load(&dir)
            .map(|e| Box::new(e) as Box<dyn Embedder>)
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "embeddings"))]
    {
        let _ = dir;
        Err("built without the `embeddings` feature".to_string())
    }
}
