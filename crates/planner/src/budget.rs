//! The budget router: each node's `max_ms` and `max_cost`, from the task's
//! budget and the node's kind.
//!
//! Time: nodes on one dependency chain run one after another, so each node
//! gets the task's time in proportion to its kind's weight over the weight
//! of the heaviest chain; no chain can then overrun the task. Money: only
//! reason nodes call models, so they share the task's money by weight and
//! the other kinds get none. Approval nodes wait for a person, not a
//! machine: they get the approval window instead of a share.

use std::collections::HashMap;

use opticlaw_core::{NodeKind, TaskGraph};
use serde_json::json;

use crate::decision::Decision;
use crate::goal::TaskBudget;

/// How long an approval node waits for the user (the security core's
/// approval lifetime).
pub const APPROVAL_WAIT_MS: u64 = 15 * 60 * 1000;

/// A kind's share of time and money relative to the others.
pub fn weight(kind: NodeKind) -> u64 {
    match kind {
        NodeKind::Reason => 4,
        NodeKind::Tool => 2,
        NodeKind::Message => 1,
        NodeKind::Approval => 0,
    }
}

/// Assigns node budgets.
#[derive(Debug, Clone, Copy, Default)]
pub struct BudgetRouter;

impl BudgetRouter {
    /// Sets every node's budget from `task`; one decision per node. The
    /// graph must be valid (acyclic).
    pub fn assign(&self, graph: &mut TaskGraph, task: TaskBudget) -> Vec<Decision> {
        let heaviest = heaviest_chain(graph).max(1);
        let reason_weight: u64 = graph
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Reason)
            .map(|n| weight(n.kind))
            .sum();
        let mut decisions = Vec::with_capacity(graph.nodes.len());
        for node in &mut graph.nodes {
            let w = weight(node.kind);
            let (max_ms, why) = if node.kind == NodeKind::Approval {
                (
                    APPROVAL_WAIT_MS,
                    "an approval waits for the user up to the approval window".to_owned(),
                )
            } else {
                (
                    task.max_ms * w / heaviest,
                    format!(
                        "{:?} weight {w} of {heaviest} on the heaviest chain, of the task's {} ms",
                        node.kind, task.max_ms
                    ),
                )
            };
            let max_cost = if node.kind == NodeKind::Reason && reason_weight > 0 {
                task.max_cost * w as f64 / reason_weight as f64
            } else {
                0.0
            };
            node.budget.max_ms = max_ms;
            node.budget.max_cost = max_cost;
            let money = if max_cost > 0.0 {
                format!(
                    "; ${max_cost:.4} of the task's ${:.4} shared by reason nodes",
                    task.max_cost
                )
            } else {
                "; no model money (only reason nodes call models)".to_owned()
            };
            decisions.push(Decision::new(
                "budget",
                Some(&node.id),
                &format!("max_ms={max_ms} max_cost={max_cost:.4}"),
                &format!("{why}{money}"),
                json!({"kind": node.kind, "weight": w, "heaviest_chain": heaviest,
                       "task_max_ms": task.max_ms, "task_max_cost": task.max_cost}),
            ));
        }
        decisions
    }
}

/// The largest total weight along any dependency chain.
fn heaviest_chain(graph: &TaskGraph) -> u64 {
    let Ok(order) = graph.topological_order() else {
        return graph.nodes.iter().map(|n| weight(n.kind)).sum();
    };
    let by_id: HashMap<&str, &opticlaw_core::TaskNode> =
        graph.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut heaviest_to: HashMap<&str, u64> = HashMap::new();
    for id in order {
        let node = by_id[id];
        let before = node
            .deps
            .iter()
            .map(|d| heaviest_to.get(d.as_str()).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        heaviest_to.insert(id, before + weight(node.kind));
    }
    heaviest_to.values().copied().max().unwrap_or(0)
}
