//! `opticlaw bench routing [TRACE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// A mixed trace in the repository's format (default: the one kept in crates/models)
    trace: Option<PathBuf>,
}

pub fn run(_args: Args) -> Result<ExitCode> {
    bail!("`opticlaw bench routing` is not built yet")
}
