//! Prints the triage bench of the shipped model; the last line is
//! `in_scope_acc=A oos_recall=B ece=C p95_us=D fast_path_share=E model_bytes=F`.
//!
//! `cargo run --release -p opticlaw-intent --example bench_triage [FILE]`
//! (default: CLINC150's test and oos_test; a FILE is a JSON list of
//! `[utterance, intent]` with `oos` for out of scope).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(PathBuf::from);
    let report = opticlaw_intent::bench::run(path.as_deref())?;
    eprintln!(
        "{} in-scope and {} out-of-scope messages",
        report.in_scope, report.out_of_scope
    );
    println!("{report}");
    Ok(())
}
