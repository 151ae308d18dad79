//! Criterion bench of one classification with the shipped model.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opticlaw_intent::Classifier;

fn classify(c: &mut Criterion) {
    let classifier = Classifier::shipped();
    let mut scratch = classifier.scratch();
    let messages = [
        "set an alarm for 7 am tomorrow",
        "what's the exchange rate between dollars and euros",
        "how many prime numbers are there between 0 and 100",
        "i think someone stole my credit card, please freeze my account right now",
    ];
    c.bench_function("decide", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % messages.len();
            black_box(classifier.decide(black_box(messages[i]), &mut scratch))
        })
    });
    c.bench_function("classify_explained", |b| {
        b.iter(|| black_box(classifier.classify(black_box(messages[0]))))
    });
}

criterion_group!(benches, classify);
criterion_main!(benches);
