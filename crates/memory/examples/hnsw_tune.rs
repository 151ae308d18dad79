//! HNSW shape against build time and recall on the scale bench's vectors:
//! `cargo run --release -p opticlaw-memory --example hnsw_tune -- N M EF_CONSTRUCTION [f32|i8] EF_FACTOR...`
//! (hashing vectors of 64 dimensions over synthetic Zipf sentences, as
//! `opticlaw bench memory-scale` embeds them). Prints build wall and CPU
//! seconds, then for each factor the mean time of a 100-hit search and
//! recall@10 of 100-hit searches against exact search.

use opticlaw_memory::embed::{Embedder, HashingEmbedder};
use opticlaw_memory::vector::{HnswParams, HnswScalar, VectorIndex};

/// CPU seconds used by this process so far (user + system).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let scalar = match raw.get(3).map(String::as_str) {
        Some("f32") => Some(HnswScalar::F32),
        Some("i8") => Some(HnswScalar::I8),
        _ => None,
    };
    if scalar.is_some() {
        raw.remove(3);
    }
    let args: Vec<usize> = raw.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    let [n, m, ef_c, factors @ ..] = args.as_slice() else {
        return Err("usage: hnsw_tune N M EF_CONSTRUCTION [f32|i8] EF_FACTOR...".into());
    };
    let embedder = HashingEmbedder::new(64);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let text = |next: &mut dyn FnMut() -> u64, len: usize| -> String {
        (0..len)
            .map(|_| {
                // Zipf-ish: rank = floor(50000^u) over 50,000 words.
                let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                format!("w{}", (50_000f64.powf(u)) as usize)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let texts: Vec<String> = (0..*n)
        .map(|_| {
            let len = 6 + (next() % 14) as usize;
            text(&mut next, len)
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let items: Vec<(i64, Vec<f32>)> = (0..).zip(embedder.embed(&refs)?).collect();
    // Queries as the scale bench asks them: words drawn uniformly from the
    // 12,500 most frequent.
    let queries: Vec<String> = (0..100)
        .map(|_| {
            let len = 3 + (next() % 3) as usize;
            (0..len)
                .map(|_| format!("w{}", 1 + next() % 12_500))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let qrefs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let qvecs = embedder.embed(&qrefs)?;
    let params = HnswParams {
        max_connections: *m,
        ef_construction: *ef_c,
        ef_search_factor: 2,
        scalar: scalar.unwrap_or(HnswScalar::F32),
    };
    let mut index = VectorIndex::with_params(64, 0, params);
    let (t, cpu) = (std::time::Instant::now(), cpu_secs());
    index.insert_many(&items)?;
    let build = t.elapsed().as_secs_f64();
    let build_cpu = cpu_secs() - cpu;
    for &factor in factors {
        index.set_ef_search_factor(factor);
        let (t, cpu) = (std::time::Instant::now(), cpu_secs());
        for q in &qvecs {
            index.search(q, 100)?;
        }
        let per_query = t.elapsed().as_secs_f64() * 1000.0 / qvecs.len() as f64;
        let per_query_cpu = (cpu_secs() - cpu) * 1000.0 / qvecs.len() as f64;
        let recall = index.recall_at(&qvecs, 10, 100)?;
        println!(
            "n={n} m={m} ef_c={ef_c} scalar={:?} ef_factor={factor} build_s={build:.1} build_cpu_s={build_cpu:.1} recall@10={recall:.3} ms_per_search={per_query:.3} cpu_ms_per_search={per_query_cpu:.3}",
            params.scalar
        );
    }
    Ok(())
}
