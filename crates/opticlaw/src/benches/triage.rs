//! `opticlaw bench triage [FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// A list of [utterance, intent] pairs (default: CLINC150 test + oos_test)
    file: Option<PathBuf>,
}

pub fn run(_args: Args) -> Result<ExitCode> {
    bail!("`opticlaw bench triage` is not built yet")
}
