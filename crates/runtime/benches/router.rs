//! The runtime's own figures: fast-path latency of a rule reply through the
//! whole in-process path (admit, store, route, rule, commit, reply) and the
//! throughput of durable events through the router.
//!
//! `cargo bench -p opticlaw-runtime --bench router` prints one line per
//! path and store durability mode:
//! `path=fast sync=Normal p50_us=.. p95_us=.. p99_us=.. throughput_eps=..`

use std::time::{Duration, Instant};

use opticlaw_core::EventEnvelope;
use opticlaw_runtime::{Runtime, RuntimeConfig};
use opticlaw_store::{StoreHandle, Synchronous};
use opticlaw_triage::rules::RuleEngine;

const LATENCY_SAMPLES: usize = 5_000;
const THROUGHPUT_EVENTS: usize = 100_000;
const CONCURRENT_SENDERS: usize = 512;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

async fn measure(sync: Synchronous, text: &'static str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(&dir.path().join("bench.db"), sync).unwrap();
    let config = RuntimeConfig {
        queue_capacity: 4096,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::start(store, RuleEngine::default(), config)
        .await
        .unwrap();
    let mut replies = runtime.subscribe();

    // Latency: one message at a time, submit to reply.
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES + 200 {
        let event = EventEnvelope::local_text("bench", "latency", text);
        let start = Instant::now();
        runtime.submit(event).await.unwrap();
        replies.recv().await.unwrap();
        if i >= 200 {
            samples.push(start.elapsed());
        }
    }
    samples.sort_unstable();

    // Throughput: many senders at once, until every reply is out.
    let start = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..CONCURRENT_SENDERS {
        let runtime = runtime.clone();
        senders.push(tokio::spawn(async move {
            for i in (sender..THROUGHPUT_EVENTS).step_by(CONCURRENT_SENDERS) {
                let mut event = EventEnvelope::local_text("bench", "throughput", text);
                event.event_id = format!("t{i}");
                loop {
                    match runtime.submit(event.clone()).await {
                        Ok(_) => break,
                        Err(opticlaw_runtime::SubmitError::Busy { .. }) => {
                            tokio::task::yield_now().await
                        }
                        Err(err) => panic!("{err}"),
                    }
                }
            }
        }));
    }
    let mut received = 0;
    while received < THROUGHPUT_EVENTS {
        match replies.recv().await {
            Ok(_) => received += 1,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => received += n as usize,
            Err(err) => panic!("{err}"),
        }
    }
    let elapsed = start.elapsed();
    for sender in senders {
        sender.await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    format!(
        "path={} sync={sync:?} p50_us={:.1} p95_us={:.1} p99_us={:.1} throughput_eps={:.0}",
        if text.starts_with('/') {
            "fast"
        } else {
            "queued"
        },
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        THROUGHPUT_EVENTS as f64 / elapsed.as_secs_f64()
    )
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The rule path answers inline; a message no rule answers goes through
    // the priority queue to a worker (and today gets the no-model notice).
    for (sync, text) in [
        (Synchronous::Normal, "/help"),
        (Synchronous::Normal, "plan my week"),
        (Synchronous::Full, "/help"),
    ] {
        println!("{}", runtime.block_on(measure(sync, text)));
    }
}
