//! A lean BERT encoder for sentence embeddings over plain `f32` slices
//! (kernels in the `opticlaw-kernels` crate; candle only reads the
//! checkpoint). It computes what `candle_transformers::models::bert::
//! BertModel` (and Hugging Face's `BertModel`) compute for the real tokens,
//! minus work an embedder never needs:
//! - query, key and value are one fused projection, and the 1/sqrt(head
//!   size) scale is folded into the query weights;
//! - a batch is ragged, not padded: the dense layers run over every text's
//!   tokens back to back, attention runs within each text, so there is no
//!   padding to compute and no attention mask (with Hugging Face's mask of
//!   `f32::MIN` a padded position gets exactly zero weight, so the real
//!   tokens come out the same);
//! - every dense layer's weights are packed once at load for a small
//!   register-tiled kernel, instead of a general GEMM packing them per call.
//!
//! Measured (`cargo bench -p opticlaw-memory --bench embed`, release, 2
//! shared cores at load average 5-8; CPU time per short ~13-token query):
//! - kept: weights packed once into k-major panels and register-tiled
//!   kernels (AVX-512: 12 tokens x 32 outputs, AVX2: 6 x 16, chosen at run
//!   time) instead of candle's matmul, whose gemm packed the whole weight
//!   matrix on every call: ~15-16 ms -> ~4-4.5 ms (AVX2 alone ~8 ms), a
//!   40-token text ~25-28 -> ~13-15 ms, batches of 32 ~3x the texts/s;
//! - kept: the tiles in `std::arch` intrinsics. The same tiles as plain Rust
//!   left to LLVM's auto-vectorizer came out as scalar FMAs for some tile
//!   heights (AVX-512 path 41 ms, AVX2 7.8 ms);
//! - kept: each tile transposed once per block (one input stream instead of
//!   one per token, no bounds checks in the hot loop): a few percent;
//! - kept: Eigen's rational erf (max error 4.4e-7 against a double-precision
//!   erf; branch-free, so it vectorizes; its gain was not measured apart)
//!   for the exact-erf GELU; the reference test passes at cosine >= 0.999
//!   on every instruction set (`OPTICLAW_KERNELS_ISA`);
//! - kept (2026-11-26, a 2-core Zen 3 with AVX2 and no AVX-512, load
//!   average 4-7, alternating runs): f16 weights on AVX2, widened with F16C
//!   in the tile (`opticlaw-kernels`), halving the ~42 MB of f32 weights a
//!   forward streams: short query 9.2-10.6 -> 5.1-7.0 ms CPU, 40-token
//!   text 19.5-20.5 -> 15.8-17.4 ms CPU; reference cosine 0.9999994. Tiles cut
//!   evenly (13 tokens as 5, 4, 4, not 6, 6, 1): no difference measurable
//!   under that load;
//! - not kept: each layer split over 2 threads, Megatron-style (heads and
//!   intermediate units in two parts, part 1 on a helper thread parked on a
//!   condvar, taken back by the caller when not started in time; commit
//!   "split each BERT layer over two threads" in the history). At load
//!   average 4-7, calls interleaved in one process: wall p50 9.8-12.0 ms vs
//!   9.3-9.6 ms on one thread, CPU 8.0-8.9 vs 4.5-5.9 ms. It may pay on a
//!   quiet machine (not measured: none was); note the engine already
//!   embeds the query on a second thread while the first gathers
//!   full-text and graph candidates, so both cores are busy then.
//!
//! Earlier, on candle's matmul, rejected: q8_0 projections through
//! `candle_core::quantized::QMatMul` (~20x slower: candle compiles its AVX2
//! q8 kernels only under a compile-time `target-feature`), f16 weights
//! through gemm (~2.5x slower), weights pre-transposed for gemm (no faster).
//!
//! Layer layout follows `transformers/models/bert/modeling_bert.py`
//! (`BertEmbeddings`, `BertSelfAttention`, `BertSelfOutput`,
//! `BertIntermediate`, `BertOutput`); tensor names are the checkpoint's.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use opticlaw_kernels::{self as kernels, PackedLinear};

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

/// A tensor's values, row-major.
fn values(t: Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: values(vb.get(size, "weight")?)?,
            beta: values(vb.get(size, "bias")?)?,
            eps: eps as f32,
        })
    }

    fn apply(&self, xs: &mut [f32]) {
        kernels::layer_norm(xs, &self.gamma, &self.beta, self.eps);
    }
}

fn dense(vb: VarBuilder, input: usize, output: usize) -> Result<PackedLinear> {
    let w = values(vb.get((output, input), "weight")?)?;
    let b = values(vb.get(output, "bias")?)?;
    Ok(PackedLinear::new(&w, &b, input, output))
}

struct Layer {
    /// Query (pre-scaled), key and value: `(tokens, 3 * hidden)`.
    qkv: PackedLinear,
    attention_out: PackedLinear,
    attention_norm: LayerNorm,
    intermediate: PackedLinear,
    output: PackedLinear,
    output_norm: LayerNorm,
}

/// The encoder: embeddings and the transformer layers (no pooler).
pub(crate) struct BertEncoder {
    /// `(vocab, hidden)`.
    word: Vec<f32>,
    /// `(max positions, hidden)`, token type 0 already added.
    position: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    vocab: usize,
    max_positions: usize,
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
        let word = values(emb.get((config.vocab_size, h), "word_embeddings.weight")?)?;
        let token_type_zero = emb
            .get((config.type_vocab_size, h), "token_type_embeddings.weight")?
            .narrow(0, 0, 1)?;
        let position = values(
            emb.get(
                (config.max_position_embeddings, h),
                "position_embeddings.weight",
            )?
            .broadcast_add(&token_type_zero)?,
        )?;
        let embedding_norm = LayerNorm::load(emb.pp("LayerNorm"), h, eps)?;
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
            let qkv_w = values(Tensor::cat(&[(qw * scale)?, kw, vw], 0)?)?;
            let qkv_b = values(Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?)?;
            let inter = config.intermediate_size;
            layers.push(Layer {
                qkv: PackedLinear::new(&qkv_w, &qkv_b, h, 3 * h),
                attention_out: dense(attn.pp("output").pp("dense"), h, h)?,
                attention_norm: LayerNorm::load(attn.pp("output").pp("LayerNorm"), h, eps)?,
                intermediate: dense(l.pp("intermediate").pp("dense"), h, inter)?,
                output: dense(l.pp("output").pp("dense"), inter, h)?,
                output_norm: LayerNorm::load(l.pp("output").pp("LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word,
            position,
            embedding_norm,
            layers,
            heads,
            hidden: h,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
        })
    }

    /// Hidden states of every text's tokens, back to back: `(total tokens,
    /// hidden)` row-major, text after text (token type 0 everywhere).
    pub(crate) fn forward(&self, texts: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut x = Vec::with_capacity(total * h);
        for ids in texts {
            if ids.len() > self.max_positions {
                candle_core::bail!(
                    "{} tokens, more than the model's {} positions",
                    ids.len(),
                    self.max_positions
                );
            }
            for (pos, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    candle_core::bail!("token id {id} is outside the vocabulary of {}", self.vocab);
                }
                let word = &self.word[id * h..][..h];
                let position = &self.position[pos * h..][..h];
                x.extend(word.iter().zip(position).map(|(w, p)| w + p));
            }
        }
        self.embedding_norm.apply(&mut x);
        let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        for layer in &self.layers {
            x = self.layer(layer, &x, &lengths);
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: &[f32], lengths: &[usize]) -> Vec<f32> {
        let qkv = layer.qkv.forward(x);
        let context = kernels::attention(&qkv, lengths, self.heads, self.hidden);
        let mut attended = layer.attention_out.forward(&context);
        add(&mut attended, x);
        layer.attention_norm.apply(&mut attended);
        let mut inner = layer.intermediate.forward(&attended);
        kernels::gelu_erf(&mut inner);
        let mut out = layer.output.forward(&inner);
        add(&mut out, &attended);
        layer.output_norm.apply(&mut out);
        out
    }
}

/// `acc += other`, element-wise (a residual connection).
fn add(acc: &mut [f32], other: &[f32]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a += b;
    }
}
