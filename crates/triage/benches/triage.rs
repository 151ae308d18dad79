//! One triage decision (rules, classifier, handler, hints) per message.
//! Target: p95 ≤ 50 µs on one core. Besides criterion's figures, prints its
//! own p50/p95/p99 over 20 000 timed decisions of a mixed set as the last
//! line.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use opticlaw_triage::Triage;

const MESSAGES: [&str; 10] = [
    "remind me tomorrow at 9 to pay rent",
    "hello there",
    "how many centimeters are in an inch",
    "please set a timer for 6 minutes",
    "what did Dana say about the budget last week?",
    "book me a flight to Paris next Friday",
    "write a haiku about rust and lifetimes",
    "i think someone stole my credit card, please freeze my account right now",
    "what is 7 x 7",
    "can you summarise the email from ann@example.com about the Q3 report from last month",
];

fn bench(c: &mut Criterion) {
    let triage = Triage::default();
    let now = chrono::Local::now().fixed_offset();
    for (name, text) in [
        ("rule", MESSAGES[0]),
        ("fast_handler", MESSAGES[2]),
        ("planner", MESSAGES[9]),
    ] {
        c.bench_function(&format!("triage_decide/{name}"), |b| {
            b.iter(|| black_box(triage.decide(black_box(text), now)))
        });
    }
}

fn p95() {
    let triage = Triage::default();
    let now = chrono::Local::now().fixed_offset();
    for text in MESSAGES {
        black_box(triage.decide(text, now));
    }
    let mut samples: Vec<u128> = (0..20_000)
        .map(|i| {
            let text = MESSAGES[i % MESSAGES.len()];
            let start = Instant::now();
            black_box(triage.decide(black_box(text), now));
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: usize| samples[samples.len() * q / 100] as f64 / 1000.0;
    println!(
        "triage_decide p50_us={:.2} p95_us={:.2} p99_us={:.2} target_p95_us=50",
        at(50),
        at(95),
        at(99)
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    p95();
}
