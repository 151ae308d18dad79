//! Whatever arrives, the classifier decides and never panics.

use opticlaw_intent::text::{FeatureConfig, MAX_INPUT_BYTES, TextBuffers};
use opticlaw_intent::{Classifier, Decision, TOP_CONTRIBUTIONS, TOP_INTENTS};
use proptest::prelude::*;

fn assert_sane(d: &Decision) {
    let c = Classifier::shipped();
    assert!(d.class < c.model().classes.len());
    assert!(d.confidence.is_finite() && (0.0..=1.0).contains(&d.confidence));
    assert!((0.0..=1.0).contains(&d.urgency));
    assert!((0.0..=1.0).contains(&d.tool_needed));
    assert!(!d.confident || d.in_scope);
}

fn decide(text: &str) -> Decision {
    let c = Classifier::shipped();
    let d = c.decide(text, &mut c.scratch());
    assert_sane(&d);
    d
}

#[test]
fn empty_and_blank_messages_are_out_of_scope() {
    for text in ["", " ", "\n\t  ", "...", "?!"] {
        assert!(!decide(text).in_scope, "{text:?}");
    }
}

#[test]
fn emoji_only_messages_get_a_decision() {
    decide("🙂");
    decide("👍👍👍🔥🔥");
    decide("👨‍👩‍👧‍👦");
}

#[test]
fn mixed_script_messages_get_a_decision() {
    decide("книга 書 book مرحبا שלום 😀 ñandú");
    decide("set an alarm の 7 am");
}

#[test]
fn binary_garbage_gets_a_decision() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    decide(&String::from_utf8_lossy(&bytes));
    decide("\u{0}\u{0}\u{0}");
}

#[test]
fn huge_messages_are_cut_and_decided_like_their_prefix() {
    let c = Classifier::shipped();
    let prefix = "set an alarm for 7 am ".repeat(MAX_INPUT_BYTES / 22 + 1);
    let cut = &prefix[..MAX_INPUT_BYTES];
    let huge = format!("{prefix}{}", "tell me a joke ".repeat(100_000));
    let mut s = c.scratch();
    assert_eq!(c.decide(&huge, &mut s), c.decide(cut, &mut s));
}

#[test]
fn explained_predictions_of_odd_input_are_well_formed() {
    for text in ["", "🙂", "a", "\u{0}", "x".repeat(100_000).as_str()] {
        let p = Classifier::shipped().classify(text);
        assert_eq!(p.top.len(), TOP_INTENTS);
        assert!(p.contributions.len() <= TOP_CONTRIBUTIONS);
        assert!(p.contributions.iter().all(|(_, w)| w.is_finite()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_string_gets_a_decision(text in any::<String>()) {
        decide(&text);
    }

    #[test]
    fn any_bytes_get_a_decision(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        decide(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn long_unicode_strings_get_a_decision(text in "\\PC{0,3000}") {
        decide(&text);
    }

    #[test]
    fn every_feature_can_be_described(text in "\\PC{0,300}") {
        let mut buffers = TextBuffers::new();
        buffers.featurise(&text, &FeatureConfig::default());
        let mut out = String::new();
        for f in buffers.features.clone() {
            out.clear();
            buffers.describe(&f, &mut out);
            prop_assert!(!out.is_empty());
        }
    }

    #[test]
    fn explanations_never_panic(text in "[a-z 🙂é0-9]{0,200}") {
        let p = Classifier::shipped().classify(&text);
        prop_assert!(p.confidence.is_finite());
    }
}
