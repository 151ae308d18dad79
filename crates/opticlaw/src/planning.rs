//! The planner in the daemon: a message that asks for an action ("read
//! notes.txt", "run ls", "save a note ...", `/run`, `/read`) becomes a
//! validated, budgeted, tier-labelled task graph for the orchestrator, and
//! the planner's decisions are stored in the same transaction as the task
//! (`opticlaw explain EVENT_ID` prints them).
//!
//! The planner is built from the same `[[policy]]` as the orchestrator and
//! knows only the tools the orchestrator runs. Cheap first: the rules plan
//! without a model; a model plans only a message triage passed on, that its
//! classifier says needs a tool, and only through the model router's value
//! gate.

use chrono::Utc;
use opticlaw_core::EventEnvelope;
use opticlaw_orchestrator::{OrchError, Orchestrator, OutcomeHook};
use opticlaw_planner::rules::{self, RuleMatch};
use opticlaw_planner::{
    Decomposed, Goal, LlmDecomposer, Planned, Planner, Provenance, SelfModel, ToolDescription,
    catalog, inspector,
};
use opticlaw_security::PolicyConfig;
use opticlaw_security::approval::Principal;
use opticlaw_security::tier::{PolicyError, PolicyRule};
use opticlaw_store::rusqlite::{self, Connection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::Config;

/// The metadata key of an event whose text did not come from the user
/// (an email or a page forwarded by an automation): its value is a
/// [`Provenance`] name, and anything derived from it acts only after the
/// user's approval.
pub const PROVENANCE_KEY: &str = "provenance";

/// The orchestrator's runner scopes and the finer scopes the planner's
/// plans name for them: a `[[policy]]` rule for the runner's scope also
/// sets the planner's.
const SCOPE_ALIASES: [(&str, &str, &str); 2] =
    [("shell", "exec", "run"), ("file.write", "write", "append")];

/// The planner's policy: the daemon's `[[policy]]`, plus the planner's
/// scope names for the same runners at the same tier.
pub fn planner_policy(config: &Config) -> PolicyConfig {
    let mut policy = config.policy.clone();
    for (tool, runner_scope, plan_scope) in SCOPE_ALIASES {
        let known = |scope: &str, rules: &[PolicyRule]| {
            rules.iter().any(|r| r.tool == tool && r.scope == scope)
        };
        if known(plan_scope, &policy) {
            continue;
        }
        if let Some(rule) = policy
            .iter()
            .find(|r| r.tool == tool && (r.scope == runner_scope || r.scope == "*"))
            .cloned()
        {
            policy.push(PolicyRule {
                scope: plan_scope.to_owned(),
                ..rule
            });
        }
    }
    PolicyConfig { policy }
}

/// The planner's tool list: only what the orchestrator runs.
pub fn daemon_tools() -> Vec<ToolDescription> {
    catalog::default_tools()
        .into_iter()
        .filter(|t| crate::config::KNOWN_TOOLS.contains(&t.tool.as_str()))
        .collect()
}

/// Builds the daemon's planner.
pub fn build_planner(config: &Config) -> Result<Planner, PolicyError> {
    Planner::with_tools(&planner_policy(config), daemon_tools())
}

/// Feeds every tool call's end into the planner's capabilities matrix.
pub struct SelfModelHook;

impl OutcomeHook for SelfModelHook {
    fn tool_outcome(
        &self,
        conn: &Connection,
        tool: &str,
        scope: &str,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        inspector::record_outcome(conn, tool, scope, error)
    }
}

/// Where an event's text came from: the user's own chat unless the event
/// says otherwise; an unknown name counts as untrusted.
pub fn provenance_of(event: &EventEnvelope) -> Provenance {
    match event.metadata.get(PROVENANCE_KEY) {
        None => Provenance::User,
        Some(value) => serde_json::from_value(value.clone()).unwrap_or(Provenance::Web),
    }
}

/// The goal of one event.
pub fn goal_for(event: &EventEnvelope, text: &str, intent: Option<String>) -> Goal {
    let mut goal = Goal::from_user(&event.event_id, &event.user_id, text);
    goal.provenance = provenance_of(event);
    goal.intent = intent;
    goal
}

/// Whether the rules plan `text` (so the planner takes the message without
/// any model call).
pub fn rules_plan(text: &str, intent: Option<&str>) -> bool {
    matches!(rules::decompose(text, intent), Some(RuleMatch::Plan { .. }))
}

/// Plans `goal` (rules, else `llm` when given) under `task_id`.
pub async fn plan_goal(
    planner: &Planner,
    orch: &Orchestrator,
    goal: &Goal,
    task_id: Uuid,
    llm: Option<&LlmDecomposer<'_>>,
) -> Result<Planned, String> {
    let self_model = load_self_model(orch).await?;
    Ok(planner.plan_as(goal, task_id, &self_model, llm).await)
}

/// The capabilities matrix and failure signatures, as stored.
pub async fn load_self_model(orch: &Orchestrator) -> Result<SelfModel, String> {
    orch.store()
        .call(|conn| Ok(SelfModel::load(conn)?))
        .await
        .map_err(|e| format!("reading the planner's self-model: {e}"))
}

/// Hands a plan to the orchestrator, with its decisions stored in the
/// task's first transaction; a refusal stores its decisions alone and is
/// returned as the error shown to the user.
pub async fn submit(
    orch: &Orchestrator,
    planned: Planned,
    principal: Principal,
) -> Result<(String, Value), String> {
    let graph = match &planned.result {
        Ok(Decomposed::Graph(graph)) => graph.clone(),
        Ok(Decomposed::StaysInTriage) => {
            return Err("that is a reminder: say \"remind me ...\" to schedule it".into());
        }
        Err(error) => {
            let shown = error.to_string();
            orch.store()
                .call(move |conn| Ok(planned.persist(conn, Utc::now().timestamp_millis())?))
                .await
                .map_err(|e| format!("storing the planner's decisions: {e}"))?;
            return Err(shown);
        }
    };
    let summary: Vec<String> = graph
        .nodes
        .iter()
        .map(|n| {
            let tier = n.policy.trust_tier.map_or(0, |t| t as u8);
            let approval = if n.policy.requires_approval {
                ", needs approval"
            } else {
                ""
            };
            format!("{} (tier {tier}{approval})", n.id)
        })
        .collect();
    let request = planned.request_id.clone();
    let on_insert =
        Box::new(move |conn: &Connection| planned.persist(conn, Utc::now().timestamp_millis()));
    let task = orch
        .submit_with(graph, principal, on_insert)
        .await
        .map_err(|e: OrchError| e.to_string())?;
    Ok((
        format!(
            "On it (task {task}): {}. I'll report back here; `opticlaw explain {request}` says why.",
            summary.join(" -> ")
        ),
        json!({ "path": "planner", "task": task, "plan": summary }),
    ))
}

/// The principal an event acts for.
pub fn principal_of(event: &EventEnvelope) -> Principal {
    Principal {
        source: event.source.clone(),
        user_id: event.user_id.clone(),
        chat_id: event.thread_id.clone(),
    }
}
