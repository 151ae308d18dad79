//! `opticlaw bench ...`: measurements that print their figures, the last
//! line machine-readable.

mod gateway;
mod idle;
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
}

pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Idle(args) => idle::run(args),
        BenchCommand::Gateway(args) => gateway::run(args),
        BenchCommand::Routing(args) => routing::run(args),
        BenchCommand::Triage(args) => triage::run(args),
    }
}
