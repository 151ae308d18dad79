//! The goal decomposer: rules first, the model only when no rule applies.

use opticlaw_core::TaskGraph;
use opticlaw_models::Outcome;
use serde_json::json;
use uuid::Uuid;

use crate::PlanError;
use crate::catalog::ToolDescription;
use crate::decision::Decision;
use crate::goal::Goal;
use crate::llm::LlmDecomposer;
use crate::rules::{self, RuleMatch};

/// What decomposition made of a goal.
#[derive(Debug, Clone, PartialEq)]
pub enum Decomposed {
    /// A validated plan (budgets and tiers not yet set).
    Graph(TaskGraph),
    /// Triage handles it (reminders); no plan.
    StaysInTriage,
}

/// Decomposition's result with its decision and any model calls.
#[derive(Debug)]
pub struct Decomposition {
    pub result: Result<Decomposed, PlanError>,
    pub decisions: Vec<Decision>,
    /// Router outcomes to persist for accounting.
    pub model_outcomes: Vec<Outcome>,
}

/// Turns a goal into a task graph.
#[derive(Debug, Clone)]
pub struct GoalDecomposer {
    pub tools: Vec<ToolDescription>,
}

impl GoalDecomposer {
    /// Rule-matched intents are planned deterministically; anything else
    /// goes to `llm` (or fails clearly when there is none).
    pub async fn decompose(
        &self,
        goal: &Goal,
        task_id: Uuid,
        llm: Option<&LlmDecomposer<'_>>,
    ) -> Decomposition {
        match rules::decompose(&goal.text, goal.intent.as_deref()) {
            Some(RuleMatch::StaysInTriage { rule }) => Decomposition {
                result: Ok(Decomposed::StaysInTriage),
                decisions: vec![Decision::new(
                    "decompose",
                    None,
                    "no plan: triage answers it",
                    &format!(
                        "rule `{rule}` matched; reminders are scheduled by triage, not planned"
                    ),
                    json!({"rule": rule, "intent": goal.intent}),
                )],
                model_outcomes: Vec::new(),
            },
            Some(RuleMatch::Plan { rule, nodes }) => {
                let graph = TaskGraph {
                    task_id,
                    goal: goal.text.clone(),
                    nodes,
                };
                let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
                let decision = Decision::new(
                    "decompose",
                    None,
                    &format!("plan by rule `{rule}`: {}", ids.join(" -> ")),
                    &format!(
                        "the goal matches the deterministic rule `{rule}`, so no model was called"
                    ),
                    json!({"rule": rule, "intent": goal.intent}),
                );
                Decomposition {
                    result: graph
                        .validate()
                        .map(|()| Decomposed::Graph(graph))
                        .map_err(|e| PlanError::NoPlan(e.to_string())),
                    decisions: vec![decision],
                    model_outcomes: Vec::new(),
                }
            }
            None => match llm {
                None => Decomposition {
                    result: Err(PlanError::NoPlan(
                        "no rule matches this goal and no model is configured to plan it"
                            .to_owned(),
                    )),
                    decisions: Vec::new(),
                    model_outcomes: Vec::new(),
                },
                Some(llm) => {
                    let planned = llm.plan(goal, task_id, &self.tools).await;
                    let mut decisions = Vec::new();
                    if let Ok(graph) = &planned.result {
                        let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
                        let models: Vec<String> = planned
                            .outcomes
                            .iter()
                            .filter_map(|o| o.usage.last())
                            .map(|u| format!("{}/{}", u.provider, u.model))
                            .collect();
                        let repaired = planned
                            .repaired
                            .as_deref()
                            .map(|e| format!(" after one repair (the first plan was invalid: {e})"))
                            .unwrap_or_default();
                        decisions.push(Decision::new(
                            "decompose",
                            None,
                            &format!("plan by model: {}", ids.join(", ")),
                            &format!(
                                "no rule matches the goal, so a model planned it{repaired}; the plan passed validation"
                            ),
                            json!({"models": models, "repaired": planned.repaired}),
                        ));
                    }
                    Decomposition {
                        result: planned.result.map(Decomposed::Graph),
                        decisions,
                        model_outcomes: planned.outcomes,
                    }
                }
            },
        }
    }
}
