//! OptiClaw's planner: from a goal to a task graph the orchestrator may run.
//!
//! [`Planner::plan`] runs four stages, each recording why it did what it did:
//!
//! 1. [`GoalDecomposer`]: deterministic [`rules`] for recognised intents
//!    ("run X", "read/summarize FILE", "save a note"; reminders stay in
//!    triage), otherwise the [`llm`] decomposer through the model router
//!    with the `TaskGraph` schema as structured output, validated, with one
//!    repair round-trip.
//! 2. [`SelfModelInspector`]: tools under the reliability threshold of the
//!    stored capabilities matrix get an alternative or a verify node.
//! 3. [`BudgetRouter`]: each node's `max_ms` and `max_cost`.
//! 4. [`RiskAssessor`]: each node's trust tier from the policy and the
//!    provenance of its input; exfiltration is refused.
//!
//! The decisions ([`decision`]) are stored under the request id and printed
//! by `opticlaw explain REQUEST_ID`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use opticlaw_planner::{Goal, Planner, SelfModel, Decomposed};
//! let planner = Planner::with_defaults();
//! let goal = Goal::from_user("evt-1", "alice", "save a note: call the plumber");
//! let planned = planner.plan(&goal, &SelfModel::default(), None).await;
//! let Ok(Decomposed::Graph(graph)) = planned.result else { panic!() };
//! assert_eq!(graph.nodes[0].params["tool"], "file.write");
//! assert!(!graph.nodes[0].policy.requires_approval);
//! # });
//! ```

pub mod budget;
pub mod catalog;
pub mod decision;
pub mod decomposer;
pub mod goal;
pub mod inspector;
pub mod llm;
pub mod nodes;
pub mod risk;
pub mod rules;
mod schema;

use opticlaw_models::Outcome;
use opticlaw_security::tier::PolicyError;
use opticlaw_security::{Policy, PolicyConfig};
use opticlaw_store::rusqlite::{self, Connection};
use serde_json::json;
use uuid::Uuid;

pub use budget::BudgetRouter;
pub use catalog::ToolDescription;
pub use decision::{Decision, DecisionRecord};
pub use decomposer::{Decomposed, GoalDecomposer};
pub use goal::{Attachment, Goal, Provenance, TaskBudget};
pub use inspector::{SelfModel, SelfModelInspector};
pub use llm::LlmDecomposer;
pub use risk::RiskAssessor;
pub use schema::COMPONENT;

/// Why there is no plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("no plan: {0}")]
    NoPlan(String),
    #[error("the model could not plan: {0}")]
    Model(String),
    #[error("the model's plan was invalid twice: first {first}; after repair {second}")]
    InvalidPlan { first: String, second: String },
    #[error("refused node \"{node}\": {reason}")]
    Refused { node: String, reason: String },
}

/// Everything one planning run produced: the result, the decisions made on
/// the way (kept even when planning failed, so a refusal is explained),
/// and the model calls to account for.
#[derive(Debug)]
pub struct Planned {
    pub request_id: String,
    pub result: Result<Decomposed, PlanError>,
    pub decisions: Vec<Decision>,
    pub model_outcomes: Vec<Outcome>,
}

impl Planned {
    /// Writes the decisions and the model accounting (call it on the
    /// store's writer thread, in one transaction with the plan if any).
    pub fn persist(&self, conn: &Connection, at_ms: i64) -> rusqlite::Result<()> {
        decision::record(conn, &self.request_id, &self.decisions, at_ms)?;
        for outcome in &self.model_outcomes {
            opticlaw_models::accounting::persist_outcome(conn, outcome)?;
        }
        Ok(())
    }
}

/// The four stages, configured.
#[derive(Debug, Clone)]
pub struct Planner {
    pub decomposer: GoalDecomposer,
    pub inspector: SelfModelInspector,
    pub budget: BudgetRouter,
    pub risk: RiskAssessor,
}

impl Planner {
    /// A planner over `policy` and the default tool list.
    pub fn new(policy: &PolicyConfig) -> Result<Self, PolicyError> {
        Self::with_tools(policy, catalog::default_tools())
    }

    /// A planner over `policy` that plans only with `tools` (the daemon
    /// passes the tools its orchestrator runs).
    pub fn with_tools(
        policy: &PolicyConfig,
        tools: Vec<ToolDescription>,
    ) -> Result<Self, PolicyError> {
        Ok(Self {
            decomposer: GoalDecomposer {
                tools: tools.clone(),
            },
            inspector: SelfModelInspector::default(),
            budget: BudgetRouter,
            risk: RiskAssessor::new(Policy::from_config(policy)?, tools),
        })
    }

    /// A planner over the default policy ([`catalog::default_policy`]).
    pub fn with_defaults() -> Self {
        Self::new(&catalog::default_policy()).expect("the default policy has no duplicates")
    }

    /// Plans `goal`: decompose, inspect, budget, assess.
    pub async fn plan(
        &self,
        goal: &Goal,
        self_model: &SelfModel,
        llm: Option<&LlmDecomposer<'_>>,
    ) -> Planned {
        self.plan_as(goal, Uuid::now_v7(), self_model, llm).await
    }

    /// Like [`Planner::plan`], under a task id the caller chose (the
    /// daemon derives it from the event, so a redelivered event plans the
    /// same task).
    pub async fn plan_as(
        &self,
        goal: &Goal,
        task_id: Uuid,
        self_model: &SelfModel,
        llm: Option<&LlmDecomposer<'_>>,
    ) -> Planned {
        let decomposition = self.decomposer.decompose(goal, task_id, llm).await;
        let planned = Planned {
            request_id: goal.request_id.clone(),
            result: Err(PlanError::NoPlan(String::new())),
            decisions: decomposition.decisions,
            model_outcomes: decomposition.model_outcomes,
        };
        match decomposition.result {
            Ok(Decomposed::Graph(graph)) => self.finish(planned, graph, goal, self_model),
            other => {
                let mut planned = planned;
                planned.result = other;
                planned.refusal_decision();
                planned
            }
        }
    }

    /// Plans `nodes` a command already spelled out (`/run`, `/read`): no
    /// decomposition, the other three stages as for any plan. `command`
    /// names it in the decision record.
    pub fn plan_nodes(
        &self,
        goal: &Goal,
        task_id: Uuid,
        command: &str,
        nodes: Vec<opticlaw_core::TaskNode>,
        self_model: &SelfModel,
    ) -> Planned {
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let decision = Decision::new(
            "decompose",
            None,
            &format!("plan by command `{command}`: {}", ids.join(" -> ")),
            &format!(
                "the user typed the command `{command}`, which names the action; no model was called"
            ),
            json!({"command": command}),
        );
        let graph = opticlaw_core::TaskGraph {
            task_id,
            goal: goal.text.clone(),
            nodes,
        };
        let planned = Planned {
            request_id: goal.request_id.clone(),
            result: Err(PlanError::NoPlan(String::new())),
            decisions: vec![decision],
            model_outcomes: Vec::new(),
        };
        match graph.validate() {
            Ok(()) => self.finish(planned, graph, goal, self_model),
            Err(error) => {
                let mut planned = planned;
                planned.result = Err(PlanError::NoPlan(error.to_string()));
                planned.refusal_decision();
                planned
            }
        }
    }

    /// Inspect, budget and assess a decomposed graph.
    fn finish(
        &self,
        mut planned: Planned,
        mut graph: opticlaw_core::TaskGraph,
        goal: &Goal,
        self_model: &SelfModel,
    ) -> Planned {
        planned
            .decisions
            .extend(self.inspector.apply(&mut graph, self_model));
        planned
            .decisions
            .extend(self.budget.assign(&mut graph, goal.budget));
        planned.result = self
            .risk
            .assess(&mut graph, &goal.untrusted_sources())
            .map(|decisions| {
                planned.decisions.extend(decisions);
                Decomposed::Graph(graph)
            });
        planned.refusal_decision();
        planned
    }
}

impl Planned {
    fn refusal_decision(&mut self) {
        if let Err(error) = &self.result {
            let node = match error {
                PlanError::Refused { node, .. } => Some(node.as_str()),
                _ => None,
            };
            self.decisions.push(Decision::new(
                "refuse",
                node,
                "no plan",
                &error.to_string(),
                json!(null),
            ));
        }
    }
}
