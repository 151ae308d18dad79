//! Benchmarks: LoCoMo retrieval on real conversations, and a synthetic
//! scale bench.

mod locomo;
mod scale;

pub use locomo::{CategoryRecall, LocomoReport, locomo, locomo_with};
pub use scale::{ScaleReport, scale};

/// The p-th percentile (0..=100) of `sorted` (ascending), nearest rank.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
