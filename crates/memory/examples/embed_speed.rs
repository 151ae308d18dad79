//! Time single-query embeddings: `cargo run --release --example embed_speed`.
//! Prints wall-clock p50/p95 and the CPU time the process spent per query
//! (the wall clock is noisy on a shared machine; CPU time shows the work).
use opticlaw_memory::embed::local_embedder;
use std::time::Instant;

/// User + system CPU time of this process in seconds (Linux /proc).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of proc(5) are the 12th and 13th after the name.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn main() {
    let e = local_embedder().expect("model");
    let queries = [
        "When did Caroline go to the LGBTQ support group?",
        "What did Melanie paint recently?",
        "Where did Jon travel for the dance competition?",
        "What is Gina's favourite style of dance?",
    ];
    e.embed(&[queries[0]]).unwrap();
    let n = 200;
    let mut t = Vec::new();
    let cpu0 = cpu_secs();
    for i in 0..n {
        let s = Instant::now();
        e.embed(&[queries[i % queries.len()]]).unwrap();
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu_ms = (cpu_secs() - cpu0) * 1000.0 / n as f64;
    t.sort_by(f64::total_cmp);
    println!(
        "single query embed p50={:.2}ms p95={:.2}ms cpu_per_query={:.2}ms",
        t[n / 2],
        t[n * 95 / 100],
        cpu_ms
    );
    let texts: Vec<String> = (0..64).map(|i| format!("I went to a LGBTQ support group yesterday number {i} and it was so powerful for me.")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let s = Instant::now();
    e.embed(&refs).unwrap();
    println!(
        "batch of 64: {:.1} texts/s",
        64.0 / s.elapsed().as_secs_f64()
    );
}
