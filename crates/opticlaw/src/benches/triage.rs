//! `opticlaw bench triage [FILE]`: the intent classifier's accuracy,
//! out-of-scope recall, calibration, speed and fast-path share, on
//! CLINC150's test splits or on FILE.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use opticlaw_intent::data::{Clinc150, OOS};
use opticlaw_intent::{Classifier, SHIPPED_MODEL, bench};

#[derive(clap::Args)]
pub struct Args {
    /// A list of [utterance, intent] pairs, `oos` for out of scope (default: CLINC150 test + oos_test)
    file: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let report = match &args.file {
        Some(file) => {
            eprintln!("benching the shipped model on {}", file.display());
            bench::run(Some(file)).with_context(|| format!("benching on {}", file.display()))?
        }
        None => {
            let path = crate::commands::triage::clinc150_path()?;
            let data = Clinc150::load(&path)?;
            let examples: Vec<_> = data.test.into_iter().chain(data.oos_test).collect();
            let oos = examples.iter().filter(|e| e.intent == OOS).count();
            eprintln!(
                "{} in-scope and {oos} out-of-scope messages from {}",
                examples.len() - oos,
                path.display()
            );
            bench::run_with(Classifier::shipped(), SHIPPED_MODEL.len(), &examples)
        }
    };
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
