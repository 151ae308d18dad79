//! `opticlaw triage train|explain`.

use std::process::ExitCode;

use anyhow::{Result, bail};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show how a message would be triaged, and why
    Explain { text: String },
}

pub fn run(_command: Command) -> Result<ExitCode> {
    bail!("`opticlaw triage` is not built yet")
}
