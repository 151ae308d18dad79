//! The classifier's decision with its reasons, computed within the triage
//! latency budget.
//!
//! [`Classifier::classify`] gives the same answer but names every feature
//! to merge contributions by name, which costs several times the
//! classification itself on long messages. This does the same arithmetic
//! through the classifier's public parts (featuriser, vocabulary, network,
//! calibration) and names only the [`TOP_CONTRIBUTIONS`] features it
//! reports: contributions are merged by feature key (a word's character
//! n-grams credited to the word, as `classify` does), the top class's
//! activation-masked output weights are dotted once per feature. A test
//! checks the result equals `classify`'s.

use std::cell::RefCell;

use opticlaw_intent::intents::{IntentProfile, profile};
use opticlaw_intent::network::{dot, softmax};
use opticlaw_intent::text::{FeatureKind, TextBuffers};
use opticlaw_intent::{Classifier, TOP_CONTRIBUTIONS, TOP_INTENTS};

use crate::triage::IntentSummary;

/// Per-class routing facts of one model, computed once.
#[derive(Debug, Clone)]
pub(crate) struct Explainer {
    oos: usize,
    urgency: Vec<f32>,
    tool_needed: Vec<f32>,
    profiles: Vec<IntentProfile>,
}

/// Reusable buffers, one set per thread.
struct Buffers {
    text: TextBuffers,
    rows: Vec<u32>,
    sources: Vec<u32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    probs: Vec<f32>,
    masked: Vec<f32>,
    word_keys: Vec<u32>,
    /// `(is_bigram, key, first feature index, contribution)`.
    groups: Vec<(bool, u32, u32, f32)>,
}

thread_local! {
    static BUFFERS: RefCell<Option<Buffers>> = const { RefCell::new(None) };
}

impl Explainer {
    pub(crate) fn new(classifier: &Classifier) -> Self {
        let model = classifier.model();
        let profiles: Vec<IntentProfile> = model.classes.iter().map(|c| profile(c)).collect();
        Self {
            oos: model.oos_index().unwrap_or(usize::MAX),
            urgency: profiles.iter().map(|p| p.urgency).collect(),
            tool_needed: profiles.iter().map(|p| p.tool_needed).collect(),
            profiles,
        }
    }

    /// The explained decision on `text`, and the routing facts of its
    /// intent (those of `oos` when out of scope).
    pub(crate) fn explain(
        &self,
        classifier: &Classifier,
        text: &str,
    ) -> (IntentSummary, IntentProfile) {
        BUFFERS.with(|cell| {
            let mut slot = cell.borrow_mut();
            let net = &classifier.model().network;
            let fits = slot
                .as_ref()
                .is_some_and(|b| b.probs.len() == net.classes && b.hidden.len() == net.hidden);
            if !fits {
                *slot = Some(Buffers {
                    text: TextBuffers::new(),
                    rows: Vec::new(),
                    sources: Vec::new(),
                    hidden: vec![0.0; net.hidden],
                    logits: vec![0.0; net.classes],
                    probs: vec![0.0; net.classes],
                    masked: vec![0.0; net.hidden],
                    word_keys: Vec::new(),
                    groups: Vec::new(),
                });
            }
            self.run(classifier, text, slot.as_mut().expect("just set"))
        })
    }

    fn run(
        &self,
        classifier: &Classifier,
        text: &str,
        b: &mut Buffers,
    ) -> (IntentSummary, IntentProfile) {
        let model = classifier.model();
        let net = &model.network;
        b.text.featurise(text, &model.features);
        b.rows.clear();
        b.sources.clear();
        for (i, f) in b.text.features.iter().enumerate() {
            if let Some(row) = model.vocabulary.row(f.key) {
                b.rows.push(row);
                b.sources.push(i as u32);
            }
        }
        net.forward(&b.rows, &mut b.hidden, &mut b.logits);
        softmax(&b.logits, model.temperature, &mut b.probs);

        let mut class = 0;
        for (i, &p) in b.probs.iter().enumerate() {
            if p > b.probs[class] {
                class = i;
            }
        }
        let confidence = b.probs[class];
        let in_scope = class != self.oos && confidence >= model.oos_threshold;
        let confident = in_scope && confidence >= model.gate_threshold;
        let expect =
            |values: &[f32]| -> f32 { b.probs.iter().zip(values).map(|(p, v)| p * v).sum() };
        let urgency = expect(&self.urgency);
        let tool_needed = expect(&self.tool_needed);

        let mut top: Vec<(usize, f32)> = Vec::with_capacity(TOP_INTENTS + 1);
        for (i, &p) in b.probs.iter().enumerate() {
            let at = top.partition_point(|&(j, q)| q > p || (q == p && j < i));
            if at < TOP_INTENTS {
                top.insert(at, (i, p));
                top.truncate(TOP_INTENTS);
            }
        }
        let top = top
            .into_iter()
            .map(|(c, p)| (classifier.class_name(c).to_owned(), p))
            .collect();

        let contributions = self.contributions(classifier, class, b);
        let (intent, profile) = if in_scope {
            (
                classifier.class_name(class).to_owned(),
                self.profiles[class],
            )
        } else {
            (
                opticlaw_intent::data::OOS.to_owned(),
                self.profiles
                    .get(self.oos)
                    .copied()
                    .unwrap_or(profile("oos")),
            )
        };
        (
            IntentSummary {
                intent,
                confidence,
                in_scope,
                confident,
                urgency,
                tool_needed,
                top,
                contributions,
            },
            profile,
        )
    }

    /// The features that moved `class`'s calibrated logit most.
    fn contributions(
        &self,
        classifier: &Classifier,
        class: usize,
        b: &mut Buffers,
    ) -> Vec<(String, f32)> {
        let model = classifier.model();
        let net = &model.network;
        let n = b.rows.len();
        if n == 0 {
            return Vec::new();
        }
        // Only active hidden units carry a feature's contribution.
        let w2 = &net.w2[class * net.hidden..(class + 1) * net.hidden];
        for ((m, &w), &h) in b.masked.iter_mut().zip(w2).zip(&b.hidden) {
            *m = if h > 0.0 { w } else { 0.0 };
        }
        let scale = 1.0 / (n as f32).sqrt() / model.temperature;
        // A word's key, so its character n-grams merge into it.
        b.word_keys.clear();
        for f in &b.text.features {
            if f.kind == FeatureKind::Word {
                let i = f.word as usize;
                if b.word_keys.len() <= i {
                    b.word_keys.resize(i + 1, u32::MAX);
                }
                b.word_keys[i] = f.key;
            }
        }
        b.groups.clear();
        for (&row, &source) in b.rows.iter().zip(&b.sources) {
            let f = b.text.features[source as usize];
            let (bigram, key) = match f.kind {
                FeatureKind::Bigram => (true, f.key),
                _ => (
                    false,
                    b.word_keys
                        .get(f.word as usize)
                        .copied()
                        .filter(|&k| k != u32::MAX)
                        .unwrap_or(f.key),
                ),
            };
            let w = dot(&b.masked, net.embedding(row)) * scale;
            match b.groups.iter_mut().find(|g| g.0 == bigram && g.1 == key) {
                Some(g) => g.3 += w,
                None => b.groups.push((bigram, key, source, w)),
            }
        }
        b.groups
            .sort_by(|a, c| c.3.abs().total_cmp(&a.3.abs()).then(a.2.cmp(&c.2)));
        b.groups
            .iter()
            .take(TOP_CONTRIBUTIONS)
            .map(|&(_, _, source, w)| {
                let mut feature = b.text.features[source as usize];
                if feature.kind == FeatureKind::Chars {
                    feature.kind = FeatureKind::Word;
                }
                let mut name = String::new();
                b.text.describe(&feature, &mut name);
                (name, w)
            })
            .collect()
    }
}
