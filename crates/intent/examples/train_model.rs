//! Trains the intent model with the default options and writes it to
//! `crates/intent/model/intent.ocm` (or the path given as first argument).
//!
//! `cargo run --release -p opticlaw-intent --example train_model`

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("model/intent.ocm"));
    let options = opticlaw_intent::train::TrainOptions::default();
    let started = std::time::Instant::now();
    let trained = opticlaw_intent::train::train(&options)?;
    std::fs::write(&out, &trained.bytes)?;
    eprintln!(
        "trained in {:.1}s, wrote {} bytes to {}",
        started.elapsed().as_secs_f64(),
        trained.bytes.len(),
        out.display()
    );
    println!("{}", trained.report);
    Ok(())
}
