//! The triage layer: deterministic rules first, then the tiny intent
//! classifier with its confidence gate and fast handlers, then the planner.
//!
//! 1. [`RuleEngine::evaluate`]: a rule that matches decides
//!    ([`Route::FastReply`], the rule's action, the rule's name).
//! 2. Otherwise the classifier ([`opticlaw_intent::Classifier`]): an
//!    in-scope intent at or above the fast-path gate whose deterministic
//!    handler ([`crate::handlers`]) can answer goes to
//!    [`Route::FastReply`] with rule name `intent:<name>`.
//! 3. Everything else (out of scope, below the gate, or needing tools,
//!    data or knowledge) goes to [`Route::PlanAndExecute`] with
//!    [`RuleAction::NeedsModel`] and rule name `none`.
//!
//! Every decision carries [`RetrievalHints`] and says why it was taken; its
//! [`Explanation`] is serialisable, for storing as the event's outcome.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use opticlaw_intent::{Classifier, Prediction};

use crate::explain::Explainer;
use serde::{Deserialize, Serialize};

use crate::handlers;
use crate::hints::{self, RetrievalHints};
use crate::rules::{RuleAction, RuleEngine};

/// Errors building a [`Triage`].
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// A model file given instead of the shipped one could not be loaded.
    #[error("cannot load the intent model: {0}")]
    Model(#[from] opticlaw_intent::IntentError),
}

/// Where a message goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Route {
    /// Answered now by a rule or a deterministic handler, without a model.
    FastReply,
    /// Needs the planner and a model.
    PlanAndExecute,
}

impl Route {
    /// `FAST_REPLY` or `PLAN_AND_EXECUTE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::FastReply => "FAST_REPLY",
            Route::PlanAndExecute => "PLAN_AND_EXECUTE",
        }
    }
}

/// What the classifier said about a message (absent when a rule decided
/// before the classifier ran).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentSummary {
    /// The intent, or `oos` when out of scope.
    pub intent: String,
    /// Calibrated probability of the most probable class.
    pub confidence: f32,
    /// False when the top class is `oos` or below the out-of-scope threshold.
    pub in_scope: bool,
    /// In scope and at or above the fast-path gate.
    pub confident: bool,
    /// Expected urgency in `[0, 1]`.
    pub urgency: f32,
    /// Expected probability that a tool is needed.
    pub tool_needed: f32,
    /// The most probable classes with their calibrated probabilities.
    pub top: Vec<(String, f32)>,
    /// The features that pushed the top class most, e.g. `("word:alarm", 1.9)`.
    pub contributions: Vec<(String, f32)>,
}

impl From<Prediction> for IntentSummary {
    fn from(p: Prediction) -> Self {
        Self {
            intent: p.intent,
            confidence: p.confidence,
            in_scope: p.in_scope,
            confident: p.confident,
            urgency: p.urgency,
            tool_needed: p.tool_needed,
            top: p.top,
            contributions: p.contributions,
        }
    }
}

/// A triage decision: what to do, where it goes, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TriageDecision {
    /// The deciding rule's name, `intent:<name>` when a fast handler
    /// answered a classified intent, or `none` when the planner is needed.
    pub rule: String,
    /// What to do (the runtime carries it out as it does a rule's).
    pub action: RuleAction,
    /// Fast reply or planner.
    pub route: Route,
    /// The classifier's view, when it ran.
    pub intent: Option<IntentSummary>,
    /// Hints for the planner and memory retrieval.
    pub hints: RetrievalHints,
    /// One sentence saying why, e.g. "intent `greeting` at 0.97 ≥ gate 0.62,
    /// answered by its deterministic handler".
    pub why: String,
}

/// The serialisable record of a [`TriageDecision`] (the action by kind
/// only: the reply or reminder itself is stored with the event's replies
/// and tasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// See [`TriageDecision::rule`].
    pub rule: String,
    /// See [`TriageDecision::route`].
    pub route: Route,
    /// `reply`, `status`, `schedule_reminder`, `list_reminders`,
    /// `cancel_reminder` or `needs_model`.
    pub action: String,
    /// See [`TriageDecision::why`].
    pub why: String,
    /// See [`TriageDecision::intent`].
    pub intent: Option<IntentSummary>,
    /// See [`TriageDecision::hints`].
    pub hints: RetrievalHints,
}

impl TriageDecision {
    /// The serialisable explanation of this decision.
    pub fn explanation(&self) -> Explanation {
        Explanation {
            rule: self.rule.clone(),
            route: self.route,
            action: action_kind(&self.action).to_owned(),
            why: self.why.clone(),
            intent: self.intent.clone(),
            hints: self.hints.clone(),
        }
    }

    /// [`Self::explanation`] as JSON, ready to store as an event's outcome.
    pub fn explanation_json(&self) -> serde_json::Value {
        serde_json::to_value(self.explanation()).unwrap_or_else(|err| {
            // Only a non-finite float could fail; say so rather than panic.
            serde_json::json!({ "rule": self.rule, "route": self.route.as_str(), "error": err.to_string() })
        })
    }
}

/// The name of an action's kind.
pub fn action_kind(action: &RuleAction) -> &'static str {
    match action {
        RuleAction::Reply(_) => "reply",
        RuleAction::Status => "status",
        RuleAction::ScheduleReminder(_) => "schedule_reminder",
        RuleAction::ListReminders => "list_reminders",
        RuleAction::CancelReminder(_) => "cancel_reminder",
        RuleAction::NeedsModel => "needs_model",
        RuleAction::Act(_) => "act",
    }
}

/// Rules, then the classifier, then the planner. Cheap to share: deciding
/// takes `&self`, and `Triage` is `Send + Sync`.
pub struct Triage {
    rules: RuleEngine,
    classifier: Cow<'static, Classifier>,
    explainer: Explainer,
}

impl Triage {
    /// The given rules in front of the shipped classifier
    /// ([`Classifier::shipped`]).
    pub fn new(rules: RuleEngine) -> Self {
        let classifier = Classifier::shipped();
        Self {
            rules,
            explainer: Explainer::new(classifier),
            classifier: Cow::Borrowed(classifier),
        }
    }

    /// The given rules in front of a model read from `bytes` (a file
    /// written by `opticlaw triage train`).
    pub fn with_model_bytes(rules: RuleEngine, bytes: &[u8]) -> Result<Self, TriageError> {
        let classifier = Classifier::from_bytes(bytes)?;
        Ok(Self {
            rules,
            explainer: Explainer::new(&classifier),
            classifier: Cow::Owned(classifier),
        })
    }

    /// The rule layer.
    pub fn rules(&self) -> &RuleEngine {
        &self.rules
    }

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Decides what to do with `text`, with `now` in the user's time zone.
    /// Any input gets a decision; messages are read up to the classifier's
    /// limit ([`opticlaw_intent::text::MAX_INPUT_BYTES`]).
    pub fn decide(&self, text: &str, now: DateTime<FixedOffset>) -> TriageDecision {
        let ruled = self.rules.evaluate(text, now);
        if ruled.action == RuleAction::NeedsModel && ruled.rule != "none" {
            // A command the daemon's answerer handles (`/memory ...`): no
            // classifier may answer it instead.
            return TriageDecision {
                why: format!("command `/{}` goes to the daemon's answerer", ruled.rule),
                rule: ruled.rule,
                action: RuleAction::NeedsModel,
                route: Route::PlanAndExecute,
                intent: None,
                hints: hints::extract(text, now, None),
            };
        }
        if ruled.action != RuleAction::NeedsModel {
            return TriageDecision {
                why: format!("rule `{}` matched", ruled.rule),
                rule: ruled.rule,
                action: ruled.action,
                route: Route::FastReply,
                intent: None,
                hints: hints::extract(text, now, None),
            };
        }
        let cut = opticlaw_intent::text::truncate(text);
        let (summary, profile) = self.explainer.explain(&self.classifier, cut);
        let domain = summary.in_scope.then(|| profile.domain.to_owned());
        let hints = hints::extract(cut, now, domain);
        let model = self.classifier.model();
        let (intent, p) = (summary.intent.as_str(), summary.confidence);
        let handled = if summary.confident && profile.fast_path {
            handlers::answer(intent, cut, now)
        } else {
            None
        };
        let (rule, action, route, why) = match handled {
            Some(action) => (
                format!("intent:{intent}"),
                action,
                Route::FastReply,
                format!(
                    "intent `{intent}` at {p:.2} ≥ gate {:.2}, answered by its deterministic handler",
                    model.gate_threshold
                ),
            ),
            None => {
                let why = if !summary.in_scope {
                    let top = summary.top.first().map_or("oos", |(name, _)| name.as_str());
                    format!(
                        "out of scope (top class `{top}` at {p:.2}, threshold {:.2})",
                        model.oos_threshold
                    )
                } else if !summary.confident {
                    format!(
                        "intent `{intent}` at {p:.2} is below the fast-path gate {:.2}",
                        model.gate_threshold
                    )
                } else if !profile.fast_path {
                    format!("intent `{intent}` needs tools, data or knowledge")
                } else {
                    format!(
                        "intent `{intent}`: its deterministic handler cannot answer this message"
                    )
                };
                (
                    "none".to_owned(),
                    RuleAction::NeedsModel,
                    Route::PlanAndExecute,
                    why,
                )
            }
        };
        TriageDecision {
            rule,
            action,
            route,
            intent: Some(summary),
            hints,
            why,
        }
    }
}

impl Default for Triage {
    /// Default rules in front of the shipped classifier.
    fn default() -> Self {
        Self::new(RuleEngine::default())
    }
}
