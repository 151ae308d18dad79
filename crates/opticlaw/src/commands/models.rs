//! `opticlaw models list|add|test|usage`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List configured providers and model tiers
    List,
}

pub fn run(_home: Option<&Path>, _command: Command) -> Result<ExitCode> {
    bail!("`opticlaw models` is not built yet")
}
