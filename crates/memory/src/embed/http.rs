//! Embeddings from an HTTP endpoint speaking the OpenAI `/v1/embeddings`
//! protocol (OpenAI, llama.cpp, vLLM, LM Studio, Ollama's `/v1`).

use std::time::Duration;

use serde::Deserialize;

use super::Embedder;
use crate::error::{MemoryError, Result};

/// An [`Embedder`] calling `POST {base_url}/embeddings`.
#[derive(Debug, Clone)]
pub struct HttpEmbedder {
    client: reqwest::blocking::Client,
    url: String,
    model: String,
    model_id: String,
    dim: usize,
    api_key: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl HttpEmbedder {
    /// An embedder for `model` at `base_url` (e.g. `http://127.0.0.1:11434/v1`)
    /// that must return `dim`-dimensional vectors.
    pub fn new(base_url: &str, model: &str, dim: usize) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| MemoryError::Embedder(format!("http client: {e}")))?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.to_string(),
            model_id: format!("http:{model}"),
            dim,
            api_key: None,
        })
    }

    /// Send `Authorization: Bearer <key>`.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

impl Embedder for HttpEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "model": self.model, "input": texts }));
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .map_err(|e| MemoryError::Embedder(format!("{}: {e}", self.url)))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            return Err(MemoryError::Embedder(format!(
                "{} answered {status}: {}",
                self.url,
                body.chars().take(200).collect::<String>()
            )));
        }
        let parsed: Response = resp
            .json()
            .map_err(|e| MemoryError::Embedder(format!("{}: bad response: {e}", self.url)))?;
        if parsed.data.len() != texts.len() {
            return Err(MemoryError::Embedder(format!(
                "{} returned {} vectors for {} inputs",
                self.url,
                parsed.data.len(),
                texts.len()
            )));
        }
        let mut out = vec![Vec::new(); texts.len()];
        for (i, item) in parsed.data.into_iter().enumerate() {
            if item.embedding.len() != self.dim {
                return Err(MemoryError::DimensionMismatch {
                    expected: self.dim,
                    actual: item.embedding.len(),
                });
            }
            let slot = item.index.unwrap_or(i).min(texts.len() - 1);
            let mut v = item.embedding;
            crate::vector::normalise(&mut v);
            out[slot] = v;
        }
        Ok(out)
    }
}
