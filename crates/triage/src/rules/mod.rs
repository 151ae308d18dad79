//! Deterministic rules, checked in a fixed order; the matched rule's name is
//! part of every decision so "why did it answer like that?" has an answer.

mod reminder;

use chrono::{DateTime, FixedOffset};
use regex::Regex;
use serde::Deserialize;

pub use reminder::{Reminder, ReminderError, parse_reminder};

/// What a rule decided.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecision {
    /// The rule that matched (`help`, `remind`, a configured rule's name, or
    /// `none` when no rule matched).
    pub rule: String,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// Answer with this text.
    Reply(String),
    /// Answer with the runtime's status (only the runtime knows it).
    Status,
    /// Schedule a one-shot reminder and confirm it.
    ScheduleReminder(Reminder),
    /// List the sender's pending reminders.
    ListReminders,
    /// Cancel the sender's reminder whose id starts with this prefix.
    CancelReminder(String),
    /// No rule can answer: a model is needed.
    NeedsModel,
}

/// A pattern rule from config:
/// `[[rules]] name = "wifi", pattern = "(?i)wifi password", reply = "..."`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternRuleConfig {
    pub name: String,
    /// A regular expression (Rust `regex` syntax) matched against the message.
    pub pattern: String,
    pub reply: String,
}

#[derive(Debug, thiserror::Error)]
#[error("rule \"{name}\" has an invalid pattern: {source}")]
pub struct RuleConfigError {
    pub name: String,
    #[source]
    pub source: regex::Error,
}

struct PatternRule {
    name: String,
    pattern: Regex,
    reply: String,
}

/// The deterministic rule layer.
#[derive(Default)]
pub struct RuleEngine {
    patterns: Vec<PatternRule>,
}

pub const HELP_TEXT: &str = "I'm OptiClaw, your local assistant. Things I can do right now:\n\
• /help — this message\n\
• /status — what the assistant is doing\n\
• remind me in 10 minutes to call Sam\n\
• remind me tomorrow at 9 to pay rent\n\
• /reminders — your pending reminders; /cancel ID — cancel one\n\
• /time — the current date and time\n\
• /memory WORDS — what I remember; /remember FACT; /forget ID or TEXT\n\
Anything else needs a language model: add one with `opticlaw models add` (or [models] in config.toml) and run `opticlaw doctor`.";

/// Messages longer than this are never treated as commands.
const MAX_RULE_INPUT_BYTES: usize = 4096;

impl RuleEngine {
    pub fn with_patterns(configs: &[PatternRuleConfig]) -> Result<Self, RuleConfigError> {
        let patterns = configs
            .iter()
            .map(|rule| {
                Ok(PatternRule {
                    name: rule.name.clone(),
                    pattern: Regex::new(&rule.pattern).map_err(|source| RuleConfigError {
                        name: rule.name.clone(),
                        source,
                    })?,
                    reply: rule.reply.clone(),
                })
            })
            .collect::<Result<_, RuleConfigError>>()?;
        Ok(Self { patterns })
    }

    /// Decides what to do with `text`, with `now` in the user's time zone.
    pub fn evaluate(&self, text: &str, now: DateTime<FixedOffset>) -> RuleDecision {
        let decide = |rule: &str, action| RuleDecision {
            rule: rule.to_owned(),
            action,
        };
        let text = text.trim();
        if text.len() > MAX_RULE_INPUT_BYTES {
            return decide("none", RuleAction::NeedsModel);
        }
        if let Some(command) = text.strip_prefix('/') {
            let (name, rest) = command
                .split_once(char::is_whitespace)
                .map(|(n, r)| (n, r.trim()))
                .unwrap_or((command, ""));
            // Telegram sends `/help@BotName` in groups.
            let name = name.split('@').next().unwrap_or(name).to_ascii_lowercase();
            return match name.as_str() {
                "help" | "start" => decide("help", RuleAction::Reply(HELP_TEXT.to_owned())),
                "status" => decide("status", RuleAction::Status),
                "time" | "date" => decide("time", RuleAction::Reply(describe_now(now))),
                "remind" => decide("remind", reminder_action(rest, now)),
                "reminders" => decide("reminders", RuleAction::ListReminders),
                // The memory engine lives outside triage (which touches no
                // store): these go on to the daemon's answerer, which
                // handles them itself and never gives them to a model.
                "memory" | "forget" | "remember" => decide(&name, RuleAction::NeedsModel),
                // Recognised here so they never reach a model; approvals are
                // not in the daemon yet, and the reply says so.
                "approve" | "deny" => decide(
                    &name,
                    RuleAction::Reply(format!(
                        "/{name} is not available yet: this build has no approval workflow wired into the daemon."
                    )),
                ),
                "cancel" if !rest.is_empty() => {
                    decide("cancel", RuleAction::CancelReminder(rest.to_owned()))
                }
                "cancel" => decide(
                    "cancel",
                    RuleAction::Reply(
                        "Which reminder? Use /reminders to see their ids, then /cancel ID.".into(),
                    ),
                ),
                _ => decide(
                    "unknown_command",
                    RuleAction::Reply(format!("I don't know the command /{name}. Try /help.")),
                ),
            };
        }
        if let Some(rest) = reminder::strip_reminder_prefix(text) {
            return decide("remind", reminder_action(rest, now));
        }
        if reminder::asks_for_time(text) {
            return decide("time", RuleAction::Reply(describe_now(now)));
        }
        if let Some(rule) = self.patterns.iter().find(|r| r.pattern.is_match(text)) {
            return decide(&rule.name, RuleAction::Reply(rule.reply.clone()));
        }
        decide("none", RuleAction::NeedsModel)
    }
}

fn reminder_action(rest: &str, now: DateTime<FixedOffset>) -> RuleAction {
    match parse_reminder(rest, now) {
        Ok(reminder) => RuleAction::ScheduleReminder(reminder),
        Err(err) => RuleAction::Reply(err.to_string()),
    }
}

fn describe_now(now: DateTime<FixedOffset>) -> String {
    format!(
        "It's {} ({}).",
        now.format("%H:%M on %A %-d %B %Y"),
        now.format("UTC%:z")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap()
    }

    #[test]
    fn slash_commands_match_in_order() {
        let engine = RuleEngine::default();
        assert_eq!(engine.evaluate("/help", now()).rule, "help");
        assert_eq!(engine.evaluate("/HELP@OptiBot", now()).rule, "help");
        assert_eq!(engine.evaluate("/status", now()).action, RuleAction::Status);
        assert_eq!(
            engine.evaluate("/reminders", now()).action,
            RuleAction::ListReminders
        );
        assert_eq!(
            engine.evaluate("/cancel 01ab", now()).action,
            RuleAction::CancelReminder("01ab".into())
        );
        let unknown = engine.evaluate("/frobnicate", now());
        assert_eq!(unknown.rule, "unknown_command");
        assert!(matches!(unknown.action, RuleAction::Reply(ref t) if t.contains("/frobnicate")));
    }

    #[test]
    fn free_text_without_a_rule_needs_a_model() {
        let engine = RuleEngine::default();
        let decision = engine.evaluate("write me a poem about autumn", now());
        assert_eq!(
            decision,
            RuleDecision {
                rule: "none".into(),
                action: RuleAction::NeedsModel
            }
        );
    }

    #[test]
    fn configured_pattern_rule_answers_with_its_reply() {
        let engine = RuleEngine::with_patterns(&[PatternRuleConfig {
            name: "wifi".into(),
            pattern: "(?i)wi-?fi password".into(),
            reply: "It's on the fridge.".into(),
        }])
        .unwrap();
        let decision = engine.evaluate("what's the WiFi password?", now());
        assert_eq!(decision.rule, "wifi");
        assert_eq!(
            decision.action,
            RuleAction::Reply("It's on the fridge.".into())
        );
    }

    #[test]
    fn invalid_pattern_names_the_rule() {
        let err = RuleEngine::with_patterns(&[PatternRuleConfig {
            name: "broken".into(),
            pattern: "(".into(),
            reply: String::new(),
        }])
        .err()
        .unwrap();
        assert!(err.to_string().contains("\"broken\""));
    }

    #[test]
    fn asking_the_time_is_answered_by_a_rule() {
        let decision = RuleEngine::default().evaluate("what time is it?", now());
        assert_eq!(decision.rule, "time");
        assert!(matches!(decision.action, RuleAction::Reply(ref t) if t.contains("15:00")));
    }
}
