//! Embedding latency with the local all-MiniLM-L6-v2:
//! `cargo bench -p opticlaw-memory --bench embed` (needs
//! `scripts/fetch-embedding-model`). Prints wall-clock p50/p95 and the CPU
//! time the process spent per embedding (the wall clock is noisy on a
//! shared machine; CPU time shows the work) for a short query (~13 tokens),
//! a ~40-token text and a batch of 32 texts; the last line is
//! `key=value ...`.
use std::time::Instant;

use opticlaw_memory::Embedder;
use opticlaw_memory::embed::local_embedder;

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

struct Timing {
    p50: f64,
    p95: f64,
    cpu: f64,
}

/// Embed each of `inputs` in turn (one `embed` call each), `runs` calls in
/// all after one warm-up; times in ms per call.
fn time(e: &dyn Embedder, inputs: &[Vec<&str>], runs: usize) -> Timing {
    time_with(e, inputs, runs, || {})
}

/// Like [`time`], running `between` (untimed, its CPU not counted) before
/// each call.
fn time_with(
    e: &dyn Embedder,
    inputs: &[Vec<&str>],
    runs: usize,
    mut between: impl FnMut(),
) -> Timing {
    e.embed(&inputs[0]).expect("embed");
    let mut t = Vec::with_capacity(runs);
    let mut cpu_ms = 0.0;
    for i in 0..runs {
        between();
        let cpu0 = cpu_secs();
        let s = Instant::now();
        e.embed(&inputs[i % inputs.len()]).expect("embed");
        t.push(s.elapsed().as_secs_f64() * 1000.0);
        cpu_ms += (cpu_secs() - cpu0) * 1000.0;
    }
    let cpu = cpu_ms / runs as f64;
    t.sort_by(f64::total_cmp);
    Timing {
        p50: t[runs / 2],
        p95: t[runs * 95 / 100],
        cpu,
    }
}

fn main() {
    let e = match local_embedder() {
        Ok(e) => e,
        Err(why) => {
            eprintln!("SKIPPED embed bench: {why}");
            return;
        }
    };
    let queries = [
        "When did Caroline go to the LGBTQ support group?",
        "What did Melanie paint recently?",
        "Where did Jon travel for the dance competition?",
        "What is Gina's favourite style of dance?",
    ];
    let texts = [
        "I went to a LGBTQ support group yesterday and it was so powerful, hearing everyone's stories made me feel like I belong and I want to help others too.",
        "Melanie said she finally finished the lake sunrise painting she started last summer, and she is thinking about entering it in the local art fair next month.",
    ];
    let one = |xs: &[&'static str]| xs.iter().map(|x| vec![*x]).collect::<Vec<_>>();
    let query = time(e.as_ref(), &one(&queries), 200);
    // A query as it comes to a daemon: after idle time (the second thread
    // parked) with the weights pushed out of the caches by other work.
    let mut sweep = vec![0u8; 64 << 20];
    let cold = time_with(e.as_ref(), &one(&queries), 100, || {
        for (i, b) in sweep.iter_mut().enumerate().step_by(64) {
            *b = b.wrapping_add(i as u8);
        }
        std::hint::black_box(&sweep);
        std::thread::sleep(std::time::Duration::from_millis(5));
    });
    let text = time(e.as_ref(), &one(&texts), 100);
    let batch: Vec<String> = (0..32)
        .map(|i| format!("{} (turn {i})", texts[i % texts.len()]))
        .collect();
    let batch = vec![batch.iter().map(String::as_str).collect::<Vec<_>>()];
    let batched = time(e.as_ref(), &batch, 10);
    println!(
        "short query (~13 tokens): p50 {:.2} ms, p95 {:.2} ms, CPU {:.2} ms per query",
        query.p50, query.p95, query.cpu
    );
    println!(
        "short query after idle, caches swept: p50 {:.2} ms, p95 {:.2} ms, CPU {:.2} ms per query",
        cold.p50, cold.p95, cold.cpu
    );
    println!(
        "40-token text: p50 {:.2} ms, p95 {:.2} ms, CPU {:.2} ms per text",
        text.p50, text.p95, text.cpu
    );
    println!(
        "batch of 32 such texts: p50 {:.1} ms ({:.0} texts/s)",
        batched.p50,
        32_000.0 / batched.p50
    );
    println!(
        "query_p50_ms={:.2} query_p95_ms={:.2} query_cpu_ms={:.2} cold_query_p50_ms={:.2} cold_query_p95_ms={:.2} text40_p50_ms={:.2} text40_p95_ms={:.2} batch32_texts_per_s={:.0}",
        query.p50,
        query.p95,
        query.cpu,
        cold.p50,
        cold.p95,
        text.p50,
        text.p95,
        32_000.0 / batched.p50
    );
}
