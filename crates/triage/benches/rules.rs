use criterion::{Criterion, criterion_group, criterion_main};
use opticlaw_triage::rules::RuleEngine;

fn evaluate(c: &mut Criterion) {
    let engine = RuleEngine::default();
    let now = chrono::Local::now().fixed_offset();
    for text in [
        "/help",
        "remind me tomorrow at 9 to pay rent",
        "write a haiku about rust",
    ] {
        c.bench_function(&format!("rules_evaluate/{text}"), |b| {
            b.iter(|| engine.evaluate(text, now))
        });
    }
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
