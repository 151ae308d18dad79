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
    /// An action for the orchestrator (only the daemon can carry it out).
    Act(ActCommand),
}

/// A chat command that acts through the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActCommand {
    /// `/run COMMAND`: a shell command in the sandbox.
    Run(String),
    /// `/read PATH`: a file in a granted directory.
    Read(String),
    /// `/approve ID [CODE]`: approve a waiting action (tier 3 needs a TOTP code).
    Approve { id: String, code: Option<String> },
    /// `/deny ID`: refuse a waiting action.
    Deny(String),
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
• /run COMMAND — run a shell command in the sandbox; /read PATH — read a granted file\n\
• /approve ID, /deny ID — answer an action waiting for your approval\n\
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
                "run" | "read" | "approve" | "deny" => decide(&name, act_action(&name, rest)),
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

/// `/run`, `/read`, `/approve`, `/deny`: the command, or a reply saying
/// what is missing.
fn act_action(name: &str, rest: &str) -> RuleAction {
    let mut words = rest.split_whitespace();
    let usage = |text: &str| RuleAction::Reply(text.to_owned());
    match (name, words.next(), words.next(), words.next()) {
        ("run", None, ..) => usage("What should I run? /run COMMAND, e.g. /run ls -l"),
        ("run", Some(_), ..) => RuleAction::Act(ActCommand::Run(rest.to_owned())),
        ("read", None, ..) => usage("Which file? /read PATH (inside a granted directory)"),
        ("read", Some(_), ..) => RuleAction::Act(ActCommand::Read(rest.to_owned())),
        ("approve", Some(id), code, None) => RuleAction::Act(ActCommand::Approve {
            id: id.to_owned(),
            code: code.map(str::to_owned),
        }),
        ("approve", ..) => usage("Use /approve ID, or /approve ID CODE for a tier 3 action."),
        ("deny", Some(id), None, None) => RuleAction::Act(ActCommand::Deny(id.to_owned())),
        _ => usage("Use /deny ID."),
    }
}

fn reminder_action(rest: &str, now: DateTime<FixedOffset>) -> RuleAction {
    match parse_reminder(rest, now) {
        Ok(reminder) => RuleAction::ScheduleReminder(reminder),
        Err(err) => RuleAction::Reply(err.to_string()),
    }
}

/// "It's 15:00 on Wednesday 25 November 2026 (UTC+01:00)." Written from
/// the date's fields: chrono's `format` parses its pattern on every call,
/// which cost the `/time` answer more than the rest of triage.
pub(crate) fn describe_now(now: DateTime<FixedOffset>) -> String {
    use chrono::{Datelike, Timelike};
    const WEEKDAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let offset = now.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs() / 60;
    format!(
        "It's {:02}:{:02} on {} {} {} {} (UTC{sign}{:02}:{:02}).",
        now.hour(),
        now.minute(),
        WEEKDAYS[now.weekday().num_days_from_monday() as usize],
        now.day(),
        MONTHS[now.month0() as usize],
        now.year(),
        offset / 60,
        offset % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap()
    }

    #[test]
    fn the_time_reads_as_chrono_would_write_it() {
        for at in [
            "2026-11-25T15:00:00+01:00",
            "2026-01-04T09:05:59-03:30",
            "1999-12-31T23:59:00+00:00",
            "2027-06-07T00:00:00+05:45",
        ] {
            let now = DateTime::parse_from_rfc3339(at).unwrap();
            let expected = format!(
                "It's {} ({}).",
                now.format("%H:%M on %A %-d %B %Y"),
                now.format("UTC%:z")
            );
            assert_eq!(describe_now(now), expected);
        }
    }

    #[test]
    fn action_commands_go_to_the_orchestrator_or_say_what_is_missing() {
        let engine = RuleEngine::default();
        let act = |text| engine.evaluate(text, now()).action;
        assert_eq!(
            act("/run ls -l /tmp"),
            RuleAction::Act(ActCommand::Run("ls -l /tmp".into()))
        );
        assert_eq!(
            act("/read notes.txt"),
            RuleAction::Act(ActCommand::Read("notes.txt".into()))
        );
        assert_eq!(
            act("/approve 0192ab"),
            RuleAction::Act(ActCommand::Approve {
                id: "0192ab".into(),
                code: None
            })
        );
        assert_eq!(
            act("/approve 0192ab 123456"),
            RuleAction::Act(ActCommand::Approve {
                id: "0192ab".into(),
                code: Some("123456".into())
            })
        );
        assert_eq!(
            act("/deny 0192ab"),
            RuleAction::Act(ActCommand::Deny("0192ab".into()))
        );
        for missing in ["/run", "/read", "/approve", "/deny", "/deny a b"] {
            assert!(matches!(act(missing), RuleAction::Reply(_)), "{missing}");
        }
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
