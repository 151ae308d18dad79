//! `opticlaw bench ...`: measurements that print their figures, the last
//! line machine-readable.

mod gateway;
mod idle;
mod locomo;
mod memory_scale;
mod routing;
mod triage;

use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Start a daemon on a fresh temporary home and measure it idle
    Idle(idle::Args),
    /// Signed webhooks in, rule replies out through a fake platform, on loopback
    Gateway(gateway::Args),
    /// Replay a mixed trace: tokens spent by our routing against always-large
    Routing(routing::Args),
    /// Triage accuracy, calibration and speed on CLINC150 (or FILE)
    Triage(triage::Args),
    /// Memory recall@k, ingest rate and query latency on LoCoMo conversations
    Locomo(locomo::Args),
    /// Memory query latency at a million synthetic records
    MemoryScale(memory_scale::Args),
}

pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Idle(args) => idle::run(args),
        BenchCommand::Gateway(args) => gateway::run(args),
        BenchCommand::Routing(args) => routing::run(args),
        BenchCommand::Triage(args) => triage::run(args),
        BenchCommand::Locomo(args) => locomo::run(args),
        BenchCommand::MemoryScale(args) => memory_scale::run(args),
    }
}
