//! Tier 2 and 3: asking the user, and their answer (same user, same chat;
//! tier 3 with a TOTP code).

use super::*;

impl Orchestrator {
    pub(super) async fn ask_approval(
        &self,
        task: &str,
        principal: &Principal,
        node: &TaskNode,
        action: Action,
    ) -> Result<(), OrchError> {
        let shown = json!({
            "task": task,
            "node": node.id,
            "tool": action.tool,
            "args": action.args,
        });
        let request = ActionRequest {
            tool: action.tool.clone(),
            scope: self.scope_of(&action.tool).to_owned(),
            tier: action.tier,
            action: shown.clone(),
            requested_for: principal.clone(),
        };
        let ttl = self.inner.config.approval_ttl;
        let (t, node_id) = (task.to_owned(), node.id.clone());
        let approval = self
            .write(move |tx| -> Result<Option<approval::Approval>, OrchError> {
                if tx.current(&t, Some(&node_id))? != Some(State::Planned) {
                    return Ok(None);
                }
                let approval = approval::request(tx.conn, &request, Utc::now(), ttl)?;
                journal::link_approval(tx.conn, &approval.id, &t, &node_id)?;
                tx.transition(
                    &t,
                    Some(&node_id),
                    Some(State::Planned),
                    State::Blocked,
                    &json!({ "approval_id": approval.id, "wait": "external", "tier": request.tier.level() }),
                )?;
                if tx.current(&t, None)? == Some(State::Running) {
                    tx.transition(&t, None, Some(State::Running), State::Blocked, &json!({ "wait": "approval" }))?;
                }
                audit_append(
                    tx.conn,
                    "approval_requested",
                    "orchestrator",
                    &json!({ "approval": approval.id, "tier": request.tier.level(), "action": request.action }),
                )?;
                Ok(Some(approval))
            })
            .await??;
        if let Some(approval) = approval {
            let text = approval_prompt(&approval, &action);
            self.tell(principal, text).await;
            // One timer for the expiry: an unanswered request fails the node.
            let expires = approval.expires_at.timestamp_millis();
            self.arm_retry(task, &node.id, expires).await;
        }
        // After the prompt: whoever waits for `blocked` can read it.
        self.bump();
        Ok(())
    }

    pub(super) fn scope_of(&self, tool: &str) -> &'static str {
        self.inner
            .runners
            .get(tool)
            .map_or("*", |r| r.tool().scope())
    }

    /// Approves request `id` for `by` (the user and chat it was asked in);
    /// tier 3 needs `code`, a TOTP code. The node then runs.
    pub async fn approve(
        &self,
        id: &str,
        by: &Principal,
        code: Option<&str>,
    ) -> Result<String, OrchError> {
        self.decide(id, by, code, true).await
    }

    /// Approves (or denies) request `id` on behalf of the user it was asked
    /// of: for the machine's owner on the local API or CLI, which holds
    /// the daemon's own bearer token. Tier 3 still needs the TOTP code.
    pub async fn decide_as_owner(
        &self,
        id: &str,
        approve: bool,
        code: Option<&str>,
    ) -> Result<String, OrchError> {
        let i = id.to_owned();
        let approval = self
            .inner
            .store
            .call(move |conn| Ok(approval::get(conn, &i, Utc::now())))
            .await??;
        self.decide(id, &approval.requested_for, code, approve)
            .await
    }

    /// Denies request `id` for `by`; the task fails and is rolled back.
    pub async fn deny(&self, id: &str, by: &Principal) -> Result<String, OrchError> {
        self.decide(id, by, None, false).await
    }

    pub(super) async fn decide(
        &self,
        id: &str,
        by: &Principal,
        code: Option<&str>,
        approve: bool,
    ) -> Result<String, OrchError> {
        let (id, by, code) = (id.to_owned(), by.clone(), code.map(str::to_owned));
        let totp = self.inner.totp.clone();
        let decided = self
            .write(move |tx| -> Result<(String, String), OrchError> {
                let conn = tx.conn;
                {
                    let (task, node) = journal::approval_subject(conn, &id)?
                        .ok_or_else(|| OrchError::UnknownApproval(id.clone()))?;
                    let state = tx.current(&task, Some(&node))?;
                    if state != Some(State::Blocked) {
                        return Err(OrchError::NotWaiting {
                            task,
                            node,
                            state: state.map_or("unknown", State::as_str).to_owned(),
                        });
                    }
                    let now = Utc::now();
                    let result = if approve {
                        let factor = match (&totp, &code) {
                            (Some(totp), Some(code)) => Some(SecondFactor { totp, code }),
                            _ => None,
                        };
                        approval::approve(conn, &id, &by, factor, now)
                    } else {
                        approval::deny(conn, &id, &by, now)
                    };
                    let verdict = if approve { "approved" } else { "denied" };
                    if let Err(error) = result {
                        // The refusal is committed; the error goes back.
                        audit_append(
                            conn,
                            "approval_refused",
                            &by.user_id,
                            &json!({ "approval": id, "attempt": verdict, "by": by, "reason": error.to_string() }),
                        )?;
                        return Err(error.into());
                    }
                    audit_append(
                        conn,
                        "approval",
                        &by.user_id,
                        &json!({ "approval": id, "decision": verdict, "by": by, "task": task, "node": node }),
                    )?;
                    let to = if approve { State::Approved } else { State::Failed };
                    tx.transition(
                        &task,
                        Some(&node),
                        Some(State::Blocked),
                        to,
                        &json!({ "approval_id": id, "error": (!approve).then_some("denied by the user") }),
                    )?;
                    Ok((task, node))
                }
            })
            .await?;
        let (task, node) = decided?;
        if approve {
            self.task_to(&task, State::Running, json!({})).await?;
            self.spawn_run(task.clone(), node.clone());
            Ok(format!("Approved: node {node} of task {task} is running."))
        } else {
            self.fail_task(&task, &node, "denied by the user", false)
                .await?;
            Ok(format!("Denied: node {node} of task {task} will not run."))
        }
    }
}

/// What the user sees when asked to approve: the exact action, and how to
/// answer.
pub(super) fn approval_prompt(approval: &approval::Approval, action: &Action) -> String {
    let exact = serde_json::to_string_pretty(&approval.action["args"]).unwrap_or_default();
    let what = if action.tool.is_empty() {
        "this step".to_owned()
    } else {
        format!("{} with", action.tool)
    };
    let answer = if approval.tier == Tier::HighRisk {
        format!(
            "/approve {} CODE (your 6-digit authenticator code)",
            approval.id
        )
    } else {
        format!("/approve {}", approval.id)
    };
    format!(
        "Approval needed (trust tier {}): run {what}\n{exact}\nReply {answer} to run it, or /deny {} to refuse. It expires at {}.",
        approval.tier.level(),
        approval.id,
        approval.expires_at.format("%H:%M UTC")
    )
}
