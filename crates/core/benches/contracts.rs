use criterion::{Criterion, criterion_group, criterion_main};
use opticlaw_core::{EventEnvelope, TaskGraph};

fn envelope_round_trip(c: &mut Criterion) {
    let event = EventEnvelope::local_text("alice", "main", "remind me in 10 minutes to call Sam");
    let json = serde_json::to_string(&event).unwrap();
    c.bench_function("event_envelope_parse", |b| {
        b.iter(|| serde_json::from_str::<EventEnvelope>(&json).unwrap())
    });
}

fn task_graph_validation(c: &mut Criterion) {
    let nodes: Vec<String> = (0..32)
        .map(|i| {
            let deps = if i == 0 { String::new() } else { format!("\"n{}\"", i - 1) };
            format!(r#"{{"id":"n{i}","kind":"tool","deps":[{deps}],"policy":{{"requires_approval":false}},"budget":{{"max_ms":10,"max_cost":0.0}}}}"#)
        })
        .collect();
    let text = format!(
        r#"{{"task_id":"0192b3a4-0000-7000-8000-000000000001","goal":"g","nodes":[{}]}}"#,
        nodes.join(",")
    );
    c.bench_function("task_graph_from_json_32_nodes", |b| {
        b.iter(|| TaskGraph::from_json(&text).unwrap())
    });
}

criterion_group!(benches, envelope_round_trip, task_graph_validation);
criterion_main!(benches);
