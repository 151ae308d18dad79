//! all-MiniLM-L6-v2 (or any BERT sentence-transformer) run in-process: BERT
//! forward (`bert.rs`; candle reads the checkpoint), mean pooling over each
//! text's tokens, L2 normalisation — the pipeline sentence-transformers runs
//! for this model.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{BertConfig, BertEncoder};
use super::{Embedder, MODEL_FILES};
use crate::error::{MemoryError, Result};

/// Longest input in tokens (the model's `max_seq_length`).
const MAX_TOKENS: usize = 256;
/// Texts embedded per forward pass.
const BATCH: usize = 32;

/// A BERT sentence embedder loaded from a Hugging Face-layout directory.
pub struct MiniLmEmbedder {
    model: BertEncoder,
    tokenizer: Tokenizer,
    dim: usize,
    model_id: String,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .finish()
    }
}

fn err(context: &str) -> impl Fn(Box<dyn std::fmt::Display>) -> MemoryError + '_ {
    move |e| MemoryError::Embedder(format!("{context}: {e}"))
}

impl MiniLmEmbedder {
    /// Load `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        for f in MODEL_FILES {
            if !dir.join(f).is_file() {
                return Err(MemoryError::ModelMissing(dir.join(f)));
            }
        }
        let cfg_text = std::fs::read_to_string(dir.join("config.json"))?;
        let config: BertConfig = serde_json::from_str(&cfg_text).map_err(|e| {
            MemoryError::Embedder(format!("{}: {e}", dir.join("config.json").display()))
        })?;
        let dim = config.hidden_size;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| err("tokenizer.json")(Box::new(e)))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| err("tokenizer truncation")(Box::new(e)))?;
        // No padding: the encoder takes a ragged batch.
        tokenizer.with_padding(None);
        let device = Device::Cpu;
        let weights: PathBuf = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only and not modified while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| err("model.safetensors")(Box::new(e)))?;
        let model = BertEncoder::load(vb, &config).map_err(|e| err("loading BERT")(Box::new(e)))?;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("bert");
        Ok(Self {
            model,
            tokenizer,
            dim,
            model_id: format!("local:{name}"),
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        // One text (a query) is encoded on this thread: `encode_batch` hands
        // even one text to rayon's pool, whose workers then spin on the
        // core the engine's retrieval runs on.
        let enc = match texts {
            [one] => self.tokenizer.encode(*one, true).map(|e| vec![e]),
            _ => self.tokenizer.encode_batch(texts.to_vec(), true),
        }
        .map_err(|e| err("tokenize")(Box::new(e)))?;
        // Unpadded: the encoder runs a ragged batch, so every token is real
        // and mean pooling averages all of a text's tokens.
        let ids: Vec<&[u32]> = enc.iter().map(|e| e.get_ids()).collect();
        let hidden = self
            .model
            .forward(&ids)
            .map_err(|e| err("BERT forward")(Box::new(e)))?;
        let mut rows = hidden.chunks_exact(self.dim);
        Ok(ids
            .iter()
            .map(|ids| mean_normalised(rows.by_ref().take(ids.len()), self.dim))
            .collect())
    }
}

/// The mean of `rows`, L2-normalised (sentence-transformers' mean pooling
/// then `Normalize`, with their clamps against empty and zero vectors).
fn mean_normalised<'a>(rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Vec<f32> {
    let mut mean = vec![0.0f32; dim];
    let mut count = 0usize;
    for row in rows {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
        count += 1;
    }
    let count = (count as f32).max(1e-9);
    let norm = mean
        .iter()
        .map(|m| (m / count) * (m / count))
        .sum::<f32>()
        .sqrt()
        .max(1e-12);
    mean.iter().map(|m| m / count / norm).collect()
}

impl Embedder for MiniLmEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn uses_two_threads(&self) -> bool {
        self.model.uses_two_threads()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }
}
