//! How the triage layer routes messages: rules first, then the shipped
//! classifier with its gate and fast handlers, then the planner.

use chrono::{DateTime, Duration, FixedOffset};
use opticlaw_triage::rules::{PatternRuleConfig, RuleAction, RuleEngine};
use opticlaw_triage::{Explanation, Route, Triage, TriageDecision};

fn now() -> DateTime<FixedOffset> {
    // A Wednesday afternoon.
    DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap()
}

fn decide(text: &str) -> TriageDecision {
    Triage::default().decide(text, now())
}

fn reply(decision: &TriageDecision) -> &str {
    match &decision.action {
        RuleAction::Reply(text) => text,
        other => panic!("expected a reply, got {other:?} ({})", decision.why),
    }
}

#[test]
fn greeting_is_answered_without_a_model() {
    for text in [
        "hello there",
        "hi, how are you doing?",
        "hey, how's it going",
    ] {
        let d = decide(text);
        assert_eq!(d.route, Route::FastReply, "{text}: {}", d.why);
        assert_eq!(d.rule, "intent:greeting", "{text}: {}", d.why);
        assert!(reply(&d).contains("OptiClaw"));
        let intent = d.intent.as_ref().expect("the classifier ran");
        assert!(intent.confident && intent.in_scope);
        assert!(!intent.contributions.is_empty());
    }
}

#[test]
fn small_talk_about_the_assistant_is_answered_from_templates() {
    for (text, intent) in [
        ("thank you so much", "thank_you"),
        ("goodbye for now", "goodbye"),
        ("are you a real person or a bot", "are_you_a_bot"),
        ("what can you help me with", "what_can_i_ask_you"),
        ("who created you", "who_made_you"),
    ] {
        let d = decide(text);
        assert_eq!(d.rule, format!("intent:{intent}"), "{text}: {}", d.why);
        assert_eq!(d.route, Route::FastReply);
        reply(&d);
    }
}

#[test]
fn out_of_scope_goes_to_the_planner() {
    for text in [
        "what is the capital of peru in 1700",
        "write a haiku about rust and lifetimes",
        "how do i fix a memory leak in my kubernetes operator",
    ] {
        let d = decide(text);
        assert_eq!(d.route, Route::PlanAndExecute, "{text}: {}", d.why);
        assert_eq!(d.action, RuleAction::NeedsModel);
        assert_eq!(d.rule, "none");
    }
}

#[test]
fn intents_needing_tools_or_data_go_to_the_planner_with_their_domain() {
    let d = decide("book me a flight to Paris next Friday");
    assert_eq!(d.route, Route::PlanAndExecute, "{}", d.why);
    assert_eq!(d.intent.as_ref().unwrap().intent, "book_flight");
    assert_eq!(d.hints.domain.as_deref(), Some("travel"));
    assert!(d.hints.entities.contains(&"Paris".to_owned()));
    assert!(d.why.contains("needs tools"), "{}", d.why);
}

#[test]
fn reminder_rule_wins_over_the_classifier() {
    let d = decide("remind me in 10 minutes to call Sam");
    assert_eq!(d.rule, "remind");
    assert_eq!(d.route, Route::FastReply);
    assert!(d.intent.is_none(), "the classifier must not run");
    let RuleAction::ScheduleReminder(r) = &d.action else {
        panic!("{:?}", d.action)
    };
    assert_eq!(r.wake_at, now() + Duration::minutes(10));
    assert_eq!(r.task, "call Sam");
    assert_eq!(d.hints.entities, ["10 minutes", "Sam"]);
}

#[test]
fn configured_pattern_rules_win_over_the_classifier() {
    let rules = RuleEngine::with_patterns(&[PatternRuleConfig {
        name: "wifi".into(),
        pattern: "(?i)wi-?fi password".into(),
        reply: "It's on the fridge.".into(),
    }])
    .unwrap();
    let d = Triage::new(rules).decide("hello! what's the wifi password?", now());
    assert_eq!(d.rule, "wifi");
    assert_eq!(reply(&d), "It's on the fridge.");
}

#[test]
fn slash_commands_are_rules() {
    assert_eq!(decide("/status").action, RuleAction::Status);
    assert_eq!(decide("/help").rule, "help");
}

#[test]
fn unit_conversion_is_computed_not_guessed() {
    let d = decide("how many centimeters are in an inch");
    assert_eq!(d.rule, "intent:measurement_conversion", "{}", d.why);
    assert_eq!(reply(&d), "1 inch = 2.54 centimetres.");
    let d = decide("how many crows are in 10 murders");
    assert_eq!(d.route, Route::PlanAndExecute, "{}", d.why);
}

#[test]
fn a_timer_becomes_a_reminder() {
    let d = decide("please set a timer for 6 minutes");
    assert_eq!(d.rule, "intent:timer", "{}", d.why);
    let RuleAction::ScheduleReminder(r) = &d.action else {
        panic!("{:?}", d.action)
    };
    assert_eq!(r.wake_at, now() + Duration::minutes(6));
}

#[test]
fn listing_reminders_maps_onto_the_reminder_list() {
    let d = decide("tell me my reminders");
    assert_eq!(d.rule, "intent:reminder", "{}", d.why);
    assert_eq!(d.action, RuleAction::ListReminders);
}

#[test]
fn tomorrows_date_is_answered_from_the_clock() {
    let d = decide("what is the date for tomorrow");
    assert_eq!(d.rule, "intent:date", "{}", d.why);
    assert_eq!(reply(&d), "Tomorrow is Thursday 26 November 2026.");
}

#[test]
fn time_elsewhere_needs_the_planner() {
    let d = decide("what time is it in tokyo right now");
    assert_eq!(d.route, Route::PlanAndExecute, "{}", d.why);
}

#[test]
fn last_week_becomes_a_time_range_hint() {
    let d = decide("what did Dana say about the budget last week?");
    assert_eq!(d.route, Route::PlanAndExecute);
    let (start, end) = d.hints.time_range.expect("a time range");
    assert_eq!(start.to_rfc3339(), "2026-11-16T00:00:00+01:00");
    assert_eq!(end.to_rfc3339(), "2026-11-23T00:00:00+01:00");
    assert_eq!(d.hints.entities, ["Dana"]);
}

#[test]
fn explanation_round_trips_through_json() {
    let d = decide("book a table for 4 at Luigi's tomorrow at 8pm");
    let json = d.explanation_json();
    assert_eq!(json["route"], "PLAN_AND_EXECUTE");
    assert_eq!(json["action"], "needs_model");
    assert!(json["intent"]["top"].as_array().unwrap().len() >= 2);
    assert!(json["hints"]["time_range"].is_array());
    let back: Explanation = serde_json::from_value(json).unwrap();
    assert_eq!(back, d.explanation());

    let ruled = decide("/help").explanation_json();
    assert_eq!(ruled["rule"], "help");
    assert_eq!(ruled["route"], "FAST_REPLY");
    assert!(ruled["intent"].is_null());
}

#[test]
fn a_retrained_model_file_can_replace_the_shipped_one() {
    let triage =
        Triage::with_model_bytes(RuleEngine::default(), opticlaw_intent::SHIPPED_MODEL).unwrap();
    assert_eq!(triage.decide("hello there", now()).rule, "intent:greeting");
    let err = Triage::with_model_bytes(RuleEngine::default(), b"not a model")
        .err()
        .unwrap();
    assert!(err.to_string().contains("intent model"), "{err}");
}

#[test]
fn the_explained_decision_matches_the_classifiers_own() {
    let triage = Triage::default();
    let classifier = opticlaw_intent::Classifier::shipped();
    for text in [
        "hello there",
        "set an alarm for 7 am",
        "what is the capital of peru in 1700",
        "the the the cat the cat sat on the the mat",
        "can you summarise the email from ann@example.com about the Q3 report from last month",
        "i think someone stole my credit card, please freeze my account right now",
        "😀😀😀",
        "",
        "Привет, как дела? 你好 hello",
    ] {
        let mine = triage.decide(text, now()).intent.expect("classified");
        let theirs = classifier.classify(text);
        assert_eq!(mine.intent, theirs.intent, "{text}");
        assert_eq!(mine.in_scope, theirs.in_scope, "{text}");
        assert_eq!(mine.confident, theirs.confident, "{text}");
        assert!((mine.confidence - theirs.confidence).abs() < 1e-6, "{text}");
        assert!((mine.urgency - theirs.urgency).abs() < 1e-5, "{text}");
        assert!(
            (mine.tool_needed - theirs.tool_needed).abs() < 1e-5,
            "{text}"
        );
        assert_eq!(mine.top, theirs.top, "{text}");
        assert_eq!(
            mine.contributions.len(),
            theirs.contributions.len(),
            "{text}"
        );
        for ((a, x), (b, y)) in mine.contributions.iter().zip(&theirs.contributions) {
            assert_eq!(a, b, "{text}");
            assert!((x - y).abs() < 1e-4, "{text}: {a} {x} vs {y}");
        }
    }
}

#[test]
fn memory_commands_go_to_the_daemon_and_no_classifier_answers_them() {
    // "/memory what time is it" must search memory, not tell the time.
    for text in [
        "/memory what time is it",
        "/remember I like tea",
        "/forget tea",
        "/forget",
    ] {
        let d = decide(text);
        assert_eq!(d.action, RuleAction::NeedsModel, "{text}: {}", d.why);
        assert_eq!(d.route, Route::PlanAndExecute, "{text}");
        assert!(d.intent.is_none(), "{text}: the classifier ran");
        assert!(d.why.contains("daemon's answerer"), "{}", d.why);
    }
}
