//! A lean BERT encoder for sentence embeddings, built from candle's tensor
//! ops. It computes what `candle_transformers::models::bert::BertModel`
//! (and Hugging Face's `BertModel`) compute, minus work an embedder never
//! needs:
//! - query, key and value are one fused projection (one matmul, not three),
//!   and the 1/sqrt(head size) scale is folded into the query weights;
//! - a single unpadded text gets no attention mask (candle builds and adds
//!   an all-zero one for every layer);
//! - hidden states stay 2-D `(tokens, hidden)` between layers, so every
//!   projection is one plain matmul, and softmax and layer norm use
//!   candle's fused last-dimension kernels.
//!
//! Measured and rejected (single 13-token query, CPU per query, 2 shared
//! cores): q8_0 projections through `candle_core::quantized::QMatMul` are
//! ~20x slower (candle compiles its AVX2 q8 kernels only under a
//! compile-time `target-feature`, so a portable build runs scalar code);
//! f16 weights through gemm ~2.5x slower; weights pre-transposed to
//! `(in, out)` no faster. The matmuls are ~90% of the time either way.
//!
//! Layer layout follows `transformers/models/bert/modeling_bert.py`
//! (`BertEmbeddings`, `BertSelfAttention`, `BertSelfOutput`,
//! `BertIntermediate`, `BertOutput`); tensor names are the checkpoint's.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

/// The fields of a BERT `config.json` the encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

/// A dense layer `x W^T + b`; `weight` is `(out, in)`, used transposed by
/// the matmul (no copy).
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn new(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    fn load(vb: VarBuilder, dims: (usize, usize)) -> Result<Self> {
        let (input, output) = dims;
        Ok(Self::new(
            vb.get((output, input), "weight")?,
            vb.get(output, "bias")?,
        ))
    }

    /// `x`: `(tokens, in)`, contiguous.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// The encoder: embeddings and the transformer layers (no pooler).
pub(crate) struct BertEncoder {
    word: Embedding,
    position: Tensor,
    token_type_zero: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
    hidden: usize,
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(size, "weight")?,
        vb.get(size, "bias")?,
        eps,
    ))
}

impl BertEncoder {
    /// Load from a checkpoint with Hugging Face's tensor names (with or
    /// without the `bert.` prefix).
    pub(crate) fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        if config.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                config.hidden_act
            );
        }
        if config.num_attention_heads == 0 || config.hidden_size % config.num_attention_heads != 0 {
            candle_core::bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size,
                config.num_attention_heads
            );
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let heads = config.num_attention_heads;
        let head_size = h / heads;
        let emb = vb.pp("embeddings");
        let word = Embedding::new(
            emb.get((config.vocab_size, h), "word_embeddings.weight")?,
            h,
        );
        let position = emb.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type_zero = emb
            .get((config.type_vocab_size, h), "token_type_embeddings.weight")?
            .narrow(0, 0, 1)?;
        let embedding_norm = layer_norm(emb.pp("LayerNorm"), h, eps)?;
        let scale = 1.0 / (head_size as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let attn = l.pp("attention");
            let get = |name: &str| -> Result<(Tensor, Tensor)> {
                let p = attn.pp("self").pp(name);
                Ok((p.get((h, h), "weight")?, p.get(h, "bias")?))
            };
            let (qw, qb) = get("query")?;
            let (kw, kb) = get("key")?;
            let (vw, vb_) = get("value")?;
            let qkv = Dense::new(
                Tensor::cat(&[(qw * scale)?, kw, vw], 0)?,
                Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?,
            );
            layers.push(Layer {
                qkv,
                attention_out: Dense::load(attn.pp("output").pp("dense"), (h, h))?,
                attention_norm: layer_norm(attn.pp("output").pp("LayerNorm"), h, eps)?,
                intermediate: Dense::load(
                    l.pp("intermediate").pp("dense"),
                    (h, config.intermediate_size),
                )?,
                output: Dense::load(l.pp("output").pp("dense"), (config.intermediate_size, h))?,
                output_norm: layer_norm(l.pp("output").pp("LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word,
            position,
            token_type_zero,
            embedding_norm,
            layers,
            heads,
            head_size,
            hidden: h,
        })
    }

    /// Hidden states `(n, len, hidden)` of `ids` `(n, len)` (token type 0
    /// everywhere). `mask` `(n, len)`, 1 for tokens and 0 for padding, is
    /// needed only when some text is padded.
    pub(crate) fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (n, len) = ids.dims2()?;
        let h = self.hidden;
        let words = self.word.forward(&ids.flatten_all()?)?; // (n*len, h)
        let positions = self.position.narrow(0, 0, len)?;
        let x = words
            .reshape((n, len, h))?
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type_zero)?
            .reshape((n * len, h))?;
        let mut x = self.embedding_norm.forward(&x)?;
        // Additive mask (n, 1, 1, len): 0 for tokens, the most negative f32
        // for padding, as Hugging Face's `get_extended_attention_mask`.
        let additive = match mask {
            Some(m) => {
                let m = m.to_dtype(DType::F32)?;
                Some(((m.ones_like()? - m)? * f64::from(f32::MIN))?.reshape((n, 1, 1, len))?)
            }
            None => None,
        };
        for layer in &self.layers {
            x = self.layer(layer, &x, n, len, additive.as_ref())?;
        }
        x.reshape((n, len, h))
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        n: usize,
        len: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (heads, hs, h) = (self.heads, self.head_size, self.hidden);
        // (n*len, 3h) -> (3, n, heads, len, head_size)
        let qkv = layer
            .qkv
            .forward(x)?
            .reshape((n, len, 3, heads, hs))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?; // (n, heads, len, len), already scaled
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)? // (n, heads, len, head_size)
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n * len, h))?;
        let attended = layer
            .attention_norm
            .forward(&(layer.attention_out.forward(&context)? + x)?)?;
        let inner = layer.intermediate.forward(&attended)?.gelu_erf()?;
        layer
            .output_norm
            .forward(&(layer.output.forward(&inner)? + &attended)?)
    }
}
