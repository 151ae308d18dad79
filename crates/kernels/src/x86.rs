//! The dense layer's register tiles for x86-64 with AVX2 + FMA + F16C
//! (half-precision weights) and with AVX-512F (f32 weights), in
//! `std::arch` intrinsics. LLVM's auto-vectorizer turned the
//! portable tile into scalar FMAs for some tile heights (measured: AVX-512
//! 4x slower than AVX2), so the hot loop is spelled out; the only `unsafe`
//! is the unaligned loads and stores, each from a slice of the right length.

use std::arch::x86_64::{
    __m128i, __m256, __m512, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_set1_ps, _mm256_storeu_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps,
    _mm512_storeu_ps,
};

use super::{PackedLinear, Panels, Target, linear};

/// Tile heights: accumulators (2 per row) + 2 weight registers + a
/// broadcast must fit the register file (16 for AVX2, 32 for AVX-512).
const AVX2_ROWS: usize = 6;
const AVX512_ROWS: usize = 12;

/// The layer on AVX2 + FMA + F16C: 16-column panels of half-precision
/// weights, tiles of up to 6 rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn forward_avx2_f16(layer: &PackedLinear, x: &[f32], out: &mut [f32]) {
    let Panels::F16(panels) = &layer.panels else {
        unreachable!("AVX2 panels are f16")
    };
    linear::<16, u16>(
        layer,
        panels,
        x,
        out,
        AVX2_ROWS,
        |n, panel, bias, xt, target| match n {
            6 => tile_avx2_f16::<6>(panel, bias, xt, target),
            5 => tile_avx2_f16::<5>(panel, bias, xt, target),
            4 => tile_avx2_f16::<4>(panel, bias, xt, target),
            3 => tile_avx2_f16::<3>(panel, bias, xt, target),
            2 => tile_avx2_f16::<2>(panel, bias, xt, target),
            _ => tile_avx2_f16::<1>(panel, bias, xt, target),
        },
    );
}

/// `T` rows x a 16-column panel of half-precision weights: each weight row
/// is widened to two 8-float registers (`vcvtph2ps`, one per 8 weights,
/// shared by the `T` rows' FMAs); see `tile_kernel` in the crate root for
/// what it computes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_avx2_f16<const T: usize>(
    panel: &[u16],
    bias: &[f32; 16],
    xt: &[f32],
    mut target: Target<'_>,
) {
    // SAFETY: `bias` is 16 floats; unaligned loads of 8 at offsets 0 and 8.
    let (b0, b1) = unsafe {
        (
            _mm256_loadu_ps(bias.as_ptr()),
            _mm256_loadu_ps(bias[8..].as_ptr()),
        )
    };
    let mut lo: [__m256; T] = [b0; T];
    let mut hi: [__m256; T] = [b1; T];
    for (w, xs) in panel.chunks_exact(16).zip(xt.chunks_exact(T)) {
        let w: &[u16; 16] = w.try_into().expect("panel row is one panel wide");
        // SAFETY: `w` is 16 halves (32 bytes); unaligned 16-byte loads at
        // offsets 0 and 8 halves.
        let (h0, h1) = unsafe {
            (
                _mm_loadu_si128(w.as_ptr().cast::<__m128i>()),
                _mm_loadu_si128(w[8..].as_ptr().cast::<__m128i>()),
            )
        };
        let (w0, w1) = (_mm256_cvtph_ps(h0), _mm256_cvtph_ps(h1));
        for ((lo, hi), &x) in lo.iter_mut().zip(&mut hi).zip(xs) {
            let a = _mm256_set1_ps(x);
            *lo = _mm256_fmadd_ps(a, w0, *lo);
            *hi = _mm256_fmadd_ps(a, w1, *hi);
        }
    }
    for (t, (lo, hi)) in lo.into_iter().zip(hi).enumerate() {
        let mut row = [0.0f32; 16];
        // SAFETY: `row` is 16 floats; unaligned stores of 8 at offsets 0
        // and 8.
        unsafe {
            _mm256_storeu_ps(row.as_mut_ptr(), lo);
            _mm256_storeu_ps(row[8..].as_mut_ptr(), hi);
        }
        target.store(t, &row);
    }
}

/// The layer on AVX-512F: 32-column panels, tiles of up to 12 rows.
#[target_feature(enable = "avx512f")]
pub(crate) fn forward_avx512(layer: &PackedLinear, x: &[f32], out: &mut [f32]) {
    let Panels::F32(panels) = &layer.panels else {
        unreachable!("AVX-512 panels are f32")
    };
    linear::<32, f32>(
        layer,
        panels,
        x,
        out,
        AVX512_ROWS,
        |n, panel, bias, xt, target| match n {
            12 => tile_avx512::<12>(panel, bias, xt, target),
            11 => tile_avx512::<11>(panel, bias, xt, target),
            10 => tile_avx512::<10>(panel, bias, xt, target),
            9 => tile_avx512::<9>(panel, bias, xt, target),
            8 => tile_avx512::<8>(panel, bias, xt, target),
            7 => tile_avx512::<7>(panel, bias, xt, target),
            6 => tile_avx512::<6>(panel, bias, xt, target),
            5 => tile_avx512::<5>(panel, bias, xt, target),
            4 => tile_avx512::<4>(panel, bias, xt, target),
            3 => tile_avx512::<3>(panel, bias, xt, target),
            2 => tile_avx512::<2>(panel, bias, xt, target),
            _ => tile_avx512::<1>(panel, bias, xt, target),
        },
    );
}

/// Defines a tile kernel `$name::<T>` over f32 weights: `T` rows x a panel
/// of two vectors (`$half` floats each) of type `$vec`; see `tile_kernel`
/// in the crate root for what it computes.
macro_rules! tile {
    ($name:ident, $features:literal, $vec:ty, $half:literal,
     $load:ident, $store:ident, $splat:ident, $fma:ident) => {
        #[inline]
        #[target_feature(enable = $features)]
        fn $name<const T: usize>(
            panel: &[f32],
            bias: &[f32; 2 * $half],
            xt: &[f32],
            mut target: Target<'_>,
        ) {
            // SAFETY: `bias` is 2 * $half floats; unaligned loads of $half
            // at offsets 0 and $half.
            let (b0, b1) = unsafe { ($load(bias.as_ptr()), $load(bias[$half..].as_ptr())) };
            let mut lo: [$vec; T] = [b0; T];
            let mut hi: [$vec; T] = [b1; T];
            for (w, xs) in panel.chunks_exact(2 * $half).zip(xt.chunks_exact(T)) {
                let w: &[f32; 2 * $half] = w.try_into().expect("panel row is one panel wide");
                // SAFETY: `w` is 2 * $half floats; unaligned loads of $half
                // at offsets 0 and $half.
                let (w0, w1) = unsafe { ($load(w.as_ptr()), $load(w[$half..].as_ptr())) };
                for ((lo, hi), &x) in lo.iter_mut().zip(&mut hi).zip(xs) {
                    let a = $splat(x);
                    *lo = $fma(a, w0, *lo);
                    *hi = $fma(a, w1, *hi);
                }
            }
            for (t, (lo, hi)) in lo.into_iter().zip(hi).enumerate() {
                let mut row = [0.0f32; 2 * $half];
                // SAFETY: `row` is 2 * $half floats; unaligned stores of
                // $half at offsets 0 and $half.
                unsafe {
                    $store(row.as_mut_ptr(), lo);
                    $store(row[$half..].as_mut_ptr(), hi);
                }
                target.store(t, &row);
            }
        }
    };
}

tile!(
    tile_avx512,
    "avx512f",
    __m512,
    16,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps
);
