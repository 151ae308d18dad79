//! `opticlaw bench routing [TRACE]`: replays a mixed trace through our
//! routing and through "everything to the large model with the full
//! context", and prints `no_llm_share=… tokens_per_msg=…
//! always_large_tokens_per_msg=… ratio=… idle_calls=…` as its last line.
//!
//! The cheap path is the daemon's own triage ([`Triage`]: the built-in rules,
//! then the tiny classifier and its fast handlers): a message counts as
//! answered without a model exactly when the daemon would answer it without
//! one, i.e. when triage routes it to `FAST_REPLY`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use opticlaw_models::bench::{self, CheapPath};
use opticlaw_triage::{Route, Triage};

#[derive(clap::Args)]
pub struct Args {
    /// A mixed trace in the repository's format (default: the one kept in crates/models)
    trace: Option<PathBuf>,
}

/// The daemon's triage as the bench's cheap path.
pub struct TriageCheapPath {
    triage: Triage,
}

impl TriageCheapPath {
    /// The built-in rules and the shipped classifier, as a fresh daemon has.
    pub fn builtin() -> Self {
        Self {
            triage: Triage::default(),
        }
    }
}

impl CheapPath for TriageCheapPath {
    fn answers(&self, text: &str) -> bool {
        let now = chrono::Local::now().fixed_offset();
        self.triage.decide(text, now).route == Route::FastReply
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let report = bench::routing_with(args.trace.as_deref(), Arc::new(TriageCheapPath::builtin()))
        .with_context(|| match &args.trace {
        Some(path) => format!("replaying {}", path.display()),
        None => "replaying the repository's mixed trace".to_owned(),
    })?;
    println!(
        "messages={} answered_without_llm={} small_calls={} medium_calls={} large_calls={} (cheap path: the daemon's triage: rules, then the tiny classifier)",
        report.messages,
        report.answered_without_llm,
        report.small_calls,
        report.medium_calls,
        report.large_calls
    );
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_answers_commands_reminders_and_small_talk_only() {
        let cheap = TriageCheapPath::builtin();
        assert!(cheap.answers("/help"));
        assert!(cheap.answers("remind me in 10 minutes to call Sam"));
        assert!(cheap.answers("hello there"));
        assert!(!cheap.answers("What's the capital of Australia?"));
    }
}
