//! all-MiniLM-L6-v2 (or any BERT sentence-transformer) run in-process with
//! candle: BERT forward, mean pooling over the attention mask, L2
//! normalisation — the pipeline sentence-transformers runs for this model.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

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
    device: Device,
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
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
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
            device,
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| err("tokenize")(Box::new(e)))?;
        let n = enc.len();
        let len = enc.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &enc {
            ids.extend(e.get_ids().iter().copied());
            mask.extend(e.get_attention_mask().iter().copied());
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
            let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
            // One text has no padding: no attention mask to build or add.
            let attention = (n > 1).then_some(&mask);
            let hidden = self.model.forward(&ids, attention)?; // (n, len, dim)
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
            let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
            let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(|e| err("BERT forward")(Box::new(e)))
    }
}

impl Embedder for MiniLmEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        // Batch texts of similar length together to waste little on padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, v) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
