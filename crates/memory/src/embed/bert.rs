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
//! - kept (2026-11-26, same machine, quiet): each layer split over 2
//!   threads, Megatron-style (heads and intermediate units in two parts,
//!   part 1 on a helper thread, taken back by the caller when not started
//!   in time). The first try parked the helper on a condvar between jobs
//!   and lost: waking a parked thread on this VM took longer than half a
//!   sublayer, so the caller took most jobs back (and under load 4-7 it
//!   cost ~3 ms more CPU for no gain). Now the helper stays awake 300 us
//!   after a job or a wake-up, and the caller spins for the helper's half
//!   (up to 5 ms) before parking: short query p50 4.86 -> 2.67-3.04 ms,
//!   p95 6.78 -> 3.70 ms, 40-token text 12.84 -> 8.84-9.05 ms, batches
//!   56 -> 98-104 texts/s (`cargo bench -p opticlaw-memory --bench embed`).
//!   Spinning with `sched_yield` instead of a pause was slower (short query
//!   p50 4.44 ms); a 2 ms awake window stole a core from the next search's
//!   own work. `OPTICLAW_EMBED_THREADS=1` turns the split off.
//!
//! Earlier, on candle's matmul, rejected: q8_0 projections through
//! `candle_core::quantized::QMatMul` (~20x slower: candle compiles its AVX2
//! q8 kernels only under a compile-time `target-feature`), f16 weights
//! through gemm (~2.5x slower), weights pre-transposed for gemm (no faster).
//!
//! Layer layout follows `transformers/models/bert/modeling_bert.py`
//! (`BertEmbeddings`, `BertSelfAttention`, `BertSelfOutput`,
//! `BertIntermediate`, `BertOutput`); tensor names are the checkpoint's.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How long the helper stays awake after a job for the next one.
const HELPER_SPIN: Duration = Duration::from_micros(300);
/// How long the caller spins for the helper's half before parking.
const CALLER_SPIN: Duration = Duration::from_millis(5);

/// One of a layer's `parts` slices (tensor parallelism as in Megatron-LM):
/// its share of the attention heads and of the intermediate units, with
/// the rows of the projections into them and the columns of the
/// projections out of them. Parts need nothing from each other until
/// their outputs are summed, so they run on different threads with one
/// hand-off per sublayer.
struct Part {
    /// This part's heads' query (pre-scaled), key and value:
    /// `(tokens, 3 * hidden / parts)`.
    qkv: PackedLinear,
    /// The attention output projection over this part's context columns
    /// (`hidden / parts` in, `hidden` out; the bias in part 0 only).
    attention_out: PackedLinear,
    /// This part's intermediate units (`hidden` in, `intermediate / parts`
    /// out).
    intermediate: PackedLinear,
    /// The output projection over this part's intermediate units (the
    /// bias in part 0 only).
    output: PackedLinear,
    /// This part's heads and their total width (`hidden / parts`).
    heads: usize,
    width: usize,
}

impl Part {
    /// This part's share of the attention sublayer's output projection
    /// (before the residual).
    fn attention(&self, x: &[f32], lengths: &[usize]) -> Vec<f32> {
        let qkv = self.qkv.forward(x);
        let context = kernels::attention(&qkv, lengths, self.heads, self.width);
        self.attention_out.forward(&context)
    }

    /// This part's share of the feed-forward sublayer's output (before the
    /// residual).
    fn feed_forward(&self, x: &[f32]) -> Vec<f32> {
        let mut inner = self.intermediate.forward(x);
        kernels::gelu_erf(&mut inner);
        self.output.forward(&inner)
    }
}

struct Layer {
    parts: Vec<Part>,
    attention_norm: LayerNorm,
    output_norm: LayerNorm,
}

/// A job for the helper thread: part 1 of a sublayer of layer `layer`.
enum Job {
    Attention {
        layer: usize,
        x: Arc<Vec<f32>>,
        lengths: Arc<Vec<usize>>,
    },
    FeedForward {
        layer: usize,
        x: Arc<Vec<f32>>,
    },
}

impl Job {
    fn run(&self, layers: &[Layer]) -> Vec<f32> {
        match self {
            Job::Attention { layer, x, lengths } => layers[*layer].parts[1].attention(x, lengths),
            Job::FeedForward { layer, x } => layers[*layer].parts[1].feed_forward(x),
        }
    }
}

/// The job slot the calling thread and the helper share.
enum Slot {
    Empty,
    /// Posted by the caller, not yet taken.
    Pending(Job),
    /// Taken by the helper.
    Running,
    Done(Vec<f32>),
    /// The job panicked on the helper (a bug): the caller runs it itself,
    /// so the panic surfaces there instead of leaving it waiting.
    Failed,
    /// The encoder is gone: the helper ends.
    Closed,
}

struct Shared {
    slot: Mutex<Slot>,
    /// Signals the helper: a job was posted, or the slot closed.
    posted: Condvar,
    /// Signals the caller: the helper finished a job.
    finished: Condvar,
}

/// A second thread that computes part 1 of each sublayer while the
/// calling thread computes part 0. Between passes it sleeps on a condition
/// variable (no timer); within a pass it stays awake for [`HELPER_SPIN`]
/// after each job or wake-up, since the next sublayer comes sooner than a
/// parked thread wakes. It ends when the encoder is dropped. A job the
/// helper has not started by the time the caller is done with its own part
/// (the other core is busy elsewhere) is taken back and run by the caller,
/// so a loaded machine costs the split one hand-off, not a wait for a
/// scheduler slot.
struct Helper {
    shared: Arc<Shared>,
    /// Held by one forward pass at a time; a concurrent pass runs alone.
    in_use: Mutex<()>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    /// The helper, unless this machine has one core, the environment says
    /// `OPTICLAW_EMBED_THREADS=1`, or the thread cannot be started.
    fn start(layers: &Arc<Vec<Layer>>) -> Option<Self> {
        if !two_threads_allowed() || layers.iter().any(|l| l.parts.len() != 2) {
            return None;
        }
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Empty),
            posted: Condvar::new(),
            finished: Condvar::new(),
        });
        let (for_thread, layers) = (Arc::clone(&shared), Arc::clone(layers));
        let thread = std::thread::Builder::new()
            .name("opticlaw-embed".into())
            .spawn(move || helper_loop(&for_thread, &layers))
            .ok()?;
        Some(Self {
            shared,
            in_use: Mutex::new(()),
            thread: Some(thread),
        })
    }
}

/// Whether a forward pass may use a second thread: the machine has two
/// cores and `OPTICLAW_EMBED_THREADS` does not say 1.
fn two_threads_allowed() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let allowed = std::env::var("OPTICLAW_EMBED_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2);
    cores >= 2 && allowed >= 2
}

/// Lock `slot`, whatever a panicking holder left in it (the slot's states
/// stay valid across a panic).
fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

fn helper_loop(shared: &Shared, layers: &[Layer]) {
    let mut slot = lock(&shared.slot);
    // When it last ran or was woken for a job.
    let mut last_job: Option<Instant> = None;
    loop {
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Pending(job) => {
                *slot = Slot::Running;
                drop(slot);
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(layers)));
                slot = lock(&shared.slot);
                *slot = out.map_or(Slot::Failed, Slot::Done);
                shared.finished.notify_one();
                last_job = Some(Instant::now());
            }
            Slot::Closed => return,
            other => {
                *slot = other;
                // The next sublayer of the same pass comes within
                // microseconds: waking a parked thread takes longer than
                // half a sublayer on a VM, so stay awake briefly after a
                // job (never when idle: the first job of a pass wakes it).
                if last_job.is_some_and(|t| t.elapsed() < HELPER_SPIN) {
                    drop(slot);
                    std::hint::spin_loop();
                    slot = lock(&shared.slot);
                    continue;
                }
                slot = shared.posted.wait(slot).unwrap_or_else(|p| p.into_inner());
                // Woken for a job the caller may already have taken back:
                // stay for the next one rather than park at once again.
                last_job = Some(Instant::now());
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        *lock(&self.shared.slot) = Slot::Closed;
        self.shared.posted.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Which threads a forward pass runs a sublayer's parts on.
enum Runner<'a> {
    /// Both parts (or the only one) on the calling thread.
    Alone,
    /// Part 1 on the helper thread (unless taken back).
    Paired(&'a Shared),
}

impl Runner<'_> {
    /// The sum of every part's `local` output, part 1's computed by `job`
    /// on the helper when paired.
    fn sum(&self, parts: &[Part], job: Job, local: impl Fn(&Part) -> Vec<f32>) -> Vec<f32> {
        let mut outs = match (self, parts) {
            (Runner::Paired(shared), [first, second]) => {
                *lock(&shared.slot) = Slot::Pending(job);
                shared.posted.notify_one();
                let mine = local(first);
                let mut slot = lock(&shared.slot);
                let waited = Instant::now();
                let other = loop {
                    match std::mem::replace(&mut *slot, Slot::Empty) {
                        // Not started: take it back.
                        Slot::Pending(_) | Slot::Failed => {
                            drop(slot);
                            break local(second);
                        }
                        Slot::Done(out) => break out,
                        running => {
                            *slot = running;
                            // The helper's half is about as long as ours and
                            // already under way: spin for it rather than
                            // park and pay a wake-up.
                            if waited.elapsed() < CALLER_SPIN {
                                drop(slot);
                                std::hint::spin_loop();
                                slot = lock(&shared.slot);
                                continue;
                            }
                            slot = shared
                                .finished
                                .wait(slot)
                                .unwrap_or_else(|p| p.into_inner());
                        }
                    }
                };
                vec![mine, other]
            }
            _ => parts.iter().map(&local).collect(),
        }
        .into_iter();
        let mut out = outs.next().expect("a layer has a part");
        for other in outs {
            add(&mut out, &other);
        }
        out
    }
}

/// Load a dense layer from `vb`: `weight` `(output, input)` and `bias`.
fn dense(vb: &VarBuilder, input: usize, output: usize) -> Result<(Tensor, Tensor)> {
    Ok((vb.get((output, input), "weight")?, vb.get(output, "bias")?))
}

fn packed(w: &Tensor, b: &Tensor) -> Result<PackedLinear> {
    let (output, input) = w.dims2()?;
    Ok(PackedLinear::new(
        &values(w.clone())?,
        &values(b.clone())?,
        input,
        output,
    ))
}

/// The encoder: embeddings and the transformer layers (no pooler).
pub(crate) struct BertEncoder {
    /// `(vocab, hidden)`.
    word: Vec<f32>,
    /// `(max positions, hidden)`, token type 0 already added.
    position: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Arc<Vec<Layer>>,
    /// Started at the first forward pass.
    helper: OnceLock<Option<Helper>>,
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
        let inter = config.intermediate_size;
        // Two parts where heads and intermediate units split evenly.
        let parts = if heads % 2 == 0 && inter % 2 == 0 {
            2
        } else {
            1
        };
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
            let (qw, qb) = dense(&attn.pp("self").pp("query"), h, h)?;
            let (qw, qb) = ((qw * scale)?, (qb * scale)?);
            let (kw, kb) = dense(&attn.pp("self").pp("key"), h, h)?;
            let (vw, vb_) = dense(&attn.pp("self").pp("value"), h, h)?;
            let (ow, ob) = dense(&attn.pp("output").pp("dense"), h, h)?;
            let (iw, ib) = dense(&l.pp("intermediate").pp("dense"), h, inter)?;
            let (fw, fb) = dense(&l.pp("output").pp("dense"), inter, h)?;
            let (hp, ip) = (h / parts, inter / parts);
            let mut layer_parts = Vec::with_capacity(parts);
            for p in 0..parts {
                // Rows of the projections into the part, columns of those
                // out of it; the output biases once, in part 0.
                let rows = |t: &Tensor, n: usize| t.narrow(0, p * n, n);
                let qkv_w = Tensor::cat(&[rows(&qw, hp)?, rows(&kw, hp)?, rows(&vw, hp)?], 0)?;
                let qkv_b = Tensor::cat(&[rows(&qb, hp)?, rows(&kb, hp)?, rows(&vb_, hp)?], 0)?;
                let bias_once = |b: &Tensor| {
                    if p == 0 {
                        Ok(b.clone())
                    } else {
                        b.zeros_like()
                    }
                };
                layer_parts.push(Part {
                    qkv: packed(&qkv_w, &qkv_b)?,
                    attention_out: packed(&ow.narrow(1, p * hp, hp)?, &bias_once(&ob)?)?,
                    intermediate: packed(&rows(&iw, ip)?, &rows(&ib, ip)?)?,
                    output: packed(&fw.narrow(1, p * ip, ip)?, &bias_once(&fb)?)?,
                    heads: heads / parts,
                    width: hp,
                });
            }
            layers.push(Layer {
                parts: layer_parts,
                attention_norm: LayerNorm::load(attn.pp("output").pp("LayerNorm"), h, eps)?,
                output_norm: LayerNorm::load(l.pp("output").pp("LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word,
            position,
            embedding_norm,
            layers: Arc::new(layers),
            helper: OnceLock::new(),
            hidden: h,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
        })
    }

    /// Hidden states of every text's tokens, back to back: `(total tokens,
    /// hidden)` row-major, text after text (token type 0 everywhere).
    /// Whether a forward pass runs on two threads (both cores of a
    /// two-core machine).
    pub(crate) fn uses_two_threads(&self) -> bool {
        self.layers.iter().all(|l| l.parts.len() == 2) && two_threads_allowed()
    }

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
        let lengths = Arc::new(texts.iter().map(|t| t.len()).collect::<Vec<_>>());
        let helper = self.helper.get_or_init(|| Helper::start(&self.layers));
        // The helper serves one pass at a time: a concurrent pass (or one
        // after a panic poisoned the lock) runs alone.
        let guard = helper
            .as_ref()
            .and_then(|h| Some((h.in_use.try_lock().ok()?, &*h.shared)));
        let runner = guard
            .as_ref()
            .map_or(Runner::Alone, |(_, shared)| Runner::Paired(shared));
        let mut x = Arc::new(x);
        for i in 0..self.layers.len() {
            x = Arc::new(self.layer(i, x, &lengths, &runner));
        }
        drop(guard);
        Ok(Arc::try_unwrap(x).unwrap_or_else(|shared| shared.to_vec()))
    }

    fn layer(
        &self,
        i: usize,
        x: Arc<Vec<f32>>,
        lengths: &Arc<Vec<usize>>,
        runner: &Runner<'_>,
    ) -> Vec<f32> {
        let layer = &self.layers[i];
        let job = Job::Attention {
            layer: i,
            x: Arc::clone(&x),
            lengths: Arc::clone(lengths),
        };
        let mut attended = runner.sum(&layer.parts, job, |p| p.attention(&x, lengths));
        add(&mut attended, &x);
        layer.attention_norm.apply(&mut attended);
        let attended = Arc::new(attended);
        let job = Job::FeedForward {
            layer: i,
            x: Arc::clone(&attended),
        };
        let mut out = runner.sum(&layer.parts, job, |p| p.feed_forward(&attended));
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
