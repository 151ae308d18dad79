//! LoCoMo retrieval benchmark.
//!
//! `cargo run --release -p opticlaw-memory --example locomo [FILE...]`
//! (default: every `*.json` in ../shared/data/locomo/ relative to the
//! workspace root). The last line is machine-readable.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/locomo");
        files = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
    }
    let report = opticlaw_memory::bench::locomo(&files)?;
    println!("{report}");
    Ok(())
}
