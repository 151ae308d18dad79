//! Any input gets a decision, never a panic: empty, huge, binary-ish,
//! mixed-script and emoji-only messages, and arbitrary strings.

use chrono::{DateTime, FixedOffset};
use opticlaw_triage::rules::RuleAction;
use opticlaw_triage::{Route, Triage, TriageDecision};
use proptest::prelude::*;

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap()
}

fn triage() -> &'static Triage {
    static TRIAGE: std::sync::OnceLock<Triage> = std::sync::OnceLock::new();
    TRIAGE.get_or_init(Triage::default)
}

/// What every decision must satisfy, whatever the input.
fn check(d: &TriageDecision) {
    assert!(!d.rule.is_empty());
    assert!(!d.why.is_empty());
    match d.route {
        Route::PlanAndExecute => assert_eq!(d.action, RuleAction::NeedsModel),
        Route::FastReply => assert_ne!(d.action, RuleAction::NeedsModel),
    }
    if let Some(intent) = &d.intent {
        assert!((0.0..=1.0).contains(&intent.confidence));
        assert!(intent.confidence.is_finite());
    }
    assert!(d.hints.entities.len() <= opticlaw_triage::hints::MAX_ENTITIES);
    if let Some((start, end)) = d.hints.time_range {
        assert!(start <= end);
    }
    let json = d.explanation_json();
    assert!(json.get("error").is_none(), "{json}");
}

#[test]
fn odd_messages_each_get_a_decision() {
    let huge = "remind me ".repeat(100_000);
    let huge_words = "Sam @x 5 km https://a.b/c ".repeat(50_000);
    let binary: String = (0u8..=255).map(char::from).collect();
    let lossy = String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x80]).into_owned();
    let nested = "(".repeat(10_000) + "1" + &")".repeat(10_000);
    for text in [
        "",
        " ",
        "\n\t\r",
        "\0\0\0",
        huge.as_str(),
        huge_words.as_str(),
        binary.as_str(),
        lossy.as_str(),
        "Привет, как дела? 你好 hello مرحبا שלום",
        "会议 tomorrow at 9 с Сашей",
        "😀😀😀",
        "🎉",
        "👍🏽👨‍👩‍👧‍👦🇫🇷",
        "what is ((((((((((1",
        nested.as_str(),
        "how many km in 1e308 miles",
        "what is 99999999999999999999 ^ 99999999999 x 9",
        "set a timer for 99999999999999 minutes",
        "roll 99 d0",
        "in 9999 days ago last 99999 years",
        "in may 0000",
        "/",
        "//",
        "/remind",
        "@",
        "@@@@",
        "a@b.c",
        "http://",
    ] {
        check(&triage().decide(text, now()));
    }
}

#[test]
fn extreme_clocks_still_get_a_decision() {
    for now in [
        DateTime::<chrono::Utc>::MIN_UTC.fixed_offset(),
        DateTime::<chrono::Utc>::MAX_UTC.fixed_offset(),
    ] {
        for text in [
            "what happened last week",
            "next year",
            "in 2024",
            "the day after tomorrow",
            "set a timer for 5 minutes",
            "what is the date for tomorrow",
            "remind me tomorrow at 9 to pay rent",
        ] {
            check(&triage().decide(text, now));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_string_gets_a_decision(text in any::<String>()) {
        check(&triage().decide(&text, now()));
    }

    #[test]
    fn any_mix_of_words_numbers_units_and_symbols_gets_a_decision(
        parts in prop::collection::vec(prop::sample::select(vec![
            "how", "many", "in", "to", "a", "an", "5", "1,000", ".5", "-3", "km", "miles", "°F",
            "degrees", "celsius", "what", "is", "x", "plus", "(", ")", "^", "/", "%", "off", "of",
            "timer", "for", "minutes", "and", "half", "last", "next", "week", "May", "may", "2024",
            "ago", "days", "Sam", "@sam", "sam@x.io", "http://x.y", "d20", "sided", "dice", "😀",
            "Привет", "明天", "remind", "me", "at", "9", "tomorrow", "/", "factorial", "!",
        ]), 0..24),
    ) {
        let text = parts.join(" ");
        check(&triage().decide(&text, now()));
    }
}
