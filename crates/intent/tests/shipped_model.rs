//! The shipped model: it loads, it is small, and it reaches the targets of
//! issue 7 on CLINC150's test splits (measured here, not recorded).

use opticlaw_intent::data::default_clinc_path;
use opticlaw_intent::{Classifier, SHIPPED_MODEL, bench};

#[test]
fn shipped_model_loads_and_fits_in_five_megabytes() {
    let classifier = Classifier::shipped();
    assert!(
        SHIPPED_MODEL.len() <= 5 * 1024 * 1024,
        "{} bytes",
        SHIPPED_MODEL.len()
    );
    assert_eq!(classifier.model().classes.len(), 150 + 1 + 5);
}

#[test]
fn shipped_model_reaches_accuracy_and_oos_recall_targets_on_clinc150_test() {
    if !default_clinc_path().exists() {
        eprintln!(
            "skipped: CLINC150 not found at {}",
            default_clinc_path().display()
        );
        return;
    }
    let report = bench::run(None).expect("bench runs");
    println!("{report}");
    assert_eq!(report.in_scope, 4500);
    assert_eq!(report.out_of_scope, 1000);
    assert!(report.in_scope_acc >= 0.93, "{report}");
    assert!(report.oos_recall >= 0.60, "{report}");
    assert!(report.ece < 0.1, "{report}");
    if !cfg!(debug_assertions) {
        assert!(report.p95_us <= 50.0, "{report}");
    }
}

#[test]
fn everyday_requests_get_their_intents() {
    let c = Classifier::shipped();
    for (text, intent) in [
        ("set an alarm for 7 am", "alarm"),
        ("what's the weather like in paris tomorrow", "weather"),
        ("i lost my credit card", "report_lost_card"),
        ("how do you say thank you in japanese", "translate"),
    ] {
        let p = c.classify(text);
        assert_eq!(p.intent, intent, "{text}: {p:?}");
        assert!(p.in_scope);
    }
}

#[test]
fn assistant_intents_are_recognised_in_new_wordings() {
    let c = Classifier::shipped();
    for (text, intent) in [
        (
            "write a rust function that parses an iso date",
            "coding_request",
        ),
        (
            "what did i tell you about my brother's new job",
            "memory_question",
        ),
        ("remind me to buy milk at 5pm", "reminder_update"),
    ] {
        let p = c.classify(text);
        assert_eq!(p.top[0].0, intent, "{text}: {p:?}");
    }
}

#[test]
fn urgent_requests_score_higher_urgency_than_chit_chat() {
    let c = Classifier::shipped();
    let fraud = c.classify("someone is using my card without permission, block it now");
    let joke = c.classify("tell me a joke");
    assert!(fraud.urgency > joke.urgency + 0.3, "{fraud:?} {joke:?}");
    assert!(fraud.tool_needed > joke.tool_needed);
}

#[test]
fn explanations_name_the_features_that_decided() {
    let p = Classifier::shipped().classify("set an alarm for 7 am");
    assert!(!p.contributions.is_empty());
    assert!(p.contributions.len() <= opticlaw_intent::TOP_CONTRIBUTIONS);
    assert!(
        p.contributions
            .iter()
            .any(|(f, w)| f.contains("alarm") && *w > 0.0),
        "{:?}",
        p.contributions
    );
}

#[test]
fn gibberish_is_out_of_scope() {
    let p = Classifier::shipped().classify("zxqv blorf wuggle");
    assert!(!p.in_scope, "{p:?}");
    assert_eq!(p.intent, "oos");
}

#[test]
fn the_assistant_examples_parse_and_use_known_intents() {
    let examples = opticlaw_intent::data::assistant_examples();
    assert!(examples.len() >= 100);
    let classes = &Classifier::shipped().model().classes;
    assert!(examples.iter().all(|e| classes.contains(&e.intent)));
}
