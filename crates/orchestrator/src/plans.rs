//! Building small task graphs by hand: the daemon's `/run` and `/read`
//! commands, tests and benches. The planner builds richer ones; the
//! orchestrator accepts any graph that validates.

use opticlaw_core::{NodeBudget, NodeKind, NodePolicy, TaskGraph, TaskNode};
use serde_json::{Value, json};
use uuid::Uuid;

/// Budget of a node built here unless set otherwise.
pub const DEFAULT_NODE_MS: u64 = 30_000;

/// Builds a graph node by node.
///
/// ```
/// use opticlaw_orchestrator::plans::GraphBuilder;
/// use serde_json::json;
///
/// let graph = GraphBuilder::new("note it")
///     .tool("write", &[], "file.write", json!({ "path": "notes.txt", "content": "hi" }))
///     .tool("check", &["write"], "file.read", json!({ "path": "notes.txt" }))
///     .build();
/// assert!(graph.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: TaskGraph,
}

impl GraphBuilder {
    pub fn new(goal: impl Into<String>) -> Self {
        Self {
            graph: TaskGraph {
                task_id: Uuid::now_v7(),
                goal: goal.into(),
                nodes: Vec::new(),
            },
        }
    }

    /// Uses `task_id` (see [`task_id_for_event`]) instead of a fresh one.
    pub fn task_id(mut self, task_id: Uuid) -> Self {
        self.graph.task_id = task_id;
        self
    }

    /// Adds a tool node running `tool` with `args`.
    pub fn tool(self, id: &str, deps: &[&str], tool: &str, args: Value) -> Self {
        self.node(
            id,
            deps,
            NodeKind::Tool,
            json!({ "tool": tool, "args": args }),
        )
    }

    /// Adds a tool node that declares a compensating action.
    pub fn tool_with_undo(
        self,
        id: &str,
        deps: &[&str],
        (tool, args): (&str, Value),
        (undo_tool, undo_args): (&str, Value),
    ) -> Self {
        self.node(
            id,
            deps,
            NodeKind::Tool,
            json!({
                "tool": tool,
                "args": args,
                "compensate": { "tool": undo_tool, "args": undo_args },
            }),
        )
    }

    /// Adds any node.
    pub fn node(mut self, id: &str, deps: &[&str], kind: NodeKind, params: Value) -> Self {
        self.graph.nodes.push(TaskNode {
            id: id.to_owned(),
            kind,
            deps: deps.iter().map(|d| (*d).to_owned()).collect(),
            policy: NodePolicy {
                requires_approval: false,
                trust_tier: None,
            },
            budget: NodeBudget {
                max_ms: DEFAULT_NODE_MS,
                max_cost: 0.0,
            },
            params,
        });
        self
    }

    /// Sets the last node's time budget.
    pub fn budget_ms(mut self, max_ms: u64) -> Self {
        if let Some(node) = self.graph.nodes.last_mut() {
            node.budget.max_ms = max_ms;
        }
        self
    }

    /// Marks the last node as needing the user's approval.
    pub fn requires_approval(mut self) -> Self {
        if let Some(node) = self.graph.nodes.last_mut() {
            node.policy.requires_approval = true;
        }
        self
    }

    pub fn build(self) -> TaskGraph {
        self.graph
    }
}

/// The task id of the plan made for one accepted event: the same event,
/// redelivered after a crash, maps to the same task, which then runs once.
pub fn task_id_for_event(source: &str, event_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("opticlaw:event:{source}:{event_id}").as_bytes(),
    )
}
