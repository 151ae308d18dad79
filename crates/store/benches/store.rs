//! Durable accept throughput through the group-commit writer.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opticlaw_core::EventEnvelope;
use opticlaw_store::{StoreHandle, Synchronous, ops};

fn accept_batches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("store_accept");
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let handle = StoreHandle::open(&dir.path().join(format!("{sync:?}.db")), sync).unwrap();
        const CONCURRENT: usize = 256;
        group.throughput(Throughput::Elements(CONCURRENT as u64));
        group.bench_function(format!("{sync:?}_{CONCURRENT}_concurrent"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let calls: Vec<_> = (0..CONCURRENT)
                        .map(|i| {
                            let handle = handle.clone();
                            let event = EventEnvelope::local_text("u", "t", &format!("m{i}"));
                            tokio::spawn(async move {
                                handle
                                    .call(move |conn| ops::accept_event(conn, &event, 0))
                                    .await
                            })
                        })
                        .collect();
                    for call in calls {
                        call.await.unwrap().unwrap();
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, accept_batches);
criterion_main!(benches);
