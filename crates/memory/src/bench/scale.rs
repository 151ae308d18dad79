//! Synthetic scale bench: query latency with a million records.
//!
//! Records are sentences of words drawn from a Zipf-distributed vocabulary,
//! in threads of 500 turns with speakers; vectors come from the model-free
//! [`HashingEmbedder`] so the bench needs no model and the vector index
//! (HNSW at this size) is exercised. Queries are three to five vocabulary
//! words and go through [`MemoryEngine::search`] (embedding included).
//! The vector index's recall@10 against exact search is measured on the
//! first 100 queries' vectors, as retrieval asks it (100 hits).

use std::fmt;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};

use crate::embed::HashingEmbedder;
use crate::engine::{EngineConfig, MemoryEngine};
use crate::error::Result;
use crate::record::NewMemory;
use crate::retrieve::Query;

/// What [`scale`] measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ScaleReport {
    /// Records in memory.
    pub records: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Seconds to ingest (SQLite, full text, graph).
    pub ingest_secs: f64,
    /// Seconds to embed and index every vector.
    pub index_secs: f64,
    /// Whether the vector index was HNSW.
    pub hnsw: bool,
    /// Recall@10 of the vector index (as retrieval queries it) against
    /// exact search, over sample queries.
    pub vector_recall_at_10: f64,
    /// Queries run.
    pub queries: usize,
    /// Median query latency, ms.
    pub query_p50_ms: f64,
    /// 95th percentile query latency, ms.
    pub query_p95_ms: f64,
    /// Mean CPU time of a query, ms (this process's user + system time
    /// over the query phase; 0 where `/proc` is absent). On a loaded
    /// machine wall time is mostly waiting for a core; this is not.
    pub query_cpu_ms: f64,
}

/// CPU seconds this process has used (user + system), from
/// `/proc/self/stat`; `None` where it cannot be read.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: utime and stime are the
    // 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ingest {:.1}s ({:.0} records/s), vectors {:.1}s (dim {}, hnsw={}, recall@10 {:.3} against exact search)",
            self.ingest_secs,
            self.records as f64 / self.ingest_secs.max(1e-9),
            self.index_secs,
            self.dim,
            self.hnsw,
            self.vector_recall_at_10
        )?;
        write!(
            f,
            "records={} queries={} query_p50_ms={:.2} query_p95_ms={:.2} query_cpu_ms={:.2} ingest_per_s={:.0} index_secs={:.1} vector_recall_at_10={:.3}",
            self.records,
            self.queries,
            self.query_p50_ms,
            self.query_p95_ms,
            self.query_cpu_ms,
            self.records as f64 / self.ingest_secs.max(1e-9),
            self.index_secs,
            self.vector_recall_at_10
        )
    }
}

/// A small deterministic PRNG (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ber", "don", "fel", "gar", "hum", "jin",
    "pol", "wex",
];

fn word(i: usize) -> String {
    let mut w = String::new();
    let mut n = i + 16;
    while n > 0 {
        w.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    w
}

/// Zipf(1) sampler over `n` ranks by inverse CDF on a precomputed table.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / k as f64;
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u)
    }
}

/// Ingest `records` synthetic records into a temporary on-disk store, index
/// `dim`-dimensional vectors, and time `queries` searches.
pub fn scale(records: usize, dim: usize, queries: usize) -> Result<ScaleReport> {
    let dir = std::env::temp_dir().join(format!("opticlaw-memory-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("scale.db");
    let result = run(&path, records, dim, queries);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(path: &std::path::Path, records: usize, dim: usize, queries: usize) -> Result<ScaleReport> {
    let vocab = 50_000;
    let zipf = Zipf::new(vocab);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut engine = MemoryEngine::open_with(path, EngineConfig::default())?;
    let start = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let t0 = Instant::now();
    let batch = 5_000;
    let mut done = 0;
    while done < records {
        let n = batch.min(records - done);
        let news: Vec<NewMemory> = (done..done + n)
            .map(|i| {
                let len = 6 + rng.below(14);
                let text: Vec<String> = (0..len).map(|_| word(zipf.sample(&mut rng))).collect();
                NewMemory::episodic(
                    format!("thread-{}", i / 500),
                    ["Ana", "Bo", "Cy"][i % 3],
                    text.join(" "),
                    start + Duration::minutes(i as i64),
                )
            })
            .collect();
        engine.add_batch(news)?;
        done += n;
    }
    let ingest_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    engine.set_embedder(Box::new(HashingEmbedder::new(dim)))?;
    let index_secs = t1.elapsed().as_secs_f64();
    let texts: Vec<String> = (0..queries)
        .map(|_| {
            let n = 3 + rng.below(3);
            let words: Vec<String> = (0..n).map(|_| word(rng.below(vocab / 4))).collect();
            words.join(" ")
        })
        .collect();
    let mut lat = Vec::with_capacity(queries);
    let cpu0 = process_cpu_secs();
    for text in &texts {
        let q = Query::new(text.as_str(), 20);
        let t = Instant::now();
        engine.search(&q)?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let query_cpu_ms = match (cpu0, process_cpu_secs()) {
        (Some(a), Some(b)) if queries > 0 => (b - a) * 1000.0 / queries as f64,
        _ => 0.0,
    };
    lat.sort_by(f64::total_cmp);
    let vector_recall_at_10 = match engine.vectors.as_ref() {
        Some(index) => {
            let embedder = HashingEmbedder::new(dim);
            let sample: Vec<&str> = texts.iter().take(100).map(String::as_str).collect();
            let vectors = crate::embed::Embedder::embed(&embedder, &sample)?;
            index.recall_at(&vectors, 10, engine.config.fusion.depth)?
        }
        None => 0.0,
    };
    Ok(ScaleReport {
        records,
        dim,
        ingest_secs,
        index_secs,
        hnsw: engine.uses_hnsw(),
        vector_recall_at_10,
        queries,
        query_p50_ms: super::percentile(&lat, 50.0),
        query_p95_ms: super::percentile(&lat, 95.0),
        query_cpu_ms,
    })
}
