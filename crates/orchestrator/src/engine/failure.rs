//! When a task fails: refusals, compensation in reverse order, closing the
//! task, and the dead-letter queue.

use super::*;

impl Orchestrator {
    /// Fails a node that may not run at all (no policy, unknown tool,
    /// invalid arguments), audits the refusal, and fails the task.
    pub(super) async fn refuse(
        &self,
        task: &str,
        node: &str,
        from: Option<State>,
        reason: &str,
    ) -> Result<(), OrchError> {
        let (t, n, r) = (task.to_owned(), node.to_owned(), reason.to_owned());
        let moved = self
            .write(move |tx| -> Result<bool, OrchError> {
                match tx.transition(&t, Some(&n), from, State::Failed, &json!({ "error": r })) {
                    Ok(_) => {}
                    Err(JournalError::Conflict { .. }) => return Ok(false),
                    Err(other) => return Err(other.into()),
                }
                audit_append(
                    tx.conn,
                    "refusal",
                    "orchestrator",
                    &json!({ "task": t, "node": n, "reason": r }),
                )?;
                Ok(true)
            })
            .await??;
        if moved {
            self.fail_task(task, node, reason, false).await?;
        }
        Ok(())
    }

    /// After `failed_node` failed for good: compensates completed nodes in
    /// reverse order of completion, fails nodes that never started, closes
    /// the task, and dead-letters it when `dead_letter` is set.
    pub(super) async fn fail_task(
        &self,
        task: &str,
        failed_node: &str,
        reason: &str,
        dead_letter: bool,
    ) -> Result<(), OrchError> {
        if !self.inner.failing.lock().unwrap().insert(task.to_owned()) {
            return Ok(());
        }
        let result = self
            .fail_task_once(task, failed_node, reason, dead_letter)
            .await;
        self.inner.failing.lock().unwrap().remove(task);
        result
    }

    /// [`Self::fail_task`]'s work, run by one caller per task at a time.
    async fn fail_task_once(
        &self,
        task: &str,
        failed_node: &str,
        reason: &str,
        dead_letter: bool,
    ) -> Result<(), OrchError> {
        let view = self.load(task).await?;
        let mut completed: Vec<(&TaskNode, i64)> = view
            .graph
            .nodes
            .iter()
            .filter_map(|n| {
                let state = view.node(&n.id);
                (state.state == Some(State::Completed)).then_some((n, state.completed_seq?))
            })
            .collect();
        completed.sort_by_key(|(_, seq)| std::cmp::Reverse(*seq));
        let mut rolled_back = 0;
        let mut compensation_errors = Vec::new();
        for (node, _) in completed {
            if node.params["compensate"].is_null() {
                continue;
            }
            match self.compensate(&view, node).await? {
                Ok(()) => rolled_back += 1,
                Err(error) => compensation_errors.push(format!("{}: {error}", node.id)),
            }
        }
        // Nodes not started, or waiting (for approval or a retry), never
        // start now; a running one finishes and is compensated then.
        let untouched: Vec<(String, State)> = view
            .graph
            .nodes
            .iter()
            .filter_map(|n| match view.node(&n.id).state {
                Some(s @ (State::Planned | State::Approved | State::Blocked)) => {
                    Some((n.id.clone(), s))
                }
                _ => None,
            })
            .collect();
        let (t, f, r) = (task.to_owned(), failed_node.to_owned(), reason.to_owned());
        let end = if rolled_back > 0 {
            State::RolledBack
        } else {
            State::Failed
        };
        let errors = compensation_errors.clone();
        // Nodes with an undo that had not completed when `view` was read:
        // running ones, and also ones that were only approved then but
        // started and finished before the close below (a loaded machine
        // leaves time for that).
        let unfinished_with_undo: Vec<String> = view
            .graph
            .nodes
            .iter()
            .filter(|n| {
                !n.params["compensate"].is_null()
                    && matches!(
                        view.node(&n.id).state,
                        Some(State::Planned | State::Approved | State::Blocked | State::Running)
                    )
            })
            .map(|n| n.id.clone())
            .collect();
        let why_not_run = if failed_node.is_empty() {
            format!("not run: {reason}")
        } else {
            format!("not run: node {failed_node} failed")
        };
        let closed = self
            .write(move |tx| -> Result<(bool, Vec<String>), OrchError> {
                // Whatever happens next, no token of a stopped task is
                // honoured again (one in flight was checked already).
                let ids = tx.revoke_task_tokens(&t, &format!("task stopped: {r}"))?;
                if !ids.is_empty() {
                    audit_append(
                        tx.conn,
                        "tokens_revoked",
                        "orchestrator",
                        &json!({ "task": t, "reason": r, "revocation_ids": ids }),
                    )?;
                }
                for (id, from) in &untouched {
                    let detail = json!({ "error": why_not_run });
                    match tx.transition(&t, Some(id), Some(*from), State::Failed, &detail) {
                        Ok(_) | Err(JournalError::Conflict { .. }) => {}
                        Err(other) => return Err(other.into()),
                    }
                }
                let from = tx.current(&t, None)?;
                if from.is_none_or(State::is_terminal) {
                    return Ok((false, Vec::new()));
                }
                // Completed since `view` was read, before this close: their
                // completion did not see the task stopped.
                let mut finished_meanwhile = Vec::new();
                for id in &unfinished_with_undo {
                    if tx.current(&t, Some(id))? == Some(State::Completed) {
                        finished_meanwhile.push(id.clone());
                    }
                }
                let detail = json!({ "failed_node": f, "error": r, "compensation_errors": errors });
                tx.transition(&t, None, from, end, &detail)?;
                if dead_letter {
                    journal::dead_letter(tx.conn, &t, &f, &r, now_ms())?;
                    audit_append(
                        tx.conn,
                        "dead_letter",
                        "orchestrator",
                        &json!({ "task": t, "node": f, "reason": r }),
                    )?;
                }
                Ok((true, finished_meanwhile))
            })
            .await??;
        let (closed, finished_meanwhile) = closed;
        if !finished_meanwhile.is_empty() {
            let view = self.load(task).await?;
            for node in view
                .graph
                .nodes
                .iter()
                .filter(|n| finished_meanwhile.contains(&n.id))
            {
                if let Err(error) = self.compensate(&view, node).await? {
                    tracing::warn!(
                        task,
                        node = node.id,
                        error,
                        "rolling back a late step failed"
                    );
                }
            }
        }
        if closed {
            let mut text = if failed_node.is_empty() {
                format!("Task {task} stopped: {reason}.")
            } else {
                format!("Task {task} stopped: node {failed_node} failed: {reason}.")
            };
            if rolled_back > 0 {
                text.push_str(&format!(
                    " {rolled_back} completed step(s) were rolled back."
                ));
            }
            if !compensation_errors.is_empty() {
                text.push_str(&format!(
                    " Rolling back failed for: {}.",
                    compensation_errors.join("; ")
                ));
            }
            if dead_letter {
                text.push_str(" It is in the dead-letter queue (`opticlaw dlq show`).");
            }
            self.tell(&view.principal, text).await;
        }
        Ok(())
    }

    /// Runs a node's declared compensating action (same token, tier and
    /// idempotency path as any call) and marks the node rolled back.
    pub(super) async fn compensate(
        &self,
        view: &TaskView,
        node: &TaskNode,
    ) -> Result<Result<(), String>, OrchError> {
        let spec = &node.params["compensate"];
        let tool = spec["tool"].as_str().unwrap_or_default();
        let Some(runner) = self.inner.runners.get(tool) else {
            return Ok(Err(format!("no runner for compensating tool {tool:?}")));
        };
        if let Err(error) = self.inner.policy.tier(tool, runner.tool().scope()) {
            return Ok(Err(error.to_string()));
        }
        let state = view.node(&node.id);
        let key = format!(
            "{}/compensate",
            idempotency_key(&view.task_id, &node.id, state.run, state.attempt)
        );
        // Prepared once and stored before the call, like a node's own call:
        // a compensation interrupted by a crash replays the same action.
        let k = key.clone();
        let stored = self
            .inner
            .store
            .call(move |conn| Ok(journal::prepared(conn, &k)))
            .await??;
        let prepared = match stored {
            Some(prepared) => prepared,
            None => {
                let prepared = match runner.tool().prepare(&spec["args"]) {
                    Ok(prepared) => prepared,
                    Err(error) => return Ok(Err(error.to_string())),
                };
                let k = key.clone();
                self.inner
                    .store
                    .call(move |conn| Ok(journal::prepare_once(conn, &k, &prepared)))
                    .await??
            }
        };
        let budget = self.inner.config.default_budget;
        let result = self
            .call_tool(
                ToolAttempt {
                    task: &view.task_id,
                    node: &node.id,
                    key: &key,
                    key_state: None,
                    token: None,
                    budget,
                },
                runner,
                &prepared,
            )
            .await?;
        let (t, n, k, tool) = (view.task_id.clone(), node.id.clone(), key, tool.to_owned());
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        let output = result.ok();
        let error = outcome.clone().err();
        self.write(move |tx| -> Result<(), OrchError> {
            audit_append(
                tx.conn,
                "compensation",
                &runner_name(&tool),
                &json!({ "task": t, "node": n, "tool": tool, "key": k, "error": error }),
            )?;
            if let Some(output) = output {
                idempotency::finish(tx.conn, &k, &output.to_string(), Utc::now())?;
                tx.transition(
                    &t,
                    Some(&n),
                    Some(State::Completed),
                    State::RolledBack,
                    &json!({ "compensation": output }),
                )?;
            }
            Ok(())
        })
        .await??;
        Ok(outcome)
    }

    /// Dead letters, oldest first.
    pub async fn dead_letters(
        &self,
        open_only: bool,
    ) -> Result<Vec<journal::DeadLetter>, OrchError> {
        Ok(self
            .inner
            .store
            .call(move |conn| Ok(journal::dead_letters(conn, open_only)))
            .await??)
    }

    /// Replays a dead-lettered task: its failed and rolled-back nodes are
    /// planned again (with fresh idempotency keys) and it runs.
    pub async fn replay(&self, task: &str) -> Result<(), OrchError> {
        let t = task.to_owned();
        // A dead letter's task is finished, so not in memory: the next step
        // reads it from the log, replayed.
        self.write(move |tx| replay_in(tx.conn, &t)).await??;
        self.spawn_drive(task.to_owned());
        Ok(())
    }
}

/// Replays a dead letter inside one transaction.
pub fn replay_in(conn: &Connection, task: &str) -> Result<(), OrchError> {
    if !journal::mark_replayed(conn, task, now_ms())? {
        return Err(OrchError::NotDeadLettered(task.to_owned()));
    }
    let view = journal::load(conn, task)?;
    for (id, node) in &view.nodes {
        if let Some(from @ (State::Failed | State::RolledBack)) = node.state {
            journal::transition(
                conn,
                task,
                Some(id),
                Some(from),
                State::Planned,
                &json!({ "replay": true }),
                now_ms(),
            )?;
        }
    }
    journal::transition(
        conn,
        task,
        None,
        Some(view.state),
        State::Running,
        &json!({ "replay": true }),
        now_ms(),
    )?;
    audit_append(
        conn,
        "dead_letter_replayed",
        "operator",
        &json!({ "task": task }),
    )?;
    Ok(())
}
