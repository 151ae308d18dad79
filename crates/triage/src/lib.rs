//! OptiClaw's intent triage: the cheap path in front of every model call.
//!
//! [`rules::RuleEngine`] answers what deterministic rules can answer (slash
//! commands, reminders in plain English, patterns from config) in
//! microseconds, and says `NeedsModel` for everything else.
//!
//! [`Triage`] puts the rules in front of the tiny intent classifier
//! (`opticlaw-intent`): a confident, in-scope intent that a deterministic
//! handler can answer (small talk, time and date, unit conversion, sums,
//! timers, reminders) takes [`Route::FastReply`]; everything else goes to
//! [`Route::PlanAndExecute`], with [`RetrievalHints`] (entities, a time
//! range, the intent's domain) and an [`Explanation`] of why.
//!
//! ```
//! use opticlaw_triage::rules::{RuleAction, RuleEngine};
//! use opticlaw_triage::{Route, Triage};
//! let engine = RuleEngine::default();
//! let now = chrono::Local::now().fixed_offset();
//! let decision = engine.evaluate("remind me in 10 minutes to call Sam", now);
//! assert_eq!(decision.rule, "remind");
//! assert!(matches!(decision.action, RuleAction::ScheduleReminder { .. }));
//!
//! let triage = Triage::new(RuleEngine::default());
//! let decision = triage.decide("what did Sam say about the budget last week?", now);
//! assert_eq!(decision.route, Route::PlanAndExecute);
//! assert_eq!(decision.action, RuleAction::NeedsModel);
//! assert!(decision.hints.time_range.is_some());
//! println!("{}", decision.explanation_json());
//! ```

pub mod convert;
mod explain;
pub mod handlers;
pub mod hints;
pub mod rules;
mod triage;

pub use hints::RetrievalHints;
pub use triage::{
    Explanation, IntentSummary, Route, Triage, TriageDecision, TriageError, action_kind,
};
