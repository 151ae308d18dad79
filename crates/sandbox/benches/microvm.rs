//! MicroVM start-to-exit for `true`, beside the namespace sandbox and a
//! plain `fork`+`exec` of the same program.
//!
//! A microVM boot takes seconds where the others take milliseconds, so
//! this is a plain timed loop (no criterion). Needs `scripts/install-microvm`.
//! The last line is machine-readable:
//! `microvm_true_median_ms=… sandbox_true_median_ms=… fork_exec_median_ms=… accel=… runs=…`.
//! `OPTICLAW_MICROVM_BENCH_RUNS` sets the number of microVM runs (default 5).

use std::process::Command;
use std::time::{Duration, Instant};

use opticlaw_sandbox::microvm::MicroVmSandbox;
use opticlaw_sandbox::{Limits, NamespaceSandbox, RunSpec, Sandbox};

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn time(runs: usize, f: &dyn Fn()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we ignore.
    let vm_runs: usize = std::env::var("OPTICLAW_MICROVM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let cache = tempfile::tempdir().expect("cache dir");
    let vm = match MicroVmSandbox::new(cache.path()) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("microvm bench skipped: {e} (run scripts/install-microvm)");
            return;
        }
    };
    let (accel, why) = vm.accelerator();
    if let Some(why) = why {
        eprintln!("accelerator {}: {why}", accel.name());
    }
    let spec = RunSpec::new(["/bin/true"]).limits(Limits {
        wall_clock: Duration::from_secs(120),
        ..Limits::default()
    });
    // One untimed boot warms the page cache (kernel, initramfs).
    vm.run(&spec).expect("microVM true");
    let boxed_vm = time(vm_runs, &|| {
        let out = vm.run(&spec).expect("microVM true");
        assert!(out.status.success(), "{out:?}");
    });
    for (i, d) in boxed_vm.iter().enumerate() {
        eprintln!("microvm run {i}: {:.0} ms", d.as_secs_f64() * 1e3);
    }

    const RUNS: usize = 100;
    let plain = time(RUNS, &|| {
        Command::new("/bin/true").status().expect("true");
    });
    let namespace = NamespaceSandbox::new().ok().map(|ns| {
        let spec = RunSpec::new(["/bin/true"]);
        time(RUNS, &|| {
            assert!(ns.run(&spec).expect("sandboxed true").status.success());
        })
    });
    let ns_figure = namespace.map_or("unavailable".to_owned(), |s| format!("{:.2}", median_ms(s)));
    println!(
        "microvm_true_median_ms={:.0} sandbox_true_median_ms={ns_figure} fork_exec_median_ms={:.2} accel={} runs={vm_runs}",
        median_ms(boxed_vm),
        median_ms(plain),
        accel.name()
    );
}
