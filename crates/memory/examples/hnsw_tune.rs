//! HNSW shape against build time and recall on the scale bench's vectors:
//! `cargo run --release -p opticlaw-memory --example hnsw_tune -- N M EF_CONSTRUCTION EF_FACTOR...`
//! (hashing vectors of 64 dimensions over synthetic Zipf sentences, as
//! `opticlaw bench memory-scale` embeds them). Prints build seconds, then
//! recall@10 of 100-hit searches against exact search for each factor.

use opticlaw_memory::embed::{Embedder, HashingEmbedder};
use opticlaw_memory::vector::{HnswParams, VectorIndex};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let [n, m, ef_c, factors @ ..] = args.as_slice() else {
        return Err("usage: hnsw_tune N M EF_CONSTRUCTION EF_FACTOR...".into());
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
    };
    let mut index = VectorIndex::with_params(64, 0, params);
    let t = std::time::Instant::now();
    index.insert_many(&items)?;
    let build = t.elapsed().as_secs_f64();
    for &factor in factors {
        index.set_ef_search_factor(factor);
        let t = std::time::Instant::now();
        let recall = index.recall_at(&qvecs, 10, 100)?;
        println!(
            "n={n} m={m} ef_c={ef_c} ef_factor={factor} build_s={build:.1} recall@10={recall:.3} ms_per_query={:.1}",
            t.elapsed().as_secs_f64() * 10.0
        );
    }
    Ok(())
}
