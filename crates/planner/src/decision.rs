//! "Why this action?": one record per planning decision (how the goal was
//! decomposed, what the self-model changed, each node's budget and tier),
//! kept under the request id (the event id of the message) and printed by
//! `opticlaw explain REQUEST_ID`.

use std::fmt::Write as _;

use opticlaw_store::rusqlite::{self, Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One decision, before it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `decompose`, `inspector`, `budget` or `risk`.
    pub stage: String,
    /// The node it concerns; `None` for the whole plan.
    pub node: Option<String>,
    /// What was decided, in a short phrase.
    pub decision: String,
    /// Why, in words.
    pub why: String,
    /// The figures the decision was made from.
    pub inputs: Value,
}

impl Decision {
    pub fn new(stage: &str, node: Option<&str>, decision: &str, why: &str, inputs: Value) -> Self {
        Self {
            stage: stage.to_owned(),
            node: node.map(str::to_owned),
            decision: decision.to_owned(),
            why: why.to_owned(),
            inputs,
        }
    }
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub request_id: String,
    pub seq: i64,
    pub at_ms: i64,
    #[serde(flatten)]
    pub decision: Decision,
}

/// Appends `decisions` under `request_id`, after any already stored.
pub fn record(
    conn: &Connection,
    request_id: &str,
    decisions: &[Decision],
    at_ms: i64,
) -> rusqlite::Result<()> {
    let start: i64 = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM planner_decisions WHERE request_id = ?1",
        [request_id],
        |row| row.get(0),
    )?;
    let mut insert = conn.prepare(
        "INSERT INTO planner_decisions (request_id, seq, at_ms, stage, node, decision, why, inputs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (offset, d) in decisions.iter().enumerate() {
        insert.execute(params![
            request_id,
            start + 1 + offset as i64,
            at_ms,
            d.stage,
            d.node,
            d.decision,
            d.why,
            d.inputs.to_string(),
        ])?;
    }
    Ok(())
}

/// Every decision stored for a request, in order.
pub fn for_request(conn: &Connection, request_id: &str) -> rusqlite::Result<Vec<DecisionRecord>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at_ms, stage, node, decision, why, inputs FROM planner_decisions
         WHERE request_id = ?1 ORDER BY seq",
    )?;
    stmt.query_map([request_id], |row| {
        let inputs: String = row.get(6)?;
        Ok(DecisionRecord {
            request_id: request_id.to_owned(),
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            decision: Decision {
                stage: row.get(2)?,
                node: row.get(3)?,
                decision: row.get(4)?,
                why: row.get(5)?,
                inputs: serde_json::from_str(&inputs).unwrap_or(Value::String(inputs)),
            },
        })
    })?
    .collect()
}

/// The records as text: one numbered decision per paragraph.
pub fn render(records: &[DecisionRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let d = &r.decision;
        let node = d
            .node
            .as_deref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        let _ = writeln!(out, "{}. {}{}: {}", r.seq, d.stage, node, d.decision);
        let _ = writeln!(out, "   why: {}", d.why);
        if !d.inputs.is_null() {
            let _ = writeln!(out, "   from: {}", d.inputs);
        }
    }
    out
}
