//! Synthetic scale bench: `cargo run --release -p opticlaw-memory --example scale [RECORDS] [DIM]`
//! (defaults: 1,000,000 records, 64 dimensions). The last line is machine-readable.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dim = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let report = opticlaw_memory::bench::scale(records, dim, 500)?;
    println!("{report}");
    Ok(())
}
