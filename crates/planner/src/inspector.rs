//! The self-model: how reliable each tool has been, which failures it is
//! known for and what to do about them; and the inspector that changes a
//! plan accordingly. A tool under the reliability threshold is replaced by
//! its configured alternative when that one is reliable, and otherwise gets
//! a verify node after it that its dependents wait for.

use std::collections::BTreeMap;

use opticlaw_core::TaskGraph;
use opticlaw_store::rusqlite::{self, Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::decision::Decision;
use crate::nodes;

/// Below this reliability a tool gets a verify node or an alternative.
pub const DEFAULT_RELIABILITY_THRESHOLD: f64 = 0.8;

/// One row of the capabilities matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub tool: String,
    pub scope: String,
    /// Successes + 1 over runs + 2 (Laplace): an untried tool is at 0.5
    /// until outcomes say otherwise, unless seeded.
    pub reliability: f64,
    pub successes: u64,
    pub failures: u64,
    /// `tool:scope` to use instead when this one is unreliable.
    pub alternative: Option<String>,
}

/// A known way a tool fails, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureSignature {
    pub tool: String,
    pub scope: String,
    /// The error with numbers and paths blanked, so repeats group.
    pub signature: String,
    pub mitigation: String,
    pub seen: u64,
}

/// The capabilities matrix and failure signatures, read from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfModel {
    pub capabilities: BTreeMap<(String, String), Capability>,
    pub failures: Vec<FailureSignature>,
}

impl SelfModel {
    /// Reads the whole self-model.
    pub fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut model = SelfModel::default();
        let mut stmt = conn.prepare(
            "SELECT tool, scope, successes, failures, prior, alternative FROM planner_capabilities",
        )?;
        let rows = stmt.query_map([], |row| {
            let successes: i64 = row.get(2)?;
            let failures: i64 = row.get(3)?;
            let prior: Option<f64> = row.get(4)?;
            Ok(Capability {
                tool: row.get(0)?,
                scope: row.get(1)?,
                reliability: reliability(successes as u64, failures as u64, prior),
                successes: successes as u64,
                failures: failures as u64,
                alternative: row.get(5)?,
            })
        })?;
        for capability in rows {
            let capability = capability?;
            model.capabilities.insert(
                (capability.tool.clone(), capability.scope.clone()),
                capability,
            );
        }
        let mut stmt = conn.prepare(
            "SELECT tool, scope, signature, mitigation, seen FROM planner_failure_signatures
             ORDER BY seen DESC, signature",
        )?;
        model.failures = stmt
            .query_map([], |row| {
                Ok(FailureSignature {
                    tool: row.get(0)?,
                    scope: row.get(1)?,
                    signature: row.get(2)?,
                    mitigation: row.get(3)?,
                    seen: row.get::<_, i64>(4)? as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(model)
    }

    /// The reliability of a tool; a tool never seen counts as reliable
    /// (the matrix lists what has been measured or configured).
    pub fn reliability(&self, tool: &str, scope: &str) -> Option<f64> {
        self.capabilities
            .get(&(tool.to_owned(), scope.to_owned()))
            .map(|c| c.reliability)
    }

    fn mitigations(&self, tool: &str, scope: &str) -> Vec<&FailureSignature> {
        self.failures
            .iter()
            .filter(|f| f.tool == tool && f.scope == scope)
            .collect()
    }
}

fn reliability(successes: u64, failures: u64, prior: Option<f64>) -> f64 {
    // A configured prior counts as ten runs' worth of evidence.
    let (prior_ok, prior_runs) = match prior {
        Some(p) => (p * 10.0, 10.0),
        None => (1.0, 2.0),
    };
    (successes as f64 + prior_ok) / ((successes + failures) as f64 + prior_runs)
}

/// Configures a tool's row: a prior reliability and an alternative.
pub fn seed_capability(
    conn: &Connection,
    tool: &str,
    scope: &str,
    prior: f64,
    alternative: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO planner_capabilities (tool, scope, successes, failures, prior, alternative)
         VALUES (?1, ?2, 0, 0, ?3, ?4)
         ON CONFLICT (tool, scope) DO UPDATE SET prior = ?3, alternative = ?4",
        params![tool, scope, prior, alternative],
    )?;
    Ok(())
}

/// Records how a tool run ended: success counts up, a failure counts up and
/// groups its error under a signature (new signatures get the mitigation
/// "verify the output").
pub fn record_outcome(
    conn: &Connection,
    tool: &str,
    scope: &str,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    let (ok, failed) = if error.is_some() { (0, 1) } else { (1, 0) };
    conn.execute(
        "INSERT INTO planner_capabilities (tool, scope, successes, failures)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tool, scope) DO UPDATE
         SET successes = successes + ?3, failures = failures + ?4",
        params![tool, scope, ok, failed],
    )?;
    if let Some(error) = error {
        conn.execute(
            "INSERT INTO planner_failure_signatures (tool, scope, signature, mitigation, seen)
             VALUES (?1, ?2, ?3, 'verify the output', 1)
             ON CONFLICT (tool, scope, signature) DO UPDATE SET seen = seen + 1",
            params![tool, scope, signature_of(error)],
        )?;
    }
    Ok(())
}

/// Sets the mitigation for a failure signature.
pub fn set_mitigation(
    conn: &Connection,
    tool: &str,
    scope: &str,
    signature: &str,
    mitigation: &str,
) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE planner_failure_signatures SET mitigation = ?4
         WHERE tool = ?1 AND scope = ?2 AND signature = ?3",
        params![tool, scope, signature, mitigation],
    )?;
    Ok(changed > 0)
}

/// The first line of an error with digits and absolute paths blanked.
pub fn signature_of(error: &str) -> String {
    let line = error.lines().next().unwrap_or("").trim();
    let mut out = String::with_capacity(line.len());
    let mut in_path = false;
    for ch in line.chars() {
        if ch == '/' && !in_path {
            in_path = true;
            out.push_str("<path>");
            continue;
        }
        if in_path {
            if ch.is_whitespace() {
                in_path = false;
                out.push(ch);
            }
            continue;
        }
        if ch.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
            continue;
        }
        out.push(ch);
    }
    out.chars().take(200).collect()
}

/// Changes plans according to the self-model.
#[derive(Debug, Clone)]
pub struct SelfModelInspector {
    pub threshold: f64,
}

impl Default for SelfModelInspector {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_RELIABILITY_THRESHOLD,
        }
    }
}

impl SelfModelInspector {
    /// Swaps or guards unreliable tools, and attaches known mitigations to
    /// the nodes they concern. Returns one decision per change.
    pub fn apply(&self, graph: &mut TaskGraph, model: &SelfModel) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut guards = Vec::new();
        for node in &mut graph.nodes {
            let Some((tool, scope)) =
                nodes::tool_of(node).map(|(t, s)| (t.to_owned(), s.to_owned()))
            else {
                continue;
            };
            let known: Vec<Value> = model
                .mitigations(&tool, &scope)
                .iter()
                .map(|f| json!({"signature": f.signature, "mitigation": f.mitigation}))
                .collect();
            if !known.is_empty() {
                nodes::set_param(node, "mitigations", Value::Array(known));
            }
            let Some(score) = model.reliability(&tool, &scope) else {
                continue;
            };
            if score >= self.threshold {
                continue;
            }
            let capability = &model.capabilities[&(tool.clone(), scope.clone())];
            let alternative = capability.alternative.as_deref().and_then(|alt| {
                let (alt_tool, alt_scope) = alt.split_once(':')?;
                let alt_score = model.reliability(alt_tool, alt_scope).unwrap_or(1.0);
                (alt_score >= self.threshold)
                    .then(|| (alt_tool.to_owned(), alt_scope.to_owned(), alt_score))
            });
            match alternative {
                Some((alt_tool, alt_scope, alt_score)) => {
                    nodes::set_param(node, "tool", json!(alt_tool));
                    nodes::set_param(node, "scope", json!(alt_scope));
                    decisions.push(Decision::new(
                        "inspector",
                        Some(&node.id),
                        &format!("use {alt_tool}:{alt_scope} instead of {tool}:{scope}"),
                        &format!(
                            "{tool}:{scope} has reliability {score:.2}, under the threshold {:.2}; \
                             its alternative {alt_tool}:{alt_scope} has {alt_score:.2}",
                            self.threshold
                        ),
                        json!({"tool": tool, "scope": scope, "reliability": score,
                               "alternative": format!("{alt_tool}:{alt_scope}"), "alternative_reliability": alt_score}),
                    ));
                }
                None => guards.push((node.id.clone(), tool, scope, score)),
            }
        }
        for (id, tool, scope, score) in guards {
            let verify_id = unique_id(graph, &format!("verify_{id}"));
            // Dependents of the unreliable node now wait for its check.
            for other in &mut graph.nodes {
                for dep in &mut other.deps {
                    if *dep == id {
                        *dep = verify_id.clone();
                    }
                }
            }
            let mut verify = nodes::reason(
                &verify_id,
                &[&id],
                &format!(
                    "Check that {tool} ({scope}) did what node {id} asked; report a failure otherwise."
                ),
            );
            nodes::set_param(&mut verify, "verifies", json!(id));
            let position = graph
                .nodes
                .iter()
                .position(|n| n.id == id)
                .map_or(graph.nodes.len(), |p| p + 1);
            graph.nodes.insert(position, verify);
            decisions.push(Decision::new(
                "inspector",
                Some(&id),
                &format!("add verify node {verify_id} after {id}"),
                &format!(
                    "{tool}:{scope} has reliability {score:.2}, under the threshold {:.2}, and no reliable alternative",
                    self.threshold
                ),
                json!({"tool": tool, "scope": scope, "reliability": score, "verify_node": verify_id}),
            ));
        }
        decisions
    }
}

fn unique_id(graph: &TaskGraph, wanted: &str) -> String {
    let mut id = wanted.to_owned();
    let mut n = 2;
    while graph.nodes.iter().any(|node| node.id == id) {
        id = format!("{wanted}_{n}");
        n += 1;
    }
    id
}
