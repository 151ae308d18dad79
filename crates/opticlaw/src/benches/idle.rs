//! `opticlaw bench idle`: RSS, thread wake-ups and CPU of an idle daemon,
//! and the median time from `serve` to ready over repeated starts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::procfs;

#[derive(clap::Args)]
pub struct Args {
    /// Length of the idle window
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Starts over which the ready time's median is taken
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Time the daemon gets to settle before the window opens
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
}

struct Daemon {
    child: Child,
    ready_after: Duration,
}

impl Daemon {
    fn start(home: &std::path::Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the opticlaw binary")?;
        let started = Instant::now();
        let mut child = Command::new(exe)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("OPTICLAW_HOME", home)
            .env("OPTICLAW_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `opticlaw serve`")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .context("reading the daemon's ready line")?;
        let ready_after = started.elapsed();
        if !line.contains("ready") {
            let _ = child.kill();
            bail!("the daemon did not become ready: {line:?}");
        }
        Ok(Self { child, ready_after })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) -> Result<()> {
        #[cfg(unix)]
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        #[cfg(not(unix))]
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let home = tempfile::tempdir().context("creating a temporary home")?;
    let exe = std::env::current_exe()?;
    let init = Command::new(&exe)
        .args(["init"])
        .env("OPTICLAW_HOME", home.path())
        .stdout(Stdio::null())
        .status()?;
    if !init.success() {
        bail!("`opticlaw init` failed in {}", home.path().display());
    }

    let mut ready = Vec::with_capacity(args.starts);
    for _ in 0..args.starts.max(1) {
        let daemon = Daemon::start(home.path())?;
        ready.push(daemon.ready_after);
        daemon.stop()?;
    }
    ready.sort_unstable();
    let ready_ms = ready[ready.len() / 2].as_secs_f64() * 1e3;
    println!(
        "ready: median {ready_ms:.2} ms over {} starts (min {:.2}, max {:.2})",
        ready.len(),
        ready[0].as_secs_f64() * 1e3,
        ready[ready.len() - 1].as_secs_f64() * 1e3
    );

    let daemon = Daemon::start(home.path())?;
    let pid = daemon.pid();
    // The window measures the daemon alone: this process only reads /proc.
    std::thread::sleep(Duration::from_secs(args.settle_secs));
    let switches_before = procfs::context_switches(pid).context("reading /proc (Linux only)")?;
    let ticks_before = procfs::cpu_ticks(pid).unwrap_or(0);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let elapsed = window.elapsed().as_secs_f64();
    let switches = procfs::context_switches(pid).unwrap_or(0) - switches_before;
    let ticks = procfs::cpu_ticks(pid).unwrap_or(0) - ticks_before;
    let rss_mb = procfs::rss_bytes(pid).unwrap_or(0) as f64 / 1_048_576.0;
    let threads = procfs::thread_count(pid).unwrap_or(0);
    daemon.stop()?;

    let ticks_per_sec = clock_ticks_per_second();
    let cpu_pct = ticks as f64 / ticks_per_sec / elapsed * 100.0;
    let wakeups_per_min = switches as f64 / elapsed * 60.0;
    println!(
        "idle window: {elapsed:.1} s, {threads} threads, {switches} context switches, {ticks} CPU ticks"
    );
    println!(
        "rss_mb={rss_mb:.1} wakeups_per_min={wakeups_per_min:.1} cpu_pct={cpu_pct:.2} ready_ms={ready_ms:.1}"
    );
    Ok(ExitCode::SUCCESS)
}

fn clock_ticks_per_second() -> f64 {
    #[cfg(target_os = "linux")]
    if let Ok(Some(ticks)) = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        return ticks as f64;
    }
    100.0
}
