//! The event log of tasks and nodes: every transition one appended row,
//! checked against the state machine, and the current state of a task
//! rebuilt by folding its rows in order.

use std::collections::BTreeMap;

use opticlaw_core::TaskGraph;
use opticlaw_security::approval::Principal;
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::{State, Subject};

/// Why the log refused a write or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("task {task}{}: illegal transition from {} to {to}", node_label(.node), .from.map_or("(nothing)", State::as_str))]
    Illegal {
        task: String,
        node: Option<String>,
        from: Option<State>,
        to: State,
    },
    #[error("task {task}{}: expected state {expected} but it is {}", node_label(.node), .actual.map_or("(nothing)", State::as_str))]
    Conflict {
        task: String,
        node: Option<String>,
        expected: State,
        actual: Option<State>,
    },
    #[error("no task {0}")]
    UnknownTask(String),
    #[error("task {task} has no node {node}")]
    UnknownNode { task: String, node: String },
    #[error("task {task}: stored record is unreadable: {message}")]
    Corrupt { task: String, message: String },
    #[error("orchestrator log: {0}")]
    Store(#[from] rusqlite::Error),
}

fn node_label(node: &Option<String>) -> String {
    node.as_ref()
        .map(|n| format!(" node {n}"))
        .unwrap_or_default()
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionRecord {
    pub seq: i64,
    pub node_id: Option<String>,
    pub from: Option<State>,
    pub to: State,
    pub detail: Value,
    pub at_ms: i64,
}

/// A node's state as rebuilt from the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeView {
    pub state: Option<State>,
    /// Attempt number of the current or last tool call (1 for the first).
    pub attempt: u32,
    /// How many times a dead letter containing this node was replayed.
    pub run: u32,
    /// The action as prepared for the current run (stored before the call,
    /// reused on retries and after a crash).
    pub prepared: Option<Value>,
    pub approval_id: Option<String>,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// When a retry is due (ms since the epoch), while blocked on one.
    pub retry_at_ms: Option<i64>,
    /// Log position of the completion: compensation runs in reverse order.
    pub completed_seq: Option<i64>,
}

/// A task's state as rebuilt from the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub graph: TaskGraph,
    pub principal: Principal,
    pub state: State,
    pub nodes: BTreeMap<String, NodeView>,
}

impl TaskView {
    /// A node's view; every node of the graph has one.
    pub fn node(&self, id: &str) -> &NodeView {
        &self.nodes[id]
    }

    /// The view of a task just planned: it and every node `planned`.
    fn planned(task_id: String, graph: TaskGraph, principal: Principal) -> Self {
        let nodes = graph
            .nodes
            .iter()
            .map(|n| {
                let view = NodeView {
                    state: Some(State::Planned),
                    ..NodeView::default()
                };
                (n.id.clone(), view)
            })
            .collect();
        Self {
            task_id,
            graph,
            principal,
            state: State::Planned,
            nodes,
        }
    }

    /// Folds one more record of this task's log into the view: how
    /// [`load`] rebuilds a task, and how the orchestrator keeps its live
    /// views current after each commit without reading the log again.
    pub fn apply(&mut self, record: &TransitionRecord) -> Result<(), JournalError> {
        let Some(node_id) = &record.node_id else {
            self.state = record.to;
            return Ok(());
        };
        let view = self
            .nodes
            .get_mut(node_id)
            .ok_or_else(|| JournalError::Corrupt {
                task: self.task_id.clone(),
                message: format!("transition for unknown node {node_id}"),
            })?;
        apply(view, record);
        Ok(())
    }
}

/// Records a new task and its `planned` transitions (task and every node),
/// and returns its view; `None` when the task was recorded already.
pub fn insert_task(
    conn: &Connection,
    graph: &TaskGraph,
    principal: &Principal,
    now_ms: i64,
) -> Result<Option<TaskView>, JournalError> {
    let task_id = graph.task_id.to_string();
    let inserted = conn.execute(
        "INSERT INTO orch_tasks (task_id, graph, principal, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (task_id) DO NOTHING",
        params![task_id, to_json(graph), to_json(principal), now_ms],
    )?;
    if inserted == 0 {
        return Ok(None);
    }
    transition(
        conn,
        &task_id,
        None,
        None,
        State::Planned,
        &Value::Null,
        now_ms,
    )?;
    for node in &graph.nodes {
        transition(
            conn,
            &task_id,
            Some(&node.id),
            None,
            State::Planned,
            &Value::Null,
            now_ms,
        )?;
    }
    Ok(Some(TaskView::planned(
        task_id,
        graph.clone(),
        principal.clone(),
    )))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// The current state of a task (`node = None`) or of one node.
pub fn current(
    conn: &Connection,
    task: &str,
    node: Option<&str>,
) -> Result<Option<State>, JournalError> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT to_state FROM orch_transitions WHERE task_id = ?1 AND node_id = ?2
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![task, node.unwrap_or("")], |row| row.get(0))
        .optional()?;
    text.map(|t| {
        State::parse(&t).ok_or_else(|| JournalError::Corrupt {
            task: task.to_owned(),
            message: format!("unknown state {t:?}"),
        })
    })
    .transpose()
}

/// Appends `expected -> to` for a task or node and returns the appended
/// record (to fold into a view kept in memory). Refused (and nothing is
/// written) when the subject is not in `expected` (`None`: not yet
/// recorded) or the state machine has no such edge.
pub fn transition(
    conn: &Connection,
    task: &str,
    node: Option<&str>,
    expected: Option<State>,
    to: State,
    detail: &Value,
    now_ms: i64,
) -> Result<TransitionRecord, JournalError> {
    let actual = current(conn, task, node)?;
    if actual != expected {
        return Err(match expected {
            Some(expected) => JournalError::Conflict {
                task: task.to_owned(),
                node: node.map(str::to_owned),
                expected,
                actual,
            },
            None => JournalError::Illegal {
                task: task.to_owned(),
                node: node.map(str::to_owned),
                from: actual,
                to,
            },
        });
    }
    let subject = if node.is_some() {
        Subject::Node
    } else {
        Subject::Task
    };
    let legal = match actual {
        None => to == State::Planned,
        Some(from) => from.allows(to, subject),
    };
    if !legal {
        return Err(JournalError::Illegal {
            task: task.to_owned(),
            node: node.map(str::to_owned),
            from: actual,
            to,
        });
    }
    conn.prepare_cached(
        "INSERT INTO orch_transitions (task_id, node_id, from_state, to_state, detail, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        task,
        node.unwrap_or(""),
        actual.map(State::as_str),
        to.as_str(),
        detail.to_string(),
        now_ms
    ])?;
    Ok(TransitionRecord {
        seq: conn.last_insert_rowid(),
        node_id: node.map(str::to_owned),
        from: actual,
        to,
        detail: detail.clone(),
        at_ms: now_ms,
    })
}

/// Every transition of a task, in order.
pub fn history(conn: &Connection, task: &str) -> Result<Vec<TransitionRecord>, JournalError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, node_id, from_state, to_state, detail, at_ms FROM orch_transitions
         WHERE task_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([task], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, i64>(5)?,
        ))
    })?;
    let corrupt = |message: String| JournalError::Corrupt {
        task: task.to_owned(),
        message,
    };
    let mut out = Vec::new();
    for row in rows {
        let (seq, node, from, to, detail, at_ms) = row?;
        let parse =
            |text: &str| State::parse(text).ok_or_else(|| corrupt(format!("state {text:?}")));
        out.push(TransitionRecord {
            seq,
            node_id: (!node.is_empty()).then_some(node),
            from: from.as_deref().map(parse).transpose()?,
            to: parse(&to)?,
            detail: serde_json::from_str(&detail).map_err(|e| corrupt(e.to_string()))?,
            at_ms,
        });
    }
    Ok(out)
}

/// Rebuilds a task's state from its log: what the orchestrator does after
/// a crash, and what every decision reads.
pub fn load(conn: &Connection, task: &str) -> Result<TaskView, JournalError> {
    let (graph, principal): (String, String) = conn
        .prepare_cached("SELECT graph, principal FROM orch_tasks WHERE task_id = ?1")?
        .query_row([task], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or_else(|| JournalError::UnknownTask(task.to_owned()))?;
    let corrupt = |message: String| JournalError::Corrupt {
        task: task.to_owned(),
        message,
    };
    let graph: TaskGraph = serde_json::from_str(&graph).map_err(|e| corrupt(e.to_string()))?;
    let principal: Principal =
        serde_json::from_str(&principal).map_err(|e| corrupt(e.to_string()))?;
    let mut view = TaskView {
        task_id: task.to_owned(),
        nodes: graph
            .nodes
            .iter()
            .map(|n| (n.id.clone(), NodeView::default()))
            .collect(),
        graph,
        principal,
        state: State::Planned,
    };
    let mut task_recorded = false;
    for record in history(conn, task)? {
        task_recorded |= record.node_id.is_none();
        view.apply(&record)?;
    }
    if !task_recorded {
        return Err(corrupt("no task transitions".into()));
    }
    Ok(view)
}

fn apply(view: &mut NodeView, record: &TransitionRecord) {
    let detail = &record.detail;
    let text = |name: &str| detail[name].as_str().map(str::to_owned);
    match record.to {
        State::Planned if record.from.is_some() => {
            // A replay starts a fresh run with fresh idempotency keys.
            *view = NodeView {
                run: view.run + 1,
                ..NodeView::default()
            };
        }
        State::Blocked => {
            if let Some(id) = text("approval_id") {
                view.approval_id = Some(id);
            }
            view.retry_at_ms = detail["retry_at_ms"].as_i64();
            view.error = text("error").or(view.error.take());
        }
        State::Running => {
            view.attempt = detail["attempt"].as_u64().unwrap_or(1) as u32;
            if !detail["prepared"].is_null() {
                view.prepared = Some(detail["prepared"].clone());
            }
            view.retry_at_ms = None;
        }
        State::Completed => {
            view.output = Some(detail["output"].clone());
            view.completed_seq = Some(record.seq);
        }
        State::Failed | State::RolledBack => {
            view.error = text("error").or(view.error.take());
        }
        _ => {}
    }
    view.state = Some(record.to);
}

/// Tasks not yet in a final state: resumed after a restart.
pub fn unfinished_tasks(conn: &Connection) -> Result<Vec<String>, JournalError> {
    let mut statement = conn.prepare(
        "SELECT t.task_id FROM orch_tasks t
         WHERE (SELECT to_state FROM orch_transitions x WHERE x.task_id = t.task_id
                AND x.node_id = '' ORDER BY seq DESC LIMIT 1)
               NOT IN ('completed', 'failed', 'rolled_back')
         ORDER BY t.created_ms",
    )?;
    let rows = statement.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Remembers which node an approval request belongs to.
pub fn link_approval(
    conn: &Connection,
    approval_id: &str,
    task: &str,
    node: &str,
) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO orch_approvals (approval_id, task_id, node_id) VALUES (?1, ?2, ?3)",
        params![approval_id, task, node],
    )?;
    Ok(())
}

/// The task and node an approval request belongs to.
pub fn approval_subject(
    conn: &Connection,
    approval_id: &str,
) -> Result<Option<(String, String)>, JournalError> {
    Ok(conn
        .query_row(
            "SELECT task_id, node_id FROM orch_approvals WHERE approval_id = ?1",
            [approval_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// The prepared action stored under an idempotency key, if any.
pub fn prepared(conn: &Connection, key: &str) -> Result<Option<Value>, JournalError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT args FROM orch_prepared WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| JournalError::Corrupt {
            task: key.to_owned(),
            message: e.to_string(),
        })
    })
    .transpose()
}

/// Stores `args` under `key` unless something is stored already, and
/// returns what is stored: the first preparation wins.
pub fn prepare_once(conn: &Connection, key: &str, args: &Value) -> Result<Value, JournalError> {
    conn.execute(
        "INSERT INTO orch_prepared (key, args) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![key, args.to_string()],
    )?;
    Ok(prepared(conn, key)?.unwrap_or_else(|| args.clone()))
}

/// Records a token minted for one call of `node` (under idempotency `key`),
/// so that stopping the task can revoke it.
pub fn record_token(
    conn: &Connection,
    revocation_id: &str,
    task: &str,
    node: &str,
    key: &str,
    expires_ms: i64,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO orch_tokens (revocation_id, task_id, node_id, key, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![revocation_id, task, node, key, expires_ms])?;
    Ok(())
}

/// The revocation ids of a task's tokens still unexpired at `now_ms`.
pub fn live_tokens(
    conn: &Connection,
    task: &str,
    now_ms: i64,
) -> Result<Vec<String>, JournalError> {
    let mut statement = conn.prepare_cached(
        "SELECT revocation_id FROM orch_tokens WHERE task_id = ?1 AND expires_ms > ?2
         ORDER BY revocation_id",
    )?;
    let rows = statement.query_map(params![task, now_ms], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A task that failed for good, waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub task_id: String,
    pub node_id: String,
    pub reason: String,
    pub at_ms: i64,
    pub replayed_ms: Option<i64>,
}

/// Puts a task in the dead-letter queue (again, if it was replayed).
pub fn dead_letter(
    conn: &Connection,
    task: &str,
    node: &str,
    reason: &str,
    now_ms: i64,
) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO orch_dead_letters (task_id, node_id, reason, at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (task_id) DO UPDATE SET node_id = excluded.node_id,
             reason = excluded.reason, at_ms = excluded.at_ms, replayed_ms = NULL",
        params![task, node, reason, now_ms],
    )?;
    Ok(())
}

/// Dead letters, oldest first; with `open_only`, those not replayed.
pub fn dead_letters(conn: &Connection, open_only: bool) -> Result<Vec<DeadLetter>, JournalError> {
    let mut statement = conn.prepare(
        "SELECT task_id, node_id, reason, at_ms, replayed_ms FROM orch_dead_letters
         WHERE (?1 = 0 OR replayed_ms IS NULL) ORDER BY at_ms, task_id",
    )?;
    let rows = statement.query_map([open_only as i64], |row| {
        Ok(DeadLetter {
            task_id: row.get(0)?,
            node_id: row.get(1)?,
            reason: row.get(2)?,
            at_ms: row.get(3)?,
            replayed_ms: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a dead letter replayed; `false` if there is no open one.
pub fn mark_replayed(conn: &Connection, task: &str, now_ms: i64) -> Result<bool, JournalError> {
    Ok(conn.execute(
        "UPDATE orch_dead_letters SET replayed_ms = ?2 WHERE task_id = ?1 AND replayed_ms IS NULL",
        params![task, now_ms],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::GraphBuilder;

    fn store() -> opticlaw_store::Store {
        let dir = tempfile::tempdir().unwrap().keep();
        opticlaw_store::Store::open_with(
            &dir.join("o.db"),
            opticlaw_store::Synchronous::Normal,
            &[opticlaw_security::COMPONENT, crate::COMPONENT],
        )
        .unwrap()
    }

    fn principal() -> Principal {
        Principal {
            source: "local".into(),
            user_id: "me".into(),
            chat_id: "c".into(),
        }
    }

    #[test]
    fn an_illegal_transition_is_refused_naming_task_node_from_and_to() {
        let store = store();
        let conn = store.connection();
        let graph = GraphBuilder::new("g")
            .tool("n1", &[], "file.read", serde_json::json!({}))
            .build();
        let task = graph.task_id.to_string();
        insert_task(conn, &graph, &principal(), 1).unwrap();
        let error = transition(
            conn,
            &task,
            Some("n1"),
            Some(State::Planned),
            State::Completed,
            &Value::Null,
            2,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&task)
                && text.contains("n1")
                && text.contains("planned")
                && text.contains("completed"),
            "{text}"
        );
        // Nothing was written, and a wrong expectation is refused too.
        assert_eq!(
            current(conn, &task, Some("n1")).unwrap(),
            Some(State::Planned)
        );
        assert!(matches!(
            transition(
                conn,
                &task,
                Some("n1"),
                Some(State::Running),
                State::Completed,
                &Value::Null,
                3
            ),
            Err(JournalError::Conflict { .. })
        ));
        // The log itself cannot be rewritten.
        assert!(conn.execute("DELETE FROM orch_transitions", []).is_err());
    }

    #[test]
    fn state_is_rebuilt_from_the_log() {
        let store = store();
        let conn = store.connection();
        let graph = GraphBuilder::new("g")
            .tool("a", &[], "file.read", serde_json::json!({}))
            .tool("b", &["a"], "file.read", serde_json::json!({}))
            .build();
        let task = graph.task_id.to_string();
        insert_task(conn, &graph, &principal(), 1).unwrap();
        let step = |node, from, to, detail: Value| {
            transition(conn, &task, Some(node), Some(from), to, &detail, 2).unwrap();
        };
        step("a", State::Planned, State::Approved, Value::Null);
        step(
            "a",
            State::Approved,
            State::Running,
            serde_json::json!({ "attempt": 1, "prepared": { "x": 1 } }),
        );
        step(
            "a",
            State::Running,
            State::Blocked,
            serde_json::json!({ "retry_at_ms": 99, "error": "flaky" }),
        );
        step(
            "a",
            State::Blocked,
            State::Running,
            serde_json::json!({ "attempt": 2 }),
        );
        step(
            "a",
            State::Running,
            State::Completed,
            serde_json::json!({ "output": "ok" }),
        );
        let view = load(conn, &task).unwrap();
        let a = view.node("a");
        assert_eq!(a.state, Some(State::Completed));
        assert_eq!(a.attempt, 2);
        assert_eq!(
            a.prepared,
            Some(serde_json::json!({ "x": 1 })),
            "kept across the retry"
        );
        assert_eq!(a.output, Some(serde_json::json!("ok")));
        assert_eq!(view.node("b").state, Some(State::Planned));
        assert_eq!(view.state, State::Planned);
        assert_eq!(unfinished_tasks(conn).unwrap(), vec![task]);
    }
}
