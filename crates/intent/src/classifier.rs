//! Inference: from a message to an intent decision with its reasons.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::IntentError;
use crate::intents::{IntentProfile, profile};
use crate::model::Model;
use crate::network::softmax;
use crate::text::{FeatureKind, TextBuffers};

/// The model file shipped in the crate (see `model/README.md`).
pub static SHIPPED_MODEL: &[u8] = include_bytes!("../model/intent.ocm");

/// How many entries [`Prediction::top`] holds.
pub const TOP_INTENTS: usize = 5;
/// How many entries [`Prediction::contributions`] holds at most.
pub const TOP_CONTRIBUTIONS: usize = 8;

/// A loaded model, ready to classify. Cheap to share: classification takes
/// `&self`.
#[derive(Debug, Clone)]
pub struct Classifier {
    model: Model,
    oos: usize,
    urgency: Vec<f32>,
    tool_needed: Vec<f32>,
    profiles: Vec<IntentProfile>,
}

/// Reusable buffers for [`Classifier::decide`]; after the first message no
/// classification allocates.
#[derive(Debug, Clone)]
pub struct Scratch {
    text: TextBuffers,
    rows: Vec<u32>,
    sources: Vec<u32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    probs: Vec<f32>,
}

/// The allocation-free result of [`Classifier::decide`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Index of the most probable class (see [`Classifier::class_name`]).
    pub class: usize,
    /// Its calibrated probability.
    pub confidence: f32,
    /// False when the top class is `oos` or `confidence` is below the
    /// model's out-of-scope threshold.
    pub in_scope: bool,
    /// In scope with `confidence` at or above the gate threshold: the
    /// message may skip the large model if its intent has a fast handler.
    pub confident: bool,
    /// Expected urgency in `[0, 1]` under the class probabilities.
    pub urgency: f32,
    /// Expected probability that a tool is needed.
    pub tool_needed: f32,
}

/// A full, explained prediction (allocates; use [`Classifier::decide`] on
/// the hot path).
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The intent, or `oos` when out of scope.
    pub intent: String,
    /// Calibrated probability of the most probable class (also when that
    /// class was rejected as out of scope by the threshold).
    pub confidence: f32,
    /// The [`TOP_INTENTS`] most probable classes with their probabilities.
    pub top: Vec<(String, f32)>,
    /// Expected urgency in `[0, 1]`.
    pub urgency: f32,
    /// Expected probability that a tool is needed.
    pub tool_needed: f32,
    /// See [`Decision::in_scope`].
    pub in_scope: bool,
    /// In scope and confident enough for the fast path ([`Decision::confident`]).
    pub confident: bool,
    /// Routing facts of `intent` (domain, fast handler available); those of
    /// `oos` when out of scope.
    pub profile: IntentProfile,
    /// The features that pushed the top class's calibrated logit most, as
    /// `(feature, contribution)` sorted by absolute contribution, e.g.
    /// `("word:alarm", 3.1)` or `("bigram:an|alarm", 0.4)`. A word's entry
    /// includes its character n-grams; the rest of the logit is bias.
    pub contributions: Vec<(String, f32)>,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

impl Classifier {
    /// The model shipped in the crate, parsed once per process.
    pub fn shipped() -> &'static Classifier {
        static SHIPPED: OnceLock<Classifier> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            Classifier::from_bytes(SHIPPED_MODEL).expect("the shipped model is checked by tests")
        })
    }

    /// Loads a model file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IntentError> {
        Self::new(Model::from_bytes(bytes)?)
    }

    /// Wraps a model.
    pub fn new(model: Model) -> Result<Self, IntentError> {
        let oos = model
            .oos_index()
            .ok_or_else(|| IntentError::BadModel("no oos class".into()))?;
        if model.classes.len() != model.network.classes {
            return Err(IntentError::BadModel("class count mismatch".into()));
        }
        let profiles: Vec<_> = model.classes.iter().map(|c| profile(c)).collect();
        Ok(Self {
            urgency: profiles.iter().map(|p| p.urgency).collect(),
            tool_needed: profiles.iter().map(|p| p.tool_needed).collect(),
            profiles,
            model,
            oos,
        })
    }

    /// The underlying model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Name of class `index`.
    pub fn class_name(&self, index: usize) -> &str {
        &self.model.classes[index]
    }

    /// Buffers sized for this model.
    pub fn scratch(&self) -> Scratch {
        let c = self.model.network.classes;
        let text = TextBuffers::new();
        let max_features = text.features.capacity();
        Scratch {
            text,
            rows: Vec::with_capacity(max_features),
            sources: Vec::with_capacity(max_features),
            hidden: vec![0.0; self.model.network.hidden],
            logits: vec![0.0; c],
            probs: vec![0.0; c],
        }
    }

    /// Classifies `text` without allocating (given a warm `scratch`).
    pub fn decide(&self, text: &str, scratch: &mut Scratch) -> Decision {
        self.run(text, scratch);
        let mut class = 0;
        for (i, &p) in scratch.probs.iter().enumerate() {
            if p > scratch.probs[class] {
                class = i;
            }
        }
        let confidence = scratch.probs[class];
        let in_scope = class != self.oos && confidence >= self.model.oos_threshold;
        let expect =
            |values: &[f32]| -> f32 { scratch.probs.iter().zip(values).map(|(p, v)| p * v).sum() };
        Decision {
            class,
            confidence,
            in_scope,
            confident: in_scope && confidence >= self.model.gate_threshold,
            urgency: expect(&self.urgency),
            tool_needed: expect(&self.tool_needed),
        }
    }

    /// Classifies and explains `text`, using a per-thread scratch.
    pub fn classify(&self, text: &str) -> Prediction {
        SCRATCH.with(|cell| {
            let mut slot = cell.borrow_mut();
            let fits = slot.as_ref().is_some_and(|s| {
                s.probs.len() == self.model.network.classes
                    && s.hidden.len() == self.model.network.hidden
            });
            if !fits {
                *slot = Some(self.scratch());
            }
            self.classify_with(text, slot.as_mut().expect("just set"))
        })
    }

    /// Classifies and explains `text` with the caller's buffers.
    pub fn classify_with(&self, text: &str, scratch: &mut Scratch) -> Prediction {
        let d = self.decide(text, scratch);
        let mut order: Vec<usize> = (0..scratch.probs.len()).collect();
        order.sort_by(|&a, &b| {
            scratch.probs[b]
                .total_cmp(&scratch.probs[a])
                .then(a.cmp(&b))
        });
        let top = order
            .iter()
            .take(TOP_INTENTS)
            .map(|&c| (self.model.classes[c].clone(), scratch.probs[c]))
            .collect();
        let intent = if d.in_scope {
            self.model.classes[d.class].clone()
        } else {
            crate::data::OOS.to_string()
        };
        Prediction {
            intent,
            confidence: d.confidence,
            top,
            urgency: d.urgency,
            tool_needed: d.tool_needed,
            in_scope: d.in_scope,
            confident: d.confident,
            profile: if d.in_scope {
                self.profiles[d.class]
            } else {
                self.profiles[self.oos]
            },
            contributions: self.contributions(d.class, scratch),
        }
    }

    /// Per-feature contributions to `class`'s calibrated logit in the last
    /// message run through `scratch`. A word's character n-grams are
    /// credited to the word, so `word:alarm` is all the evidence of "alarm".
    fn contributions(&self, class: usize, scratch: &Scratch) -> Vec<(String, f32)> {
        let net = &self.model.network;
        let n = scratch.rows.len();
        let mut merged: Vec<(String, f32)> = Vec::new();
        for (&row, &source) in scratch.rows.iter().zip(&scratch.sources) {
            let w = net.contribution(row, n, &scratch.hidden, class) / self.model.temperature;
            let mut feature = scratch.text.features[source as usize];
            if feature.kind == FeatureKind::Chars {
                feature.kind = FeatureKind::Word;
            }
            let mut name = String::new();
            scratch.text.describe(&feature, &mut name);
            match merged.iter_mut().find(|(k, _)| *k == name) {
                Some(entry) => entry.1 += w,
                None => merged.push((name, w)),
            }
        }
        merged.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
        merged.truncate(TOP_CONTRIBUTIONS);
        merged
    }

    /// Featurises `text` and fills `scratch.probs` with calibrated
    /// probabilities.
    fn run(&self, text: &str, scratch: &mut Scratch) {
        scratch.text.featurise(text, &self.model.features);
        scratch.rows.clear();
        scratch.sources.clear();
        for (i, f) in scratch.text.features.iter().enumerate() {
            if let Some(row) = self.model.vocabulary.row(f.key) {
                scratch.rows.push(row);
                scratch.sources.push(i as u32);
            }
        }
        self.model
            .network
            .forward(&scratch.rows, &mut scratch.hidden, &mut scratch.logits);
        softmax(&scratch.logits, self.model.temperature, &mut scratch.probs);
    }

    /// Raw (uncalibrated) logits of `text`, for calibration and tests.
    pub fn logits(&self, text: &str, scratch: &mut Scratch) -> Vec<f32> {
        self.run(text, scratch);
        scratch.logits.clone()
    }
}
