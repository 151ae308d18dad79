//! The embedded vector index: exact brute force over a contiguous f32
//! matrix while small, an HNSW graph (Unum's `usearch`) beyond a threshold.
//!
//! Vectors are L2-normalised on the way in, so similarity is a dot product
//! (the graph uses usearch's inner-product distance `1 - dot`, which orders
//! unit vectors as L2 and cosine do). Removal is real in both tiers: the
//! matrix drops the row, and the graph unlinks the key (it is never
//! returned again) and overwrites the vector's slot with the next one
//! added. The SQLite blob is the source of truth; the index lives in
//! memory only and is rebuilt from it at open.

use std::collections::HashMap;
use std::sync::Mutex;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{MemoryError, Result};

/// Above this many vectors, searches go through HNSW.
pub const DEFAULT_HNSW_THRESHOLD: usize = 20_000;

/// How the HNSW graph stores its copy of each vector (the exact f32 matrix
/// is kept beside it for brute force, [`VectorIndex::similarity`], exact
/// search and rescoring). Half floats are left out: without usearch's
/// optional SIMD kernels (`numkong`, not built) they were the slowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HnswScalar {
    /// 32-bit floats: exact distances.
    F32,
    /// 8-bit integers: a quarter of the memory (one cache line for 64
    /// dimensions) and coarser distances; [`VectorIndex::search`] rescores
    /// the hits exactly.
    I8,
}

/// Shape of the HNSW graph and of its searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node and layer (usearch keeps twice as many on layer 0).
    pub max_connections: usize,
    /// Candidates explored per insertion.
    pub ef_construction: usize,
    /// Candidates explored per search, as a multiple of the hits asked for
    /// (at least 64).
    pub ef_search_factor: usize,
    /// The graph's copy of the vectors.
    pub scalar: HnswScalar,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            max_connections: 12,
            ef_construction: 40,
            ef_search_factor: 4,
            scalar: HnswScalar::I8,
        }
    }
}

/// The HNSW tier: a usearch index and the search width it is set to
/// (usearch reads the width from the index, so a search that needs another
/// one changes it under this lock).
struct Graph {
    index: Index,
    ef: Mutex<usize>,
    /// Threads that may insert at once (a usearch context each).
    threads: usize,
}

impl Graph {
    fn new(dim: usize, params: &HnswParams) -> Result<Self> {
        let options = IndexOptions {
            dimensions: dim,
            metric: MetricKind::IP,
            quantization: match params.scalar {
                HnswScalar::F32 => ScalarKind::F32,
                HnswScalar::I8 => ScalarKind::I8,
            },
            connectivity: params.max_connections,
            expansion_add: params.ef_construction,
            expansion_search: 64,
            multi: false,
        };
        let index = Index::new(&options).map_err(graph_error)?;
        Ok(Self {
            index,
            ef: Mutex::new(64),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// Make room for `more` vectors (capacity doubles, so one-by-one
    /// insertion does not copy the graph's tables each time), with a
    /// context for each of [`Graph::threads`].
    fn reserve(&self, more: usize) -> Result<()> {
        let need = self.index.size() + more;
        if need > self.index.capacity() {
            let capacity = need.max(self.index.capacity() * 2).max(1024);
            self.index
                .reserve_capacity_and_threads(capacity, self.threads)
                .map_err(graph_error)?;
        }
        Ok(())
    }

    /// Add unit vectors (none of them present), spread over the cores.
    fn add_all(&self, items: &[(i64, &[f32])]) -> Result<()> {
        let threads = self.threads.min(items.len().div_ceil(256)).max(1);
        self.reserve(items.len())?;
        if threads == 1 {
            return items
                .iter()
                .try_for_each(|(seq, v)| self.index.add(*seq as u64, v).map_err(graph_error));
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        loop {
                            // Small chunks handed out in order keep the
                            // threads busy to the end.
                            let at = next.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
                            let Some(chunk) = items.get(at..(at + 64).min(items.len())) else {
                                return Ok(());
                            };
                            for (seq, v) in chunk {
                                self.index.add(*seq as u64, v).map_err(graph_error)?;
                            }
                        }
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(graph_error("insert thread panicked")))
            })
        })
    }

    fn remove(&self, seq: i64) -> Result<()> {
        self.index.remove(seq as u64).map_err(graph_error)?;
        Ok(())
    }

    fn search(&self, q: &[f32], k: usize, ef: usize) -> Result<Vec<VectorHit>> {
        let matches = {
            let mut current = self.ef.lock().unwrap_or_else(|e| e.into_inner());
            if *current != ef {
                self.index.change_expansion_search(ef);
                *current = ef;
            }
            self.index.search(q, k).map_err(graph_error)?
        };
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&key, &d)| VectorHit {
                seq: key as i64,
                score: 1.0 - d,
            })
            .collect())
    }
}

fn graph_error(e: impl std::fmt::Display) -> MemoryError {
    MemoryError::Invalid(format!("vector index: {e}"))
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
    hnsw: Option<Graph>,
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

    /// Live vectors in the HNSW graph, when searches use it.
    pub fn graph_len(&self) -> Option<usize> {
        self.hnsw.as_ref().map(|h| h.index.size())
    }

    /// Vector slots the HNSW graph has used, live or freed (0 without a
    /// graph): removal frees a slot, the next insertion takes it.
    pub fn graph_slots(&self) -> usize {
        self.hnsw.as_ref().map_or(0, |h| h.index.stats().nodes)
    }

    /// Add (or replace) the vector of `seq`.
    pub fn insert(&mut self, seq: i64, vector: &[f32]) -> Result<()> {
        self.insert_many(&[(seq, vector.to_vec())])
    }

    /// Add (or replace) many vectors; HNSW insertion runs in parallel.
    pub fn insert_many(&mut self, items: &[(i64, Vec<f32>)]) -> Result<()> {
        if let Some(bad) = items.iter().find(|(_, v)| v.len() != self.dim) {
            return Err(MemoryError::DimensionMismatch {
                expected: self.dim,
                actual: bad.1.len(),
            });
        }
        let first_new = self.ids.len();
        let mut replaced = Vec::new();
        for (seq, vector) in items {
            let p = match self.pos.get(seq) {
                Some(&p) => {
                    replaced.push(*seq);
                    p
                }
                None => {
                    self.pos.insert(*seq, self.ids.len());
                    self.ids.push(*seq);
                    self.data.resize(self.ids.len() * self.dim, 0.0);
                    self.ids.len() - 1
                }
            };
            let row = &mut self.data[p * self.dim..(p + 1) * self.dim];
            row.copy_from_slice(vector);
            normalise(row);
        }
        match &self.hnsw {
            Some(h) => {
                // A replaced vector leaves the graph and comes back with
                // its new value (usearch keeps one vector per key).
                replaced.sort_unstable();
                replaced.dedup();
                for &seq in &replaced {
                    h.remove(seq)?;
                }
                let fresh: Vec<(i64, &[f32])> = replaced
                    .iter()
                    .map(|s| self.pos[s])
                    .chain(first_new..self.ids.len())
                    .map(|p| (self.ids[p], &self.data[p * self.dim..(p + 1) * self.dim]))
                    .collect();
                h.add_all(&fresh)?;
            }
            None if self.ids.len() > self.threshold => self.build_hnsw()?,
            None => {}
        }
        Ok(())
    }

    fn build_hnsw(&mut self) -> Result<()> {
        self.hnsw = None;
        let graph = Graph::new(self.dim, &self.params)?;
        let items: Vec<(i64, &[f32])> = self
            .ids
            .iter()
            .zip(self.data.chunks_exact(self.dim))
            .map(|(&s, v)| (s, v))
            .collect();
        graph.add_all(&items)?;
        self.hnsw = Some(graph);
        Ok(())
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
            let dim = self.dim;
            self.data.copy_within(last * dim..(last + 1) * dim, p * dim);
            self.pos.insert(moved, p);
        }
        self.ids.pop();
        self.data.truncate(self.ids.len() * self.dim);
        if let Some(Err(e)) = self.hnsw.as_ref().map(|h| h.remove(seq)) {
            // Never leave a forgotten vector findable: rebuild the graph
            // from the matrix, which no longer holds it.
            tracing::warn!("rebuilding the vector graph after a failed removal: {e}");
            if let Err(e) = self.build_hnsw() {
                tracing::warn!("vector graph rebuild failed, searching exactly: {e}");
            }
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
            let ef = (k * self.params.ef_search_factor).max(64);
            // The graph may hold coarser copies (i8): score the hits
            // exactly against the f32 matrix and order them by that.
            let mut hits = h.search(&q, k, ef)?;
            for hit in &mut hits {
                if let Some(&p) = self.pos.get(&hit.seq) {
                    hit.score = dot(&q, &self.data[p * self.dim..(p + 1) * self.dim]);
                }
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq)));
            return Ok(hits);
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

    #[test]
    fn hnsw_replaces_and_truly_removes_vectors() {
        let v = pseudo_random(700, 16, 5);
        let mut idx = VectorIndex::with_threshold(16, 10);
        for (i, x) in v.iter().enumerate().take(40) {
            idx.insert(i as i64, x).unwrap();
        }
        assert!(idx.uses_hnsw());
        // Replacing 3's vector with another: a search for the old one no
        // longer finds 3 as identical, a search for the new one does.
        idx.insert(3, &v[650]).unwrap();
        assert_eq!(idx.len(), 40);
        let old = idx.search(&v[3], 40).unwrap();
        assert!(old.iter().all(|h| h.seq != 3 || h.score < 0.9999));
        let new = idx.search(&v[650], 1).unwrap();
        assert_eq!(new[0].seq, 3);
        assert!(new[0].score > 0.9999);
        // Removed keys leave the graph (its count drops), never come back,
        // and their slots take the next vectors added.
        for seq in [5, 6, 7] {
            idx.remove(seq);
        }
        assert_eq!(idx.graph_len(), Some(37));
        let hits = idx.search(&v[6], 40).unwrap();
        assert_eq!(hits.len(), 37);
        assert!(hits.iter().all(|h| ![5, 6, 7].contains(&h.seq)));
        let slots = idx.graph_slots();
        for (i, x) in v.iter().enumerate().take(103).skip(100) {
            idx.insert(i as i64, x).unwrap();
        }
        assert_eq!(idx.graph_len(), Some(40));
        assert_eq!(idx.graph_slots(), slots, "removed slots are reused");
        assert_eq!(idx.search(&v[101], 1).unwrap()[0].seq, 101);
        // A large batch into a graph first built small is inserted by
        // several threads.
        let batch: Vec<(i64, Vec<f32>)> = (103..700).map(|i| (i as i64, v[i].clone())).collect();
        idx.insert_many(&batch).unwrap();
        assert_eq!(idx.graph_len(), Some(637));
        assert_eq!(idx.search(&v[234], 1).unwrap()[0].seq, 234);
    }
}
