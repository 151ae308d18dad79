//! Running one node: entering `running` with its idempotency key, the
//! token-checked call, and what a failure leads to (a retry on a one-shot
//! timer, or the end of the task).

use super::*;

impl Orchestrator {
    /// Runs (or resumes) one node that is approved, running (after a
    /// crash) or due for a retry.
    pub(super) async fn run_node(
        &self,
        task: &str,
        node_id: &str,
        snapshot: Option<NodeRun>,
    ) -> Result<(), OrchError> {
        let snapshot = match snapshot {
            Some(snapshot) => Some(snapshot),
            None => {
                self.with_view(task, |view| NodeRun::of(view, node_id))
                    .await?
            }
        };
        let Some(NodeRun {
            node,
            state,
            principal,
            ..
        }) = snapshot
        else {
            return Err(JournalError::UnknownNode {
                task: task.to_owned(),
                node: node_id.to_owned(),
            }
            .into());
        };
        let state = &state;
        let action = match self.action_for(&node) {
            Ok(action) => action,
            Err(reason) => return self.refuse(task, node_id, state.state, &reason).await,
        };
        let budget = match node.budget.max_ms {
            0 => self.inner.config.default_budget,
            ms => Duration::from_millis(ms),
        };
        // Enter `running`, fixing the prepared action and the attempt.
        let (attempt, prepared, key_state) = match state.state {
            Some(State::Running) => (state.attempt, state.prepared.clone(), None),

            // Tier 0 and 1 clear without asking; 2 and 3 wait for approval.
            Some(State::Planned) if action.tier >= Tier::SideEffect => return Ok(()),
            Some(from @ (State::Planned | State::Approved | State::Blocked)) => {
                let attempt = if from == State::Blocked {
                    state.attempt + 1
                } else {
                    1
                };
                let prepared = match (
                    &state.prepared,
                    self.inner.runners.get(action.tool.as_str()),
                ) {
                    (Some(prepared), _) => Some(prepared.clone()),
                    (None, Some(runner)) => match runner.tool().prepare(&action.args) {
                        Ok(prepared) => Some(prepared),
                        Err(error) => {
                            return self
                                .refuse(task, node_id, Some(from), &error.to_string())
                                .await;
                        }
                    },
                    (None, None) => None,
                };
                let approval_id = state.approval_id.clone();
                let shown = json!({ "task": task, "node": node_id, "tool": action.tool, "args": action.args });
                let key = idempotency_key(task, node_id, state.run, attempt);
                // Minted before `running` so that its revocation id is
                // committed with it: a task stopped from then on revokes it.
                let runner = self.inner.runners.get(action.tool.as_str());
                let token = runner.map(|runner| {
                    let prepared = prepared.as_ref().unwrap_or(&Value::Null);
                    self.mint(task, node_id, runner, prepared, budget)
                });
                let recorded = match &token {
                    Some(Ok(minted)) => Some((minted.revocation_id.clone(), minted.expires_ms)),
                    _ => None,
                };
                let detail = json!({ "attempt": attempt, "prepared": prepared, "key": key });
                let (t, n, k) = (task.to_owned(), node_id.to_owned(), key.clone());
                let tier = action.tier.level();
                let entered = self
                    .write(move |tx| -> Result<KeyState, OrchError> {
                        let mut from = from;
                        if from == State::Planned {
                            tx.transition(
                                &t,
                                Some(&n),
                                Some(from),
                                State::Approved,
                                &json!({ "tier": tier }),
                            )?;
                            from = State::Approved;
                        }
                        if let Some(id) = &approval_id {
                            // What runs is byte for byte what was approved.
                            approval::ensure_approved(tx.conn, id, &shown, Utc::now())?;
                        }
                        tx.transition(&t, Some(&n), Some(from), State::Running, &detail)?;
                        if let Some((id, expires_ms)) = &recorded {
                            journal::record_token(tx.conn, id, &t, &n, &k, *expires_ms)?;
                        }
                        // The key is committed with `running`, before the call.
                        Ok(idempotency::begin(tx.conn, &k, Utc::now())?)
                    })
                    .await?;
                let key_state = match entered {
                    Ok(key_state) => key_state,
                    Err(OrchError::Journal(JournalError::Conflict { .. })) => return Ok(()),
                    Err(OrchError::Approval(error)) => {
                        return self
                            .refuse(task, node_id, Some(from), &error.to_string())
                            .await;
                    }
                    Err(other) => return Err(other),
                };
                (attempt, prepared, Some((key_state, token)))
            }
            _ => return Ok(()),
        };
        let key = idempotency_key(task, node_id, state.run, attempt);
        let (key_state, token) = key_state.unzip();
        let outcome = match self.inner.runners.get(action.tool.as_str()) {
            None if node.kind == NodeKind::Reason && self.inner.reasoner.is_some() => {
                self.reason(task, &node, &principal).await?
            }
            None => Ok(json!({ "note": non_tool_note(&node, &action) })),
            Some(runner) => {
                let prepared = prepared.unwrap_or(Value::Null);
                let attempt = ToolAttempt {
                    task,
                    node: node_id,
                    key: &key,
                    key_state,
                    token: token.flatten(),
                    budget,
                };
                self.call_tool(attempt, runner, &prepared).await?
            }
        };
        if node.kind == NodeKind::Message
            && let Some(text) = node.params["text"].as_str()
        {
            let text = self
                .with_view(task, |view| fill_outputs(text, &node, view))
                .await?;
            self.tell(&principal, text).await;
        }
        match outcome {
            Ok(output) => {
                let (t, n, k) = (task.to_owned(), node_id.to_owned(), key.clone());
                let tool = action.tool.clone();
                let scope = action.scope.clone();
                let hook = self.inner.outcomes.clone();
                let task_stopped = self
                    .write(move |tx| -> Result<bool, OrchError> {
                        idempotency::finish(tx.conn, &k, &output.to_string(), Utc::now())?;
                        tx.transition(&t, Some(&n), Some(State::Running), State::Completed, &json!({ "output": output, "key": k }))?;
                        audit_append(tx.conn, "tool_action", &runner_name(&tool), &json!({ "task": t, "node": n, "tool": tool, "key": k, "attempt": attempt, "outcome": "completed" }))?;
                        if let Some(hook) = hook.as_ref().filter(|_| !tool.is_empty()) {
                            hook.tool_outcome(tx.conn, &tool, &scope, None)?;
                        }
                        // Read in the same transaction as the task's close
                        // (see `fail_task`): one of the two sees the other.
                        Ok(tx.current(&t, None)?.is_some_and(State::is_terminal))
                    })
                    .await??;
                // A sibling failed while this one ran: undo it too.
                if task_stopped && !node.params["compensate"].is_null() {
                    let view = self.load(task).await?;
                    self.compensate(&view, &node).await?.ok();
                }
                Ok(())
            }
            Err(error) => {
                self.after_failure(task, node_id, &action, attempt, &key, error)
                    .await
            }
        }
    }

    /// Runs a reason node through the reasoner, given its dependencies'
    /// outputs. A failure is retried like a tool's.
    async fn reason(
        &self,
        task: &str,
        node: &TaskNode,
        principal: &Principal,
    ) -> Result<Result<Value, ToolError>, OrchError> {
        let Some(reasoner) = &self.inner.reasoner else {
            return Ok(Err(ToolError::Refused("no reasoner".into())));
        };
        let inputs = self
            .with_view(task, |view| {
                node.deps
                    .iter()
                    .map(|dep| {
                        let output = view.node(dep).output.clone().unwrap_or(Value::Null);
                        (dep.clone(), output)
                    })
                    .collect()
            })
            .await?;
        Ok(reasoner
            .reason(task, node, inputs, principal)
            .await
            .map_err(ToolError::Failed))
    }

    /// Mints a token for one call of `node`: its tool, scope and resource,
    /// for its runner, living the node's budget plus a little.
    pub(super) fn mint(
        &self,
        task: &str,
        node_id: &str,
        runner: &Runner,
        prepared: &Value,
        budget: Duration,
    ) -> Result<Minted, ToolError> {
        let tool = runner.tool();
        let grant = Grant {
            tool: tool.name().to_owned(),
            scope: tool.scope().to_owned(),
            resource: tool.resource(prepared)?,
            audience: runner_name(tool.name()),
            node: format!("{task}/{node_id}"),
        };
        // Least privilege in time too: the budget plus a little, never more
        // than the maximum.
        let ttl = (budget + Duration::from_secs(5)).min(MAX_TTL);
        let hosts = tool.hosts(prepared)?;
        let now = Utc::now();
        let token = self
            .inner
            .minter
            .mint_with_hosts(&grant, &hosts, now, ttl)?;
        Ok(Minted {
            revocation_id: token.revocation_id(),
            expires_ms: now.timestamp_millis() + ttl.as_millis() as i64,
            token: token.to_base64(),
        })
    }

    /// Mints the node's token unless the caller did (recording it with the
    /// idempotency key), and runs the tool on a blocking thread within its
    /// budget. The outer error is the store's; the inner one the call's.
    pub(super) async fn call_tool(
        &self,
        call: ToolAttempt<'_>,
        runner: &Runner,
        prepared: &Value,
    ) -> Result<Result<Value, ToolError>, OrchError> {
        let ToolAttempt {
            task,
            node: node_id,
            key,
            key_state,
            token,
            budget,
        } = call;
        let tool = runner.tool();
        let minted =
            match token.unwrap_or_else(|| self.mint(task, node_id, runner, prepared, budget)) {
                Ok(minted) => minted,
                Err(error) => return Ok(Err(error)),
            };
        // The key (and the token's revocation id) are committed before the
        // call: a crash after this point finds the key and never repeats a
        // side effect blindly.
        let state = match key_state {
            Some(state) => state,
            None => {
                let (t, n, k) = (task.to_owned(), node_id.to_owned(), key.to_owned());
                let (id, expires_ms) = (minted.revocation_id.clone(), minted.expires_ms);
                self.inner
                    .store
                    .call(move |conn| {
                        let run = || -> Result<KeyState, OrchError> {
                            journal::record_token(conn, &id, &t, &n, &k, expires_ms)?;
                            Ok(idempotency::begin(conn, &k, Utc::now())?)
                        };
                        Ok(run())
                    })
                    .await??
            }
        };
        let token = minted.token;
        let resumed = match state {
            KeyState::Done { result } => {
                return Ok(Ok(serde_json::from_str(&result).unwrap_or(Value::Null)));
            }
            KeyState::Started { attempts } => attempts > 1,
            KeyState::Unknown => false,
        };
        if resumed && !tool.replay_safe() {
            return Ok(Err(ToolError::Refused(format!(
                "a crash interrupted this {} call; whether it took effect is unknown, so it is not repeated",
                tool.name()
            ))));
        }
        let runner = runner.clone();
        let (prepared, key) = (prepared.clone(), key.to_owned());
        let run = tokio::task::spawn_blocking(move || {
            runner.execute(&ToolCall {
                token: &token,
                args: &prepared,
                key: &key,
                resumed,
                timeout: budget,
            })
        });
        Ok(match tokio::time::timeout(budget, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ToolError::Failed(format!("the tool panicked: {join}"))),
            Err(_) => Err(ToolError::Failed(format!(
                "the call ran past its {} ms budget",
                budget.as_millis()
            ))),
        })
    }

    pub(super) async fn after_failure(
        &self,
        task: &str,
        node_id: &str,
        action: &Action,
        attempt: u32,
        key: &str,
        error: ToolError,
    ) -> Result<(), OrchError> {
        let retry = error.is_retryable() && attempt < self.inner.config.max_attempts.max(1);
        let wake_at = now_ms() + self.backoff(attempt).as_millis() as i64;
        let kind = match error {
            ToolError::Token(_) => "token_refused",
            ToolError::Refused(_) => "refusal",
            _ => "tool_action",
        };
        let message = error.to_string();
        let (t, n, k, tool) = (
            task.to_owned(),
            node_id.to_owned(),
            key.to_owned(),
            action.tool.clone(),
        );
        let msg = message.clone();
        let scope = action.scope.clone();
        // Only the tool's own failures count against its reliability.
        let hook = self
            .inner
            .outcomes
            .clone()
            .filter(|_| kind == "tool_action");
        self.write(move |tx| -> Result<(), OrchError> {
            let (to, detail) = if retry {
                (State::Blocked, json!({ "retry_at_ms": wake_at, "error": msg, "attempt": attempt }))
            } else {
                (State::Failed, json!({ "error": msg, "attempt": attempt }))
            };
            tx.transition(&t, Some(&n), Some(State::Running), to, &detail)?;
            audit_append(tx.conn, kind, &runner_name(&tool), &json!({ "task": t, "node": n, "tool": tool, "key": k, "attempt": attempt, "outcome": "failed", "error": msg, "retry": retry }))?;
            if let Some(hook) = &hook {
                hook.tool_outcome(tx.conn, &tool, &scope, Some(&msg))?;
            }
            Ok(())
        })
        .await??;
        if retry {
            self.arm_retry(task, node_id, wake_at).await;
            Ok(())
        } else {
            self.fail_task(task, node_id, &message, true).await
        }
    }

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        config
            .retry_base
            .saturating_mul(factor)
            .min(config.retry_max)
    }

    /// Boxed (not `async fn`): the in-process timer calls back into
    /// `retry_due`, and the cycle needs a named `Send` future to type-check.
    pub(super) fn arm_retry<'a>(
        &'a self,
        task: &'a str,
        node: &'a str,
        wake_at_ms: i64,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match &self.inner.timers {
                Timers::External(timer) => timer.arm(task, node, wake_at_ms).await,
                Timers::InProcess => {
                    let this = self.clone();
                    let (task, node) = (task.to_owned(), node.to_owned());
                    let delay = Duration::from_millis((wake_at_ms - now_ms()).max(0) as u64);
                    // One timer for this one retry; it fires once.
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Err(err) = this.retry_due(&task, &node).await {
                            tracing::error!(task, node, %err, "a retry failed to start");
                        }
                    });
                }
            }
        })
    }

    /// A retry timer fired for `(task, node)`: runs the next attempt if the
    /// node is still waiting for it.
    ///
    /// The same timer marks an approval request's expiry: a node still
    /// waiting for an approval that expired fails (and its task stops).
    pub async fn retry_due(&self, task: &str, node: &str) -> Result<(), OrchError> {
        let Some(run) = self.with_view(task, |view| NodeRun::of(view, node)).await? else {
            return Ok(());
        };
        let state = &run.state;
        if state.state != Some(State::Blocked) || run.task_state.is_terminal() {
            return Ok(());
        }
        if state.retry_at_ms.is_some() {
            self.run_node(task, node, Some(run)).await?;
            self.spawn_drive(task.to_owned());
        } else if let Some(id) = state.approval_id.clone() {
            let status = self
                .inner
                .store
                .call(move |conn| Ok(approval::get(conn, &id, Utc::now()).map(|a| a.status)))
                .await??;
            if status == approval::ApprovalStatus::Expired {
                let reason = "the approval request expired";
                self.refuse(task, node, Some(State::Blocked), reason)
                    .await?;
            }
        }
        Ok(())
    }
}

/// A message node's text with `{ID.output}` replaced by what dependency
/// `ID` produced (a command's stdout, a file's text), so a planned reply
/// carries the result.
fn fill_outputs(text: &str, node: &TaskNode, view: &TaskView) -> String {
    let mut filled = text.to_owned();
    for dep in &node.deps {
        let placeholder = format!("{{{dep}.output}}");
        if !filled.contains(&placeholder) {
            continue;
        }
        let output = view.node(dep).output.clone().unwrap_or(Value::Null);
        let shown = output["stdout"]
            .as_str()
            .or(output["text"].as_str())
            .or(output["note"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| output.to_string());
        let shown: String = shown.chars().take(4000).collect();
        filled = filled.replace(&placeholder, shown.trim_end());
    }
    filled
}

pub(super) fn non_tool_note(node: &TaskNode, action: &Action) -> String {
    match node.kind {
        NodeKind::Message => "message sent".into(),
        NodeKind::Approval => format!("approved at tier {}", action.tier.level()),
        _ => "reasoning step: nothing to run".into(),
    }
}
