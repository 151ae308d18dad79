use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TrustTier;

/// A plan: a DAG of nodes, each depending on the nodes named in `deps`
/// (blueprint 7.2). Build one with [`TaskGraph::from_json`] or check one with
/// [`TaskGraph::validate`]: cycles, dangling or duplicate ids are rejected
/// with an error that names the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskGraph {
    pub task_id: Uuid,
    pub goal: String,
    pub nodes: Vec<TaskNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskNode {
    pub id: String,
    pub kind: NodeKind,
    pub deps: Vec<String>,
    pub policy: NodePolicy,
    pub budget: NodeBudget,
    /// Kind-specific input (tool name and arguments, message text, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Reason,
    Tool,
    Message,
    Approval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePolicy {
    pub requires_approval: bool,
    #[serde(default)]
    pub trust_tier: Option<TrustTier>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeBudget {
    pub max_ms: u64,
    pub max_cost: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TaskGraphError {
    #[error("task graph JSON is invalid at `{path}`{node}: {message}")]
    Malformed {
        path: String,
        /// ` (node "n2")` when the failing element is a node with a known id.
        node: String,
        message: String,
    },
    #[error("task graph has two nodes with id \"{0}\"")]
    DuplicateNode(String),
    #[error("node \"{node}\" depends on \"{missing}\", which is not in the graph")]
    DanglingDependency { node: String, missing: String },
    #[error("node \"{0}\" depends on itself")]
    SelfDependency(String),
    #[error("task graph has a cycle through node \"{0}\"")]
    Cycle(String),
    #[error("task graph has no nodes")]
    Empty,
}

impl TaskGraph {
    /// Parses and validates a graph, naming the node at fault in any error.
    pub fn from_json(text: &str) -> Result<Self, TaskGraphError> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let graph: TaskGraph = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            TaskGraphError::Malformed {
                node: node_named_in(text, &path),
                message: err.into_inner().to_string(),
                path,
            }
        })?;
        graph.validate()?;
        Ok(graph)
    }

    /// Checks that ids are unique, every dependency exists, and the
    /// dependencies form no cycle.
    pub fn validate(&self) -> Result<(), TaskGraphError> {
        if self.nodes.is_empty() {
            return Err(TaskGraphError::Empty);
        }
        let mut index = HashMap::with_capacity(self.nodes.len());
        for (position, node) in self.nodes.iter().enumerate() {
            if index.insert(node.id.as_str(), position).is_some() {
                return Err(TaskGraphError::DuplicateNode(node.id.clone()));
            }
        }
        for node in &self.nodes {
            for dep in &node.deps {
                if dep == &node.id {
                    return Err(TaskGraphError::SelfDependency(node.id.clone()));
                }
                if !index.contains_key(dep.as_str()) {
                    return Err(TaskGraphError::DanglingDependency {
                        node: node.id.clone(),
                        missing: dep.clone(),
                    });
                }
            }
        }
        self.topological_order_from(&index).map(|_| ())
    }

    /// Node ids in an order where every node comes after its dependencies.
    pub fn topological_order(&self) -> Result<Vec<&str>, TaskGraphError> {
        self.validate()?;
        let index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        self.topological_order_from(&index)
    }

    // Kahn's algorithm; nodes left with unmet dependencies lie on a cycle.
    fn topological_order_from(
        &self,
        index: &HashMap<&str, usize>,
    ) -> Result<Vec<&str>, TaskGraphError> {
        let mut unmet: Vec<usize> = self.nodes.iter().map(|n| n.deps.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (position, node) in self.nodes.iter().enumerate() {
            for dep in &node.deps {
                dependents[index[dep.as_str()]].push(position);
            }
        }
        let mut ready: Vec<usize> = (0..self.nodes.len()).filter(|&i| unmet[i] == 0).collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(position) = ready.pop() {
            order.push(self.nodes[position].id.as_str());
            for &dependent in &dependents[position] {
                unmet[dependent] -= 1;
                if unmet[dependent] == 0 {
                    ready.push(dependent);
                }
            }
        }
        if order.len() < self.nodes.len() {
            let on_cycle = (0..self.nodes.len())
                .find(|&i| unmet[i] > 0)
                .map(|i| self.nodes[i].id.clone())
                .unwrap_or_default();
            return Err(TaskGraphError::Cycle(on_cycle));
        }
        Ok(order)
    }
}

/// For an error path like `nodes[2].kind`, the id of node 2 if it has one.
fn node_named_in(text: &str, path: &str) -> String {
    let Some(rest) = path.strip_prefix("nodes[") else {
        return String::new();
    };
    let Some(position) = rest.split(']').next().and_then(|n| n.parse::<usize>().ok()) else {
        return String::new();
    };
    let Ok(value) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(text) else {
        return String::new();
    };
    match value
        .get("nodes")
        .and_then(|nodes| nodes.get(position))
        .and_then(|node| node.get("id"))
        .and_then(|id| id.as_str())
    {
        Some(id) => format!(" (node \"{id}\")"),
        None => format!(" (node #{position}, which has no id)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(nodes: &str) -> String {
        format!(
            r#"{{"task_id":"0192b3a4-0000-7000-8000-000000000001","goal":"g","nodes":[{nodes}]}}"#
        )
    }

    fn node(id: &str, deps: &[&str]) -> String {
        let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
        format!(
            r#"{{"id":"{id}","kind":"tool","deps":[{}],"policy":{{"requires_approval":false}},"budget":{{"max_ms":100,"max_cost":0.01}}}}"#,
            deps.join(",")
        )
    }

    #[test]
    fn valid_graph_orders_dependencies_first() {
        let text = graph(&[node("a", &[]), node("b", &["a"]), node("c", &["a", "b"])].join(","));
        let parsed = TaskGraph::from_json(&text).unwrap();
        let order = parsed.topological_order().unwrap();
        let pos = |id| order.iter().position(|n| *n == id).unwrap();
        assert!(pos("a") < pos("b") && pos("b") < pos("c"));
    }

    #[test]
    fn cycle_is_rejected_naming_a_node_on_it() {
        let text = graph(
            &[
                node("a", &["c"]),
                node("b", &["a"]),
                node("c", &["b"]),
                node("d", &[]),
            ]
            .join(","),
        );
        match TaskGraph::from_json(&text) {
            Err(TaskGraphError::Cycle(id)) => assert!(["a", "b", "c"].contains(&id.as_str())),
            other => panic!("expected a cycle error, got {other:?}"),
        }
    }

    #[test]
    fn dangling_dependency_names_node_and_missing_id() {
        let text = graph(&[node("a", &[]), node("b", &["zz"])].join(","));
        let err = TaskGraph::from_json(&text).unwrap_err();
        assert_eq!(
            err,
            TaskGraphError::DanglingDependency {
                node: "b".into(),
                missing: "zz".into()
            }
        );
        assert!(err.to_string().contains("\"b\"") && err.to_string().contains("\"zz\""));
    }

    #[test]
    fn missing_field_names_the_node() {
        let broken = r#"{"id":"n2","deps":[],"policy":{"requires_approval":false},"budget":{"max_ms":1,"max_cost":0}}"#;
        let text = graph(&[node("n1", &[]), broken.to_owned()].join(","));
        let err = TaskGraph::from_json(&text).unwrap_err().to_string();
        assert!(err.contains("nodes[1]"), "{err}");
        assert!(err.contains("\"n2\""), "{err}");
        assert!(err.contains("kind"), "{err}");
    }

    #[test]
    fn duplicate_and_self_dependency_are_rejected() {
        let dup = graph(&[node("a", &[]), node("a", &[])].join(","));
        assert_eq!(
            TaskGraph::from_json(&dup).unwrap_err(),
            TaskGraphError::DuplicateNode("a".into())
        );
        let selfish = graph(&node("a", &["a"]));
        assert_eq!(
            TaskGraph::from_json(&selfish).unwrap_err(),
            TaskGraphError::SelfDependency("a".into())
        );
    }
}
