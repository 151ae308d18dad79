//! Building task nodes and reading the fields the planner puts in `params`.
//!
//! A tool node's params are `{"tool", "scope", "resource", "args"}`; a
//! reason node's `{"prompt"}`; a message node's `{"text"}`. The planner adds
//! `derived_from` (untrusted sources the node's input may come from) and
//! `verifies` (on a verify node, the node it checks).

use opticlaw_core::{NodeBudget, NodeKind, NodePolicy, TaskNode};
use serde_json::{Value, json};

fn node(id: &str, kind: NodeKind, deps: &[&str], params: Value) -> TaskNode {
    TaskNode {
        id: id.to_owned(),
        kind,
        deps: deps.iter().map(|d| (*d).to_owned()).collect(),
        // Set by the risk assessor and the budget router.
        policy: NodePolicy {
            requires_approval: false,
            trust_tier: None,
        },
        budget: NodeBudget {
            max_ms: 0,
            max_cost: 0.0,
        },
        params,
    }
}

/// A tool call: `tool` in `scope` on `resource`, with `args`.
pub fn tool(
    id: &str,
    deps: &[&str],
    tool: &str,
    scope: &str,
    resource: &str,
    args: Value,
) -> TaskNode {
    node(
        id,
        NodeKind::Tool,
        deps,
        json!({"tool": tool, "scope": scope, "resource": resource, "args": args}),
    )
}

/// Model reasoning over the outputs of `deps`.
pub fn reason(id: &str, deps: &[&str], prompt: &str) -> TaskNode {
    node(id, NodeKind::Reason, deps, json!({"prompt": prompt}))
}

/// A reply to the user in the chat the request came from.
pub fn message(id: &str, deps: &[&str], text: &str) -> TaskNode {
    node(id, NodeKind::Message, deps, json!({"text": text}))
}

/// The `(tool, scope)` of a tool node, if it names them.
pub fn tool_of(node: &TaskNode) -> Option<(&str, &str)> {
    if node.kind != NodeKind::Tool {
        return None;
    }
    let tool = node.params.get("tool")?.as_str()?;
    let scope = node.params.get("scope")?.as_str()?;
    Some((tool, scope))
}

/// Sets one field of a node's params (making them an object if needed).
pub fn set_param(node: &mut TaskNode, key: &str, value: Value) {
    if !node.params.is_object() {
        node.params = json!({});
    }
    node.params
        .as_object_mut()
        .expect("params were just made an object")
        .insert(key.to_owned(), value);
}
