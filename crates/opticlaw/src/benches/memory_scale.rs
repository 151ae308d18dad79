//! `opticlaw bench memory-scale [--records N]`: query latency of the memory
//! engine at a million synthetic records (see `opticlaw_memory::bench::scale`:
//! model-free hashing vectors, HNSW, full text and graph; one file on disk).

use std::process::ExitCode;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Records to ingest before querying
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Dimension of the synthetic vectors
    #[arg(long, default_value_t = 64)]
    dim: usize,
}

pub fn run(args: Args) -> Result<ExitCode> {
    eprintln!(
        "ingesting {} synthetic records (this takes minutes at 1M)",
        args.records
    );
    let report = opticlaw_memory::bench::scale(args.records, args.dim, 500)
        .context("running the memory scale benchmark")?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
