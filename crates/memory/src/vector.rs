//! The embedded vector index: exact brute force over a contiguous f32
//! matrix while small, an HNSW graph (`hnsw_rs`) beyond a threshold.
//!
//! Vectors are L2-normalised on the way in, so similarity is a dot product
//! (HNSW uses `1 - cos`, which orders unit vectors as L2 distance does).
//! Deletes are tombstones in the HNSW graph (it cannot remove points) and
//! real removals in the brute-force matrix; the SQLite blob is the source of
//! truth and the index is rebuilt from it at open.

use std::collections::{HashMap, HashSet};

use hnsw_rs::prelude::{Distance, Hnsw};

use crate::error::{MemoryError, Result};

/// Above this many vectors, searches go through HNSW.
pub const DEFAULT_HNSW_THRESHOLD: usize = 20_000;

/// Shape of the HNSW graph and of its searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node and layer (`hnsw_rs` keeps twice as many on layer 0).
    pub max_connections: usize,
    /// Candidates explored per insertion.
    pub ef_construction: usize,
    /// Candidates explored per search, as a multiple of the hits asked for
    /// (at least 64).
    pub ef_search_factor: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            max_connections: 12,
            ef_construction: 40,
            ef_search_factor: 4,
        }
    }
}

/// Layers of the HNSW graph (`hnsw_rs` caps it at 16).
const HNSW_MAX_LAYERS: usize = 16;

/// HNSW distance between unit vectors: `1 - cos`, i.e. half the squared L2
/// distance, so it orders neighbours exactly as L2 and cosine do. It uses
/// [`dot`], which LLVM vectorises; `hnsw_rs`'s `DistL2` without its
/// `simdeez_f` feature sums lane by lane and dominated the index build.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// A nearest-neighbour hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    /// Record seq.
    pub seq: i64,
    /// Cosine similarity.
    pub score: f32,
}

/// In-memory vector index keyed by record seq.
pub struct VectorIndex {
    dim: usize,
    threshold: usize,
    params: HnswParams,
    ids: Vec<i64>,
    data: Vec<f32>,
    pos: HashMap<i64, usize>,
    hnsw: Option<Hnsw<'static, f32, UnitCosine>>,
    tombstones: HashSet<i64>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("hnsw", &self.hnsw.is_some())
            .finish()
    }
}

/// Dot product written so LLVM vectorises it (eight independent lanes).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scale `v` to unit length in place (zero vectors stay zero).
pub fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl VectorIndex {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self::with_threshold(dim, DEFAULT_HNSW_THRESHOLD)
    }

    /// An empty index switching to HNSW above `threshold` vectors.
    pub fn with_threshold(dim: usize, threshold: usize) -> Self {
        Self::with_params(dim, threshold, HnswParams::default())
    }

    /// [`VectorIndex::with_threshold`] with the HNSW graph's shape.
    pub fn with_params(dim: usize, threshold: usize, params: HnswParams) -> Self {
        Self {
            dim,
            threshold,
            params,
            ids: Vec::new(),
            data: Vec::new(),
            pos: HashMap::new(),
            hnsw: None,
            tombstones: HashSet::new(),
        }
    }

    /// Change how widely searches explore the HNSW graph (see
    /// [`HnswParams::ef_search_factor`]).
    pub fn set_ef_search_factor(&mut self, factor: usize) {
        self.params.ef_search_factor = factor.max(1);
    }

    /// Dimension of the vectors held.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether searches use the HNSW graph.
    pub fn uses_hnsw(&self) -> bool {
        self.hnsw.is_some()
    }

    /// Add (or replace) the vector of `seq`.
    pub fn insert(&mut self, seq: i64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(MemoryError::DimensionMismatch {
                expected: self.dim,
                actual: vector.len(),
            });
        }
        let mut v = vector.to_vec();
        normalise(&mut v);
        if let Some(&p) = self.pos.get(&seq) {
            self.data[p * self.dim..(p + 1) * self.dim].copy_from_slice(&v);
        } else {
            self.pos.insert(seq, self.ids.len());
            self.ids.push(seq);
            self.data.extend_from_slice(&v);
        }
        match &self.hnsw {
            Some(h) => {
                self.tombstones.remove(&seq);
                h.insert((&v, seq as usize));
            }
            None if self.ids.len() > self.threshold => self.build_hnsw(),
            None => {}
        }
        Ok(())
    }

    /// Add (or replace) many vectors; HNSW insertion runs in parallel.
    pub fn insert_many(&mut self, items: &[(i64, Vec<f32>)]) -> Result<()> {
        if let Some(bad) = items.iter().find(|(_, v)| v.len() != self.dim) {
            return Err(MemoryError::DimensionMismatch {
                expected: self.dim,
                actual: bad.1.len(),
            });
        }
        let mut fresh = Vec::with_capacity(items.len());
        for (seq, vector) in items {
            let mut v = vector.clone();
            normalise(&mut v);
            if let Some(&p) = self.pos.get(seq) {
                self.data[p * self.dim..(p + 1) * self.dim].copy_from_slice(&v);
            } else {
                self.pos.insert(*seq, self.ids.len());
                self.ids.push(*seq);
                self.data.extend_from_slice(&v);
            }
            fresh.push((*seq, v));
        }
        match &self.hnsw {
            Some(h) => {
                for (seq, _) in &fresh {
                    self.tombstones.remove(seq);
                }
                let refs: Vec<(&[f32], usize)> = fresh
                    .iter()
                    .map(|(s, v)| (v.as_slice(), *s as usize))
                    .collect();
                h.parallel_insert_slice(&refs);
            }
            None if self.ids.len() > self.threshold => self.build_hnsw(),
            None => {}
        }
        Ok(())
    }

    fn build_hnsw(&mut self) {
        let n = self.ids.len();
        let h = Hnsw::<f32, UnitCosine>::new(
            self.params.max_connections,
            n.max(1024) * 2,
            HNSW_MAX_LAYERS,
            self.params.ef_construction,
            UnitCosine,
        );
        let items: Vec<(&[f32], usize)> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, &s)| (&self.data[i * self.dim..(i + 1) * self.dim], s as usize))
            .collect();
        h.parallel_insert_slice(&items);
        self.hnsw = Some(h);
        self.tombstones.clear();
    }

    /// Remove the vector of `seq` (a no-op when absent).
    pub fn remove(&mut self, seq: i64) {
        let Some(p) = self.pos.remove(&seq) else {
            return;
        };
        let last = self.ids.len() - 1;
        if p != last {
            let moved = self.ids[last];
            self.ids.swap(p, last);
            let (d, dim) = (&mut self.data, self.dim);
            for i in 0..dim {
                d.swap(p * dim + i, last * dim + i);
            }
            self.pos.insert(moved, p);
        }
        self.ids.pop();
        self.data.truncate(self.ids.len() * self.dim);
        if self.hnsw.is_some() {
            self.tombstones.insert(seq);
        }
    }

    /// `query` normalised, or an error when its dimension is not the index's.
    fn unit_query(&self, query: &[f32]) -> Result<Vec<f32>> {
        if query.len() != self.dim {
            return Err(MemoryError::DimensionMismatch {
                expected: self.dim,
                actual: query.len(),
            });
        }
        let mut q = query.to_vec();
        normalise(&mut q);
        Ok(q)
    }

    /// The `k` most similar vectors to `query`, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<VectorHit>> {
        let q = self.unit_query(query)?;
        if let Some(h) = &self.hnsw {
            let want = k + self.tombstones.len().min(k * 4);
            let ef = (want * self.params.ef_search_factor).max(64);
            let hits = h.search(&q, want, ef);
            return Ok(hits
                .into_iter()
                .map(|n| VectorHit {
                    seq: n.d_id as i64,
                    score: 1.0 - n.distance,
                })
                .filter(|h| !self.tombstones.contains(&h.seq))
                .take(k)
                .collect());
        }
        Ok(self.brute_force(&q, k))
    }

    /// The exact `k` most similar vectors (brute force whatever the mode),
    /// best first: the reference HNSW recall is measured against.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<VectorHit>> {
        Ok(self.brute_force(&self.unit_query(query)?, k))
    }

    /// Recall@`k` of [`VectorIndex::search`] asked for `depth` hits (as
    /// retrieval asks) against exact search, averaged over `queries`: the
    /// share of its top `k` scoring at least the exact `k`-th score (ties
    /// at the boundary count as found).
    pub fn recall_at(&self, queries: &[Vec<f32>], k: usize, depth: usize) -> Result<f64> {
        let mut found = 0usize;
        let mut wanted = 0usize;
        for q in queries {
            let exact = self.exact_search(q, k)?;
            let Some(kth) = exact.last().map(|h| h.score) else {
                continue;
            };
            let approx = self.search(q, depth.max(k))?;
            found += approx
                .iter()
                .take(k)
                .filter(|h| h.score >= kth - 1e-5)
                .count();
            wanted += exact.len();
        }
        Ok(if wanted == 0 {
            1.0
        } else {
            found as f64 / wanted as f64
        })
    }

    fn brute_force(&self, q: &[f32], k: usize) -> Vec<VectorHit> {
        let mut hits: Vec<VectorHit> = self
            .data
            .chunks_exact(self.dim)
            .zip(&self.ids)
            .map(|(v, &seq)| VectorHit {
                seq,
                score: dot(q, v),
            })
            .collect();
        let k = k.min(hits.len());
        if k == 0 {
            return Vec::new();
        }
        hits.select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits
    }

    /// Similarity of `query` to the stored vector of `seq`, if any.
    pub fn similarity(&self, query: &[f32], seq: i64) -> Option<f32> {
        let p = *self.pos.get(&seq)?;
        Some(dot(query, &self.data[p * self.dim..(p + 1) * self.dim]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim)
            .map(|j| ((i * 31 + j * 7) % 13) as f32 - 6.0)
            .collect();
        normalise(&mut v);
        v
    }

    #[test]
    fn nearest_vector_is_itself() {
        let mut idx = VectorIndex::new(16);
        for i in 0..50 {
            idx.insert(i as i64, &unit(i, 16)).unwrap();
        }
        let hit = idx.search(&unit(7, 16), 1).unwrap()[0];
        assert_eq!(hit.seq, 7);
        assert!((hit.score - 1.0).abs() < 1e-5);
    }

    #[test]
    fn wrong_dimension_is_a_clear_error() {
        let mut idx = VectorIndex::new(8);
        let err = idx.insert(1, &[1.0; 9]).unwrap_err();
        assert!(
            err.to_string()
                .contains("index holds 8-dimensional vectors, got 9")
        );
    }

    #[test]
    fn removed_vectors_are_never_returned_in_either_mode() {
        for threshold in [usize::MAX, 10] {
            let mut idx = VectorIndex::with_threshold(16, threshold);
            for i in 0..40 {
                idx.insert(i as i64, &unit(i, 16)).unwrap();
            }
            idx.remove(7);
            let hits = idx.search(&unit(7, 16), 40).unwrap();
            assert!(hits.iter().all(|h| h.seq != 7), "threshold {threshold}");
            assert_eq!(idx.len(), 39);
        }
    }

    fn pseudo_random(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn recall_is_exact_for_brute_force_and_high_for_hnsw() {
        let points = pseudo_random(3_000, 16, 7);
        let queries = pseudo_random(50, 16, 11);
        let items: Vec<(i64, Vec<f32>)> = (0..).zip(points).collect();
        let mut exact = VectorIndex::with_threshold(16, usize::MAX);
        exact.insert_many(&items).unwrap();
        assert_eq!(exact.recall_at(&queries, 10, 100).unwrap(), 1.0);
        let mut hnsw = VectorIndex::with_threshold(16, 100);
        hnsw.insert_many(&items).unwrap();
        assert!(hnsw.uses_hnsw());
        let recall = hnsw.recall_at(&queries, 10, 100).unwrap();
        assert!(recall >= 0.95, "recall@10 {recall}");
        // A search too narrow to find the ten nearest shows as lower recall.
        hnsw.set_ef_search_factor(1);
        let narrow = hnsw.recall_at(&queries, 10, 10).unwrap();
        assert!(narrow <= recall, "narrow {narrow} > {recall}");
    }

    #[test]
    fn hnsw_agrees_with_brute_force_on_the_top_hit() {
        let mut idx = VectorIndex::with_threshold(32, 100);
        for i in 0..500 {
            idx.insert(i as i64, &unit(i * 17 + 3, 32)).unwrap();
        }
        assert!(idx.uses_hnsw());
        let q = unit(17 * 250 + 3, 32);
        let exact = idx.brute_force(&q, 1)[0];
        let approx = idx.search(&q, 5).unwrap();
        assert!((approx[0].score - exact.score).abs() < 1e-4);
    }
}
