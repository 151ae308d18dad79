//! Time single-query embeddings: `cargo run --release --example embed_speed`.
use opticlaw_memory::embed::local_embedder;
use std::time::Instant;

fn main() {
    let e = local_embedder().expect("model");
    let q = "When did Caroline go to the LGBTQ support group?";
    e.embed(&[q]).unwrap();
    let mut t = Vec::new();
    for _ in 0..50 {
        let s = Instant::now();
        e.embed(&[q]).unwrap();
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(f64::total_cmp);
    println!("single query embed p50={:.2}ms p95={:.2}ms", t[25], t[47]);
    let texts: Vec<String> = (0..64).map(|i| format!("I went to a LGBTQ support group yesterday number {i} and it was so powerful for me.")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let s = Instant::now();
    e.embed(&refs).unwrap();
    println!(
        "batch of 64: {:.1} texts/s",
        64.0 / s.elapsed().as_secs_f64()
    );
}
