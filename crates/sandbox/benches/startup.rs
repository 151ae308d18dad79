//! Sandbox start-up overhead: `/bin/true` through [`NamespaceSandbox`] beside
//! a plain `fork`+`exec` of the same program.
//!
//! After criterion's report, prints one machine-readable last line:
//! `sandbox_true_median_ms=… fork_exec_median_ms=… sandbox_proxied_true_median_ms=… runs=…`
//! (the last with a host grant: the run's egress proxy is set up and torn
//! down around it).

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use opticlaw_sandbox::egress::Egress;
use opticlaw_sandbox::{NamespaceSandbox, Network, RunSpec, Sandbox};

fn bench_startup(c: &mut Criterion) {
    let sandbox = NamespaceSandbox::new().expect("namespaces available");
    let spec = RunSpec::new(["/bin/true"]);
    let mut group = c.benchmark_group("startup");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("fork_exec_true", |b| {
        b.iter(|| Command::new("/bin/true").status().expect("true"))
    });
    group.bench_function("namespace_sandbox_true", |b| {
        b.iter(|| sandbox.run(&spec).expect("sandboxed true"))
    });
    group.finish();
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn summary() {
    const RUNS: usize = 100;
    let sandbox = NamespaceSandbox::new().expect("namespaces available");
    let spec = RunSpec::new(["/bin/true"]);
    let time = |f: &dyn Fn()| {
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect::<Vec<_>>()
    };
    let plain = time(&|| {
        Command::new("/bin/true").status().expect("true");
    });
    let boxed = time(&|| {
        let out = sandbox.run(&spec).expect("sandboxed true");
        assert!(out.status.success());
    });
    let granted = Egress::parse(["example.com"]).expect("a host grant");
    let proxied_spec = spec.clone().network(Network::Proxied(granted));
    let proxied = time(&|| {
        let out = sandbox
            .run(&proxied_spec)
            .expect("sandboxed true with a proxy");
        assert!(out.status.success());
    });
    println!(
        "sandbox_true_median_ms={:.2} fork_exec_median_ms={:.2} sandbox_proxied_true_median_ms={:.2} runs={RUNS}",
        median_ms(boxed),
        median_ms(plain),
        median_ms(proxied)
    );
}

criterion_group!(benches, bench_startup);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
