//! The numeric kernels of OptiClaw's in-process BERT sentence embedder
//! (`opticlaw-memory`, `embed/bert.rs`), over plain `f32` slices: a dense
//! layer whose weights are packed once at load time, the exact-erf GELU,
//! layer norm and multi-head self-attention. A crate of its own so dev
//! builds can optimise it alone (see the workspace's `profile.dev`).
//!
//! A query is ~13 tokens, so the dense layers are skinny matrix products
//! (`M` = tokens, `K`, `N` = 384..1536). A general GEMM (candle's `gemm`)
//! packs the weight matrix on every call, which for so few rows costs more
//! than the arithmetic. Here the weights are packed once, into panels of
//! 16 (AVX2) or 32 (AVX-512) output columns laid out `k`-major, and a
//! register tile of up to 6 (AVX2) or 12 (AVX-512) tokens x one panel
//! streams the panel once:
//! every weight is read once per block of `ROW_BLOCK` tokens, the block's
//! activations stay in L1/L2, and nothing is copied per call.
//!
//! On x86-64 with AVX-512F, or AVX2, FMA and F16C (checked at run time,
//! [`Isa`]), the tiles are written in `std::arch` intrinsics (module
//! `x86`); elsewhere they are plain Rust that LLVM vectorizes as it can.
//! GELU, layer norm and attention are plain Rust (GELU compiled for AVX2 +
//! FMA when present).
//!
//! On AVX2 the packed weights are IEEE half precision, widened to f32 in
//! the tile (`vcvtph2ps`, one per 8 weights shared by the tile's rows);
//! activations and sums stay f32. Measured on a 2-core AMD EPYC (Zen 3,
//! AVX2, no AVX-512), `cargo bench -p opticlaw-memory --bench embed`,
//! alternating runs at load average 4-7: a ~13-token query 9.2-10.6 ->
//! 5.1-7.0 ms of CPU, a 40-token text 19.5-20.5 -> 15.8-17.4 ms. The six
//! layers' f32 weights are ~42 MB, more than the 32 MiB L3 this machine
//! shares with others: a query's 276 MFLOP ran at ~29 GFLOP/s; with f16
//! weights (~21 MB) at ~45-70 GFLOP/s (4-6 ms), near this core's AVX2 peak
//! (2 FMAs of 8 floats a cycle), so a short query is compute-bound now. The
//! embedder's reference vectors still match to cosine 0.9999994 (f32:
//! 0.99999976). AVX-512 and the portable path keep f32 weights (AVX-512
//! was not tried with f16: no such CPU here).

#[cfg(target_arch = "x86_64")]
mod x86;

/// Tokens per block whose activations are reused across all panels:
/// 48 x 1536 floats (the widest input) is 288 KiB, within L2.
const ROW_BLOCK: usize = 48;

/// The instruction set the dense layer runs on, detected once at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (x86-64): 32-column panels, two 16-float registers each.
    Avx512,
    /// AVX2, FMA and F16C (x86-64): 16-column panels of half-precision
    /// weights, widened to two 8-float registers each.
    Avx2Fma,
    /// Anything else: portable code, 16-column panels.
    Portable,
}

impl Isa {
    /// The best this CPU supports, or a lower one named by the environment
    /// variable `OPTICLAW_KERNELS_ISA` (`avx2` or `portable`; for
    /// benchmarks and for testing the fallbacks).
    pub fn detect() -> Self {
        let best = Self::best();
        match std::env::var("OPTICLAW_KERNELS_ISA").as_deref() {
            Ok("portable") => Self::Portable,
            Ok("avx2") if best == Self::Avx512 => Self::Avx2Fma,
            _ => best,
        }
    }

    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                return Self::Avx2Fma;
            }
        }
        Self::Portable
    }

    /// Output columns per packed panel.
    fn panel(self) -> usize {
        match self {
            Self::Avx512 => 32,
            Self::Avx2Fma | Self::Portable => 16,
        }
    }

    /// Whether the weights are stored in half precision.
    fn half(self) -> bool {
        self == Self::Avx2Fma
    }
}

/// Packed weights: `f32`, or IEEE half precision (`f16` bits), which
/// halves the bytes a forward pass streams from memory.
enum Panels {
    F32(Vec<f32>),
    F16(Vec<u16>),
}

/// A dense layer `y = x W^T + b` with `W` packed for [`PackedLinear::forward`].
pub struct PackedLinear {
    input: usize,
    output: usize,
    /// `ceil(output / P)` panels of `input * P` weights (`P` =
    /// `isa.panel()`): panel `p` holds `W[p * P + j][k]` at `k * P + j`
    /// (zero past `output`); half precision where `isa.half()`.
    panels: Panels,
    /// The bias, zero-padded to a whole number of panels.
    bias: Vec<f32>,
    isa: Isa,
}

impl PackedLinear {
    /// Pack `weight`, `(output, input)` row-major as checkpoints store it,
    /// and `bias` (`output` floats), for [`Isa::detect`].
    pub fn new(weight: &[f32], bias: &[f32], input: usize, output: usize) -> Self {
        Self::for_isa(weight, bias, input, output, Isa::detect())
    }

    /// [`PackedLinear::new`] for a given instruction set, which the CPU
    /// must support (else [`PackedLinear::forward`] panics).
    pub fn for_isa(weight: &[f32], bias: &[f32], input: usize, output: usize, isa: Isa) -> Self {
        assert_eq!(
            weight.len(),
            input * output,
            "weight is not (output, input)"
        );
        assert_eq!(bias.len(), output, "bias is not (output)");
        let width = isa.panel();
        let panels = output.div_ceil(width);
        let mut packed = vec![0.0; panels * input * width];
        for (o, row) in weight.chunks_exact(input).enumerate() {
            let panel = &mut packed[(o / width) * input * width..][..input * width];
            for (k, &w) in row.iter().enumerate() {
                panel[k * width + o % width] = w;
            }
        }
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(panels * width, 0.0);
        let packed = if isa.half() {
            Panels::F16(
                packed
                    .iter()
                    .map(|&w| half::f16::from_f32(w).to_bits())
                    .collect(),
            )
        } else {
            Panels::F32(packed)
        };
        Self {
            input,
            output,
            panels: packed,
            bias: padded_bias,
            isa,
        }
    }

    /// `x`: `(rows, input)` row-major; returns `(rows, output)`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(
            x.len() % self.input,
            0,
            "input rows are not {} wide",
            self.input
        );
        let mut out = vec![0.0; x.len() / self.input * self.output];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"));
                // SAFETY: the CPU has AVX-512F (asserted above), the feature
                // `forward_avx512` is compiled for.
                unsafe { x86::forward_avx512(self, x, &mut out) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                assert!(Isa::best() != Isa::Portable);
                // SAFETY: the CPU has AVX2, FMA and F16C (asserted above;
                // AVX-512F CPUs have all three), the features
                // `forward_avx2_f16` is compiled for.
                unsafe { x86::forward_avx2_f16(self, x, &mut out) }
            }
            _ => linear_portable(self, x, &mut out),
        }
        out
    }
}

/// AVX2 and FMA (and F16C: every AVX2 CPU has it, but [`Isa::best`] asks).
fn has_fma() -> bool {
    Isa::best() != Isa::Portable
}

/// How `a * b + c` is computed: fused where the CPU has FMA (one rounding,
/// one instruction), else a multiply and an add (`mul_add` without hardware
/// FMA is a slow library call).
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

struct Plain;
impl MulAdd for Plain {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The layer over panels `P` columns wide (`P` = `layer.isa.panel()`) of
/// weights `W`. Each block of rows is cut into tiles of at most
/// `tile_rows` rows, as even as can be (13 rows in tiles of 6 are 5, 4, 4,
/// not 6, 6, 1: a one-row tile waits on its FMA latency as long as a
/// four-row tile), each tile transposed once (`k`-major: the tile's `n`
/// values at input position `k` are contiguous, so the kernel reads one
/// stream, not `n` rows), then for each panel and tile: `tile(n, panel,
/// bias, transposed tile, target)`.
#[inline(always)]
fn linear<const P: usize, W>(
    layer: &PackedLinear,
    panels: &[W],
    x: &[f32],
    out: &mut [f32],
    tile_rows: usize,
    mut tile: impl FnMut(usize, &[W], &[f32; P], &[f32], Target<'_>),
) {
    debug_assert_eq!(P, layer.isa.panel());
    let (input, output) = (layer.input, layer.output);
    let rows = x.len() / input;
    let panel_len = input * P;
    let mut transposed = vec![0.0; rows.min(ROW_BLOCK) * input];
    for block in (0..rows).step_by(ROW_BLOCK) {
        let block_end = rows.min(block + ROW_BLOCK);
        let block_rows = block_end - block;
        let tiles = block_rows.div_ceil(tile_rows);
        // Tile `i` has `tile_len(i)` rows: the first `block_rows % tiles`
        // tiles one more than the rest.
        let tile_len = |i: usize| block_rows / tiles + usize::from(i < block_rows % tiles);
        let block_x = &x[block * input..block_end * input];
        let mut at = 0;
        for i in 0..tiles {
            let n = tile_len(i);
            let tile_x = &block_x[at * input..(at + n) * input];
            let tile_t = &mut transposed[at * input..(at + n) * input];
            for (t, row) in tile_x.chunks_exact(input).enumerate() {
                for (k, &v) in row.iter().enumerate() {
                    tile_t[k * n + t] = v;
                }
            }
            at += n;
        }
        for (p, (panel, bias)) in panels
            .chunks_exact(panel_len)
            .zip(layer.bias.chunks_exact(P))
            .enumerate()
        {
            let bias: &[f32; P] = bias.try_into().expect("bias chunk is P wide");
            let col = p * P;
            let cols = P.min(output - col);
            let mut at = 0;
            for i in 0..tiles {
                let n = tile_len(i);
                let tile_t = &transposed[at * input..(at + n) * input];
                let row = block + at;
                let out = &mut out[row * output..(row + n) * output];
                let target = Target {
                    out,
                    output,
                    col,
                    cols,
                };
                tile(n, panel, bias, tile_t, target);
                at += n;
            }
        }
    }
}

/// The portable layer: auto-vectorized tiles of up to 6 rows.
fn linear_portable(layer: &PackedLinear, x: &[f32], out: &mut [f32]) {
    let Panels::F32(panels) = &layer.panels else {
        unreachable!("portable panels are f32")
    };
    linear::<16, f32>(
        layer,
        panels,
        x,
        out,
        6,
        |n, panel, bias, xt, target| match n {
            6 => tile_kernel::<6, 16, Plain>(panel, bias, xt, target),
            5 => tile_kernel::<5, 16, Plain>(panel, bias, xt, target),
            4 => tile_kernel::<4, 16, Plain>(panel, bias, xt, target),
            3 => tile_kernel::<3, 16, Plain>(panel, bias, xt, target),
            2 => tile_kernel::<2, 16, Plain>(panel, bias, xt, target),
            _ => tile_kernel::<1, 16, Plain>(panel, bias, xt, target),
        },
    );
}

/// Where a tile's results go: columns `col..col + cols` of `T` rows of
/// `output` floats.
pub(crate) struct Target<'a> {
    pub(crate) out: &'a mut [f32],
    pub(crate) output: usize,
    pub(crate) col: usize,
    pub(crate) cols: usize,
}

impl Target<'_> {
    /// Store row `t` of a tile, `P` values of which the first `cols` are real.
    #[inline(always)]
    pub(crate) fn store<const P: usize>(&mut self, t: usize, row: &[f32; P]) {
        self.out[t * self.output + self.col..][..self.cols].copy_from_slice(&row[..self.cols]);
    }
}

/// `T` tokens x one `P`-column panel: accumulators start at the bias, then
/// for each input position `k` the panel's weight row `k` is multiplied by
/// each token's value there (a broadcast) and added. `xt`: the tile
/// transposed, `xt[k * T + t]`.
#[inline(always)]
fn tile_kernel<const T: usize, const P: usize, F: MulAdd>(
    panel: &[f32],
    bias: &[f32; P],
    xt: &[f32],
    mut target: Target<'_>,
) {
    let mut acc = [*bias; T];
    for (w, xs) in panel.chunks_exact(P).zip(xt.chunks_exact(T)) {
        let w: &[f32; P] = w.try_into().expect("panel row is P wide");
        for (acc, &a) in acc.iter_mut().zip(xs) {
            for (c, w) in acc.iter_mut().zip(w) {
                *c = F::mul_add(a, *w, *c);
            }
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        target.store(t, acc);
    }
}

/// GELU with the exact error function, `x/2 (1 + erf(x/sqrt 2))`, in place.
pub fn gelu_erf(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU reported AVX2 and FMA, the features
        // `gelu_avx2_fma` is compiled for.
        unsafe { gelu_avx2_fma(xs) };
        return;
    }
    gelu::<Plain>(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_avx2_fma(xs: &mut [f32]) {
    gelu::<Fused>(xs);
}

#[inline(always)]
fn gelu<F: MulAdd>(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf::<F>(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The error function in single precision: the rational approximation of
/// Eigen's `generic_fast_erf_float` (also XLA's and TVM's `fast_erf`),
/// `x P(x^2) / Q(x^2)` on `[-4, 4]`, where `|erf| < 1 - 2^-24` ends. Max
/// error against a double-precision erf is checked in the tests below.
/// Branch-free, so the GELU loop vectorizes.
#[inline(always)]
fn erf<F: MulAdd>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = F::mul_add(p, x2, c);
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_473_9e-2,
    ] {
        q = F::mul_add(q, x2, c);
    }
    x * p / q
}

/// Layer norm over each `gamma.len()`-wide row of `xs`, in place (biased
/// variance, as PyTorch's `LayerNorm`).
pub fn layer_norm(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    for row in xs.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// Multi-head self-attention within each of a ragged batch of texts.
/// `qkv`: `(tokens, 3 * hidden)` row-major, each row `[query | key |
/// value]` with the `heads` heads contiguous inside each part and the
/// query already scaled; texts are `lengths` consecutive runs of rows.
/// Returns the context `(tokens, hidden)`.
pub fn attention(qkv: &[f32], lengths: &[usize], heads: usize, hidden: usize) -> Vec<f32> {
    let width = 3 * hidden;
    let head_size = hidden / heads;
    assert_eq!(
        head_size * heads,
        hidden,
        "hidden is not a multiple of heads"
    );
    assert_eq!(
        qkv.len(),
        lengths.iter().sum::<usize>() * width,
        "qkv does not match lengths"
    );
    let mut context = vec![0.0; qkv.len() / 3];
    let mut scores = Vec::new();
    let mut start = 0;
    for &len in lengths {
        let text = &qkv[start * width..(start + len) * width];
        let out = &mut context[start * hidden..(start + len) * hidden];
        for head in 0..heads {
            let q_at = head * head_size;
            let (k_at, v_at) = (hidden + q_at, 2 * hidden + q_at);
            for (i, ctx_row) in out.chunks_exact_mut(hidden).enumerate() {
                let q = &text[i * width + q_at..][..head_size];
                scores.clear();
                scores.extend(
                    text.chunks_exact(width)
                        .map(|row| dot(q, &row[k_at..k_at + head_size])),
                );
                softmax(&mut scores);
                let ctx = &mut ctx_row[q_at..q_at + head_size];
                for (p, row) in scores.iter().zip(text.chunks_exact(width)) {
                    for (c, v) in ctx.iter_mut().zip(&row[v_at..v_at + head_size]) {
                        *c += p * v;
                    }
                }
            }
        }
        start += len;
    }
    context
}

/// Softmax of `xs` in place (max subtracted first).
pub fn softmax(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in xs.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in xs.iter_mut() {
        *x /= sum;
    }
}

/// Dot product, written with 8 independent partial sums so it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (a, b) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for ((s, a), b) in sums.iter_mut().zip(a).zip(b) {
            *s += a * b;
        }
    }
    sums.iter().sum::<f32>() + a_rest.iter().zip(b_rest).map(|(a, b)| a * b).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain `(output, input)` product the packed layer must reproduce,
    /// with the weights rounded as `isa` stores them.
    fn reference(w: &[f32], b: &[f32], x: &[f32], input: usize, isa: Isa) -> Vec<f32> {
        let stored = |w: f32| {
            if isa.half() {
                half::f16::from_f32(w).to_f32()
            } else {
                w
            }
        };
        let mut out = Vec::new();
        for row in x.chunks_exact(input) {
            for (o, wr) in w.chunks_exact(input).enumerate() {
                let s: f64 = wr
                    .iter()
                    .zip(row)
                    .map(|(&w, x)| f64::from(stored(w) * x))
                    .sum();
                out.push(s as f32 + b[o]);
            }
        }
        out
    }

    /// The instruction sets this CPU can run.
    fn isas() -> Vec<Isa> {
        let mut isas = vec![Isa::Portable];
        if Isa::best() != Isa::Portable {
            isas.push(Isa::Avx2Fma);
        }
        if Isa::best() == Isa::Avx512 {
            isas.push(Isa::Avx512);
        }
        isas
    }

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn packed_linear_matches_the_plain_product_for_any_shape() {
        // Outputs not a multiple of the panel, rows not a multiple of the
        // tile nor of the row block (13 rows: tiles of 5, 4, 4; 50: a
        // block of 48 in tiles of 6, then one of 2; 97: 48, 48, 1).
        for isa in isas() {
            for (input, output, rows) in [
                (8, 16, 1),
                (37, 21, 13),
                (24, 33, 7),
                (64, 40, 50),
                (16, 5, 97),
            ] {
                let w = pseudo_random(input * output, 1);
                let b = pseudo_random(output, 2);
                let x = pseudo_random(rows * input, 3);
                let got = PackedLinear::for_isa(&w, &b, input, output, isa).forward(&x);
                let want = reference(&w, &b, &x, input, isa);
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < 1e-4,
                        "{isa:?} {input}x{output}, {rows} rows, [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn half_precision_weights_stay_close_to_the_f32_product() {
        // f16 rounds each weight by at most 2^-11 of itself (unit
        // roundoff), so an output moves by at most 2^-11 sum |w x|; and it
        // does move (weights silently kept in f32 would not).
        let (input, output, rows) = (384, 48, 13);
        let (w, b) = (pseudo_random(input * output, 9), pseudo_random(output, 10));
        let x = pseudo_random(rows * input, 11);
        let exact = reference(&w, &b, &x, input, Isa::Portable);
        let halved = reference(&w, &b, &x, input, Isa::Avx2Fma);
        let mut moved = false;
        for (i, (a, h)) in exact.iter().zip(&halved).enumerate() {
            let (row, o) = (i / output, i % output);
            let magnitude: f32 = x[row * input..][..input]
                .iter()
                .zip(&w[o * input..][..input])
                .map(|(x, w)| (x * w).abs())
                .sum();
            let bound = magnitude / 2048.0 + 1e-5;
            assert!((a - h).abs() <= bound, "[{i}]: {a} vs {h}, bound {bound}");
            moved |= a != h;
        }
        assert!(moved, "f16 storage changed nothing");
    }

    #[test]
    fn every_instruction_set_this_cpu_has_computes_the_same() {
        let (input, output, rows) = (48, 40, 7);
        let (w, b) = (pseudo_random(input * output, 4), pseudo_random(output, 5));
        let x = pseudo_random(rows * input, 6);
        for isa in isas() {
            let got = PackedLinear::for_isa(&w, &b, input, output, isa).forward(&x);
            let want = reference(&w, &b, &x, input, isa);
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 1e-5, "{isa:?}: {a} vs {b}");
            }
        }
    }

    /// erf in double precision from its series of positive terms,
    /// `2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (2n+1)!!` (Abramowitz and
    /// Stegun 7.1.6), accurate to ~1e-15 without cancellation.
    fn erf_f64(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
    }

    #[test]
    fn the_reference_erf_is_right() {
        // Tabulated erf values (A&S table 7.1).
        for (x, want) in [
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (3.0, 0.999_977_909_5),
        ] {
            assert!((erf_f64(x) - want).abs() < 1e-10, "erf({x})");
        }
    }

    #[test]
    fn fast_erf_is_within_a_few_ulp_of_double_precision_erf() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4; // [-6, 6]
            let want = erf_f64(f64::from(x));
            worst = worst.max((f64::from(erf::<Plain>(x)) - want).abs());
            worst = worst.max((f64::from(erf::<Fused>(x)) - want).abs());
        }
        assert!(worst < 5e-7, "max |error| {worst:e}");
    }

    #[test]
    fn gelu_of_known_points() {
        // x/2 (1 + erf(x/sqrt 2)) in double precision.
        let mut xs = [-3.0f32, -1.0, 0.0, 0.5, 1.0, 3.0, 10.0];
        gelu_erf(&mut xs);
        let want = [
            -0.004_049_7,
            -0.158_655_25,
            0.0,
            0.345_731_37,
            0.841_344_7,
            2.995_950_3,
            10.0,
        ];
        for (g, w) in xs.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn attention_stays_within_each_text() {
        // Two texts, one head of size 2 (hidden 2): rows [q q | k k | v v].
        // Text 1 has one token, so its context is its own value whatever
        // the second text holds; text 2's two tokens have equal scores
        // (zero queries), so each context is the mean of their values.
        let qkv = [
            1.0, 1.0, 5.0, 5.0, 10.0, 20.0, //
            0.0, 0.0, 1.0, 0.0, 2.0, 4.0, //
            0.0, 0.0, 0.0, 1.0, 6.0, 8.0,
        ];
        let ctx = attention(&qkv, &[1, 2], 1, 2);
        let want = [10.0, 20.0, 4.0, 6.0, 4.0, 6.0];
        for (g, w) in ctx.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{ctx:?}");
        }
    }

    #[test]
    fn softmax_and_layer_norm_are_normalised() {
        let mut p = [1.0f32, 2.0, 3.0, 1000.0];
        softmax(&mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[3] > 0.999);
        let mut row = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut row, &[1.0; 4], &[0.0; 4], 1e-12);
        let mean: f32 = row.iter().sum::<f32>() / 4.0;
        let var: f32 = row.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{row:?}");
    }

    #[test]
    fn dot_handles_any_length() {
        for n in [0, 1, 7, 8, 9, 32, 33] {
            let a = pseudo_random(n, 7);
            let b = pseudo_random(n, 8);
            let want: f32 = a.iter().zip(&b).map(|(a, b)| a * b).sum();
            assert!((dot(&a, &b) - want).abs() < 1e-5);
        }
    }
}
