//! `opticlaw bench ...`: measurements that print their figures, the last
//! line machine-readable.

mod idle;

use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Start a daemon on a fresh temporary home and measure it idle
    Idle(idle::Args),
}

pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Idle(args) => idle::run(args),
    }
}
