//! `opticlaw bench routing [TRACE]`: replays a mixed trace through our
//! routing and through "everything to the large model with the full
//! context", and prints `no_llm_share=… tokens_per_msg=…
//! always_large_tokens_per_msg=… ratio=… idle_calls=…` as its last line.
//!
//! The cheap path is the daemon's own rule layer ([`RuleEngine`] with the
//! built-in rules): a message counts as answered without a model exactly
//! when the daemon would answer it without one, i.e. when
//! `evaluate(..).action != RuleAction::NeedsModel`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use opticlaw_models::bench::{self, CheapPath};
use opticlaw_triage::rules::{RuleAction, RuleEngine};

#[derive(clap::Args)]
pub struct Args {
    /// A mixed trace in the repository's format (default: the one kept in crates/models)
    trace: Option<PathBuf>,
}

/// The daemon's rule layer as the bench's cheap path.
pub struct RulesCheapPath {
    rules: RuleEngine,
}

impl RulesCheapPath {
    /// The built-in rules (slash commands, reminders), as a fresh daemon has.
    pub fn builtin() -> Self {
        Self {
            rules: RuleEngine::default(),
        }
    }
}

impl CheapPath for RulesCheapPath {
    fn answers(&self, text: &str) -> bool {
        let now = chrono::Local::now().fixed_offset();
        self.rules.evaluate(text, now).action != RuleAction::NeedsModel
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let report = bench::routing_with(args.trace.as_deref(), Arc::new(RulesCheapPath::builtin()))
        .with_context(|| match &args.trace {
            Some(path) => format!("replaying {}", path.display()),
            None => "replaying the repository's mixed trace".to_owned(),
        })?;
    println!(
        "messages={} answered_without_llm={} small_calls={} medium_calls={} large_calls={} (cheap path: the daemon's built-in rules)",
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
    fn rules_answer_commands_and_reminders_only() {
        let cheap = RulesCheapPath::builtin();
        assert!(cheap.answers("/help"));
        assert!(cheap.answers("remind me in 10 minutes to call Sam"));
        assert!(!cheap.answers("What's the capital of Australia?"));
    }
}
