//! OptiClaw's intent triage: the cheap path in front of every model call.
//!
//! [`rules::RuleEngine`] answers what deterministic rules can answer (slash
//! commands, reminders in plain English, patterns from config) in
//! microseconds, and says `NeedsModel` for everything else.
//!
//! ```
//! use opticlaw_triage::rules::{RuleAction, RuleEngine};
//! let engine = RuleEngine::default();
//! let now = chrono::Local::now().fixed_offset();
//! let decision = engine.evaluate("remind me in 10 minutes to call Sam", now);
//! assert_eq!(decision.rule, "remind");
//! assert!(matches!(decision.action, RuleAction::ScheduleReminder { .. }));
//! ```

pub mod rules;
