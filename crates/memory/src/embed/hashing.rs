//! A model-free embedder: signed feature hashing of words. Not semantic —
//! it places texts sharing words near each other — but it needs no model,
//! so it serves scale benches and tests of the vector path.

use super::Embedder;
use crate::error::Result;

/// Feature-hashing bag-of-words embedder of a given dimension.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dim: usize,
    id: String,
}

impl HashingEmbedder {
    /// An embedder producing `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            id: format!("hashing-{dim}"),
        }
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Embedder for HashingEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; self.dim];
                for w in crate::text::query_terms(t) {
                    let h = fnv1a(&w);
                    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
                    v[(h % self.dim as u64) as usize] += sign;
                }
                crate::vector::normalise(&mut v);
                v
            })
            .collect())
    }
}
