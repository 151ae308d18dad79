//! OptiClaw's tiny intent classifier: the cheap model in front of every LLM
//! call.
//!
//! A message becomes hashed word unigrams, bigrams and character 2–5-grams;
//! a one-hidden-layer ReLU network over their embedding bag predicts one of
//! CLINC150's 150 intents, a few assistant intents, or `oos`. Probabilities
//! are temperature-calibrated, a threshold turns unsure answers into out of
//! scope, and a gate marks answers confident enough for the fast path.
//! Urgency and tool-need are expectations over an intent table
//! ([`intents::profile`]). The trained weights ship in the crate
//! (`model/intent.ocm`, loaded with `include_bytes!`), and
//! [`train::train`] reproduces them bit for bit.
//!
//! ```
//! use opticlaw_intent::Classifier;
//! let classifier = Classifier::shipped();
//! let p = classifier.classify("set an alarm for 7 am");
//! assert_eq!(p.intent, "alarm");
//! assert!(p.in_scope);
//! println!("{:.2} because {:?}", p.confidence, p.contributions);
//!
//! // The hot path: no allocation once the scratch is warm.
//! let mut scratch = classifier.scratch();
//! let d = classifier.decide("what is the capital of peru in 1700", &mut scratch);
//! println!("{} {}", classifier.class_name(d.class), d.in_scope);
//! ```
//!
//! Messages are cut at [`text::MAX_INPUT_BYTES`] bytes; any input, however
//! odd, gets a decision.

pub mod bench;
pub mod calibrate;
mod classifier;
pub mod data;
mod error;
pub mod intents;
pub mod model;
pub mod network;
mod rng;
pub mod text;
pub mod train;

pub use classifier::{
    Classifier, Decision, Prediction, SHIPPED_MODEL, Scratch, TOP_CONTRIBUTIONS, TOP_INTENTS,
};
pub use error::IntentError;
