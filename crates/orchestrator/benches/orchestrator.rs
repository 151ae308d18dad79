//! `cargo bench -p opticlaw-orchestrator`: the orchestrator's own cost per
//! node (state transitions, token mint and verify, idempotency key, audit
//! record, scheduling) around a tool that does nothing, and the sandbox's
//! start-to-exit for `true` beside a plain fork+exec.
//!
//! The last line is machine-readable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opticlaw_orchestrator::plans::GraphBuilder;
use opticlaw_orchestrator::tools::{Tool, ToolCall, ToolError};
use opticlaw_orchestrator::{
    BoxFuture, Notifier, Orchestrator, OrchestratorConfig, Parts, State, Timers,
};
use opticlaw_sandbox::{NamespaceSandbox, RunSpec, Sandbox};
use opticlaw_security::approval::Principal;
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::TokenMinter;
use opticlaw_security::{Policy, PolicyConfig};
use opticlaw_store::{StoreHandle, Synchronous};
use serde_json::{Value, json};

/// Wakes the bench when a task reports its end: waiting costs the store
/// nothing, so only the orchestrator's own work is measured.
#[derive(Default)]
struct Finished(tokio::sync::Notify);

impl Notifier for Finished {
    fn notify<'a>(&'a self, _: &'a Principal, _: String) -> BoxFuture<'a, ()> {
        self.0.notify_one();
        Box::pin(async {})
    }
}

/// A tool with no effect: what is measured is everything around it.
struct Noop;

impl Tool for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn scope(&self) -> &'static str {
        "run"
    }
    fn resource(&self, _: &Value) -> Result<String, ToolError> {
        Ok("noop".into())
    }
    fn replay_safe(&self) -> bool {
        true
    }
    fn run(&self, _: &ToolCall<'_>) -> Result<Value, ToolError> {
        Ok(json!({}))
    }
}

fn orchestrator(
    dir: &std::path::Path,
    synchronous: Synchronous,
    finished: Arc<Finished>,
) -> Orchestrator {
    let store = StoreHandle::open_with(
        &dir.join(format!("{synchronous:?}.db")),
        synchronous,
        &[
            opticlaw_security::COMPONENT,
            opticlaw_orchestrator::COMPONENT,
        ],
    )
    .unwrap();
    let policy: PolicyConfig =
        toml::from_str("[[policy]]\ntool = \"noop\"\nscope = \"run\"\ntier = 0\n").unwrap();
    Orchestrator::new(Parts {
        store,
        minter: TokenMinter::new(SigningKey::ephemeral()),
        tools: vec![Arc::new(Noop)],
        policy: Policy::from_config(&policy).unwrap(),
        totp: None,
        notifier: Some(finished),
        timers: Timers::InProcess,
        config: OrchestratorConfig::default(),
    })
}

fn principal() -> Principal {
    Principal {
        source: "bench".into(),
        user_id: "me".into(),
        chat_id: "c".into(),
    }
}

/// CPU time of the whole process (every thread: the runtime, the store's
/// writer, the blocking pool): on a machine shared with other jobs, wall
/// time includes waiting for a core, which this does not.
fn process_cpu() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .expect("process CPU clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}

/// Per-node wall and CPU time of a plan of `n` nodes: a chain (each waits
/// for the previous: latency) or a fan-out (all independent: throughput).
async fn per_node(
    orch: &Orchestrator,
    finished: &Finished,
    n: usize,
    chain: bool,
) -> (Duration, Duration) {
    let mut builder = GraphBuilder::new("bench");
    for i in 0..n {
        let deps: Vec<String> = if chain && i > 0 {
            vec![format!("n{}", i - 1)]
        } else {
            vec![]
        };
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        builder = builder.tool(&format!("n{i}"), &deps, "noop", json!({}));
    }
    let graph = builder.build();
    let (start, start_cpu) = (Instant::now(), process_cpu());
    let task = orch.submit(graph, principal()).await.unwrap();
    finished.0.notified().await;
    let (elapsed, cpu) = (start.elapsed(), process_cpu() - start_cpu);
    let view = orch.load(&task).await.unwrap();
    assert_eq!(view.state, State::Completed);
    (elapsed / n as u32, cpu / n as u32)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // Like the daemon: one thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut figures = Vec::new();
    for synchronous in [Synchronous::Normal, Synchronous::Full] {
        let finished = Arc::new(Finished::default());
        let orch = orchestrator(dir.path(), synchronous, finished.clone());
        runtime.block_on(async {
            per_node(&orch, &finished, 20, true).await; // warm-up
            // A plan of ten steps (what chat requests produce), and a large
            // one: the log read per step grows with the plan.
            let (mut row, mut cpu_row) = (Vec::new(), Vec::new());
            for (n, chain) in [(10, true), (10, false), (100, true), (100, false)] {
                let runs = if n == 10 { 31 } else { 7 };
                let (mut samples, mut cpu) = (Vec::new(), Vec::new());
                for _ in 0..runs {
                    let (wall, used) = per_node(&orch, &finished, n, chain).await;
                    samples.push(wall);
                    cpu.push(used);
                }
                row.push(median(samples));
                cpu_row.push(median(cpu));
            }
            println!(
                "orchestrator, store synchronous={synchronous:?}: per node, 10-step chain {:.0} µs, 10 independent {:.0} µs, 100-step chain {:.0} µs, 100 independent {:.0} µs",
                micros(row[0]),
                micros(row[1]),
                micros(row[2]),
                micros(row[3])
            );
            println!(
                "  process CPU per node (all threads): 10-step chain {:.0} µs, 10 independent {:.0} µs, 100-step chain {:.0} µs, 100 independent {:.0} µs",
                micros(cpu_row[0]),
                micros(cpu_row[1]),
                micros(cpu_row[2]),
                micros(cpu_row[3])
            );
            row.extend(cpu_row);
            figures.push(row);
        });
    }

    const RUNS: usize = 51;
    let fork_exec = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let status = std::process::Command::new("/bin/true").status().unwrap();
                assert!(status.success());
                start.elapsed()
            })
            .collect(),
    );
    let sandbox = NamespaceSandbox::new().ok().map(|sandbox| {
        let spec = RunSpec::new(["/bin/true"]);
        median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    let out = sandbox.run(&spec).unwrap();
                    assert!(out.status.success());
                    start.elapsed()
                })
                .collect(),
        )
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "`true`: sandbox median {} beside plain fork+exec median {:.2} ms ({RUNS} runs each)",
        sandbox.map_or("unavailable".into(), |d| format!("{:.2} ms", ms(d))),
        ms(fork_exec)
    );
    let (normal, full) = (&figures[0], &figures[1]);
    println!(
        "overhead_per_node_us={:.0} overhead_per_node_parallel_us={:.0} overhead_per_node_100_chain_us={:.0} cpu_per_node_us={:.0} cpu_per_node_100_chain_us={:.0} overhead_per_node_full_sync_us={:.0} sandbox_true_median_ms={} fork_exec_true_median_ms={:.2}",
        micros(normal[0]),
        micros(normal[1]),
        micros(normal[2]),
        micros(normal[4]),
        micros(normal[6]),
        micros(full[0]),
        sandbox.map_or("nan".into(), |d| format!("{:.2}", ms(d))),
        ms(fork_exec)
    );
}
