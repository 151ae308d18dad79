//! Routing overhead: select + value gate + accounting, no network.
//! Target: p95 under 50 µs. Besides criterion's figures, prints its own
//! p95 over 20 000 timed iterations as the last line.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use opticlaw_models::{
    ModelRouter, ModelsConfig, Price, Protocol, ProviderConfig, Task, Tier, TierConfig,
};

fn router() -> ModelRouter {
    let provider = |name: &str, protocol| ProviderConfig {
        name: name.into(),
        protocol,
        base_url: "http://127.0.0.1:9".into(),
        api_key_env: None,
        api_key_keyring: None,
        api_key_file: None,
        locality: None,
        timeout_ms: 1_000,
    };
    let tier = |tier, provider: &str, model: &str, capability| TierConfig {
        tier,
        provider: provider.into(),
        model: model.into(),
        capability,
        typical_latency_ms: 800,
        max_tokens: 512,
        native_tools: true,
        temperature: 0.7,
    };
    let mut config = ModelsConfig {
        providers: vec![
            provider("ollama", Protocol::Ollama),
            provider("openai", Protocol::Openai),
            provider("anthropic", Protocol::Anthropic),
        ],
        tiers: vec![
            tier(Tier::LocalSmall, "ollama", "qwen2.5:1.5b", 0.35),
            tier(Tier::LocalMedium, "ollama", "qwen2.5:7b", 0.6),
            tier(Tier::CloudPrimary, "openai", "gpt-4o", 0.9),
            tier(Tier::CloudSecondary, "anthropic", "claude-sonnet-4-5", 0.9),
        ],
        ..Default::default()
    };
    config.prices.insert(
        "gpt-4o".into(),
        Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
        },
    );
    config.budget.per_user_daily_usd = Some(1_000.0);
    ModelRouter::new(config).unwrap()
}

/// One routing decision and its bookkeeping, as the daemon does per task.
fn route_once(router: &ModelRouter, task: &Task) {
    let route = router.route(task);
    let selection = route.first().expect("a route");
    router.record_result(&selection.model, &task.domain, true);
    router.record_spend(&task.user_id, selection.est_cost_usd, 1_740_830_400_000);
    black_box(route);
}

fn tasks() -> Vec<Task> {
    (0..16)
        .map(|i| {
            let mut t = Task::new(
                &format!("t{i}"),
                "alice",
                ["chat", "code", "plan", "email"][i % 4],
                (i as f32) / 16.0,
            );
            t.est_input_tokens = 300 + 50 * i as u64;
            t.private = i % 5 == 0;
            t
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let router = router();
    let tasks = tasks();
    let mut i = 0;
    c.bench_function("route_select_gate_account", |b| {
        b.iter(|| {
            i = (i + 1) % tasks.len();
            route_once(&router, &tasks[i]);
        })
    });
}

fn p95() {
    let router = router();
    let tasks = tasks();
    let mut samples: Vec<u128> = (0..20_000)
        .map(|i| {
            let task = &tasks[i % tasks.len()];
            let start = Instant::now();
            route_once(&router, task);
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let p50 = samples[samples.len() / 2] as f64 / 1000.0;
    let p95 = samples[samples.len() * 95 / 100] as f64 / 1000.0;
    let p99 = samples[samples.len() * 99 / 100] as f64 / 1000.0;
    println!("routing_overhead p50_us={p50:.2} p95_us={p95:.2} p99_us={p99:.2} target_p95_us=50");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    p95();
}
