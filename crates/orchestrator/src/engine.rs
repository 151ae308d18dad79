//! The orchestrator: drives each task's nodes through the state machine,
//! with a capability token, a policy tier, an idempotency key and an audit
//! record around every tool call.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use opticlaw_core::{NodeKind, TaskGraph, TaskNode};
use opticlaw_security::approval::{self, ActionRequest, ApprovalError, Principal, SecondFactor};
use opticlaw_security::idempotency::{self, KeyState};
use opticlaw_security::token::{Grant, MAX_TTL, TokenMinter};
use opticlaw_security::totp::Totp;
use opticlaw_security::{Policy, Tier, audit};
use opticlaw_store::rusqlite::Connection;
use opticlaw_store::{StoreError, StoreHandle};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::journal::{self, JournalError, TaskView};
use crate::state::State;
use crate::tools::{Runner, Tool, ToolCall, ToolError, runner_name};

/// A boxed future, for the small traits the daemon implements.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Tells the user something in the chat a task came from.
pub trait Notifier: Send + Sync {
    fn notify<'a>(&'a self, to: &'a Principal, text: String) -> BoxFuture<'a, ()>;
}

/// Arms a durable one-shot timer that calls [`Orchestrator::retry_due`]
/// for `(task, node)` at `wake_at_ms`. The daemon backs it with the
/// store's deferred tasks and the runtime scheduler.
pub trait RetryTimer: Send + Sync {
    fn arm<'a>(&'a self, task: &'a str, node: &'a str, wake_at_ms: i64) -> BoxFuture<'a, ()>;
}

/// How retries are timed.
#[derive(Clone)]
pub enum Timers {
    /// A one-shot tokio timer per retry (tests, benches; re-armed from the
    /// log after a restart).
    InProcess,
    /// The daemon's scheduler.
    External(Arc<dyn RetryTimer>),
}

/// Tuning of retries, tokens and approvals.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Attempts per node before the task is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// First retry delay; doubled for every further attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Budget of a node that sets none (`max_ms = 0`).
    pub default_budget: Duration,
    /// How long an approval request waits.
    pub approval_ttl: chrono::Duration,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            default_budget: Duration::from_secs(30),
            approval_ttl: approval::DEFAULT_APPROVAL_TTL,
        }
    }
}

/// Why the orchestrator refused a request.
#[derive(Debug, thiserror::Error)]
pub enum OrchError {
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    #[error("approval request {0} belongs to no task")]
    UnknownApproval(String),
    #[error("node {node} of task {task} is no longer waiting for approval (it is {state})")]
    NotWaiting {
        task: String,
        node: String,
        state: String,
    },
    #[error("dead letter {0} does not exist or was already replayed")]
    NotDeadLettered(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<opticlaw_store::rusqlite::Error> for OrchError {
    fn from(error: opticlaw_store::rusqlite::Error) -> Self {
        OrchError::Store(StoreError::from(error))
    }
}

/// Everything the orchestrator is built from.
pub struct Parts {
    pub store: StoreHandle,
    pub minter: TokenMinter,
    pub tools: Vec<Arc<dyn Tool>>,
    pub policy: Policy,
    /// Tier 3's second factor; without one, tier 3 actions cannot be approved.
    pub totp: Option<Totp>,
    pub notifier: Option<Arc<dyn Notifier>>,
    pub timers: Timers,
    pub config: OrchestratorConfig,
}

/// Runs task graphs. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    minter: TokenMinter,
    runners: HashMap<&'static str, Runner>,
    policy: Policy,
    totp: Option<Totp>,
    notifier: Option<Arc<dyn Notifier>>,
    timers: Timers,
    config: OrchestratorConfig,
    /// Bumped after every change, for callers that wait for a state.
    changed: watch::Sender<u64>,
    /// Tasks whose failure is being handled: one handler per task, so two
    /// nodes failing at once never compensate anything twice.
    failing: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// One call of a node's tool: whose, under which idempotency key (and
/// where that key stands, when the caller already stored it), how long.
struct ToolAttempt<'a> {
    task: &'a str,
    node: &'a str,
    key: &'a str,
    key_state: Option<KeyState>,
    budget: Duration,
}

/// What a node will do, as checked, approved and run.
#[derive(Debug, Clone)]
struct Action {
    tool: String,
    args: Value,
    tier: Tier,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The idempotency key of one attempt of one node in one run.
pub fn idempotency_key(task: &str, node: &str, run: u32, attempt: u32) -> String {
    format!("orch/{task}/{node}/r{run}/a{attempt}")
}

impl Orchestrator {
    pub fn new(parts: Parts) -> Self {
        let root = parts.minter.public_key();
        let runners = parts
            .tools
            .into_iter()
            .map(|tool| (tool.name(), Runner::new(tool, root)))
            .collect();
        Self {
            inner: Arc::new(Inner {
                store: parts.store,
                minter: parts.minter,
                runners,
                policy: parts.policy,
                totp: parts.totp,
                notifier: parts.notifier,
                timers: parts.timers,
                config: parts.config,
                changed: watch::channel(0).0,
                failing: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    /// Accepts a validated graph for `principal` and starts it. Every
    /// tool node must name a tool this orchestrator runs. Submitting the
    /// same `task_id` twice starts it once.
    pub async fn submit(
        &self,
        graph: TaskGraph,
        principal: Principal,
    ) -> Result<String, OrchError> {
        graph
            .validate()
            .map_err(|e| OrchError::InvalidPlan(e.to_string()))?;
        for node in &graph.nodes {
            if node.kind == NodeKind::Tool {
                let tool = node.params["tool"].as_str().unwrap_or_default();
                if !self.inner.runners.contains_key(tool) {
                    return Err(OrchError::InvalidPlan(format!(
                        "node \"{}\" uses tool {tool:?}, which this daemon does not run",
                        node.id
                    )));
                }
            }
        }
        let task_id = graph.task_id.to_string();
        let goal = graph.goal.clone();
        let id = task_id.clone();
        self.inner
            .store
            .call(move |conn| {
                let run = || -> Result<(), OrchError> {
                    if journal::insert_task(conn, &graph, &principal, now_ms())? {
                        audit_append(
                            conn,
                            "task_submitted",
                            &principal.user_id,
                            &json!({ "task": id, "goal": goal, "nodes": graph.nodes.len() }),
                        )?;
                    }
                    Ok(())
                };
                Ok(run())
            })
            .await??;
        self.spawn_drive(task_id.clone());
        Ok(task_id)
    }

    /// After a restart: rebuilds every unfinished task from the log and
    /// carries on where it stopped. Calls that were in flight are resumed
    /// with their idempotency key; retry timers are armed again.
    pub async fn resume_all(&self) -> Result<usize, OrchError> {
        let tasks = self
            .inner
            .store
            .call(|conn| Ok(journal::unfinished_tasks(conn)))
            .await??;
        for task in &tasks {
            let view = self.load(task).await?;
            for (node_id, node) in &view.nodes {
                match node.state {
                    Some(State::Running) | Some(State::Approved) => {
                        self.spawn_run(task.clone(), node_id.clone());
                    }
                    Some(State::Blocked) => match node.retry_at_ms {
                        // Due already (its timer may have fired just before
                        // the crash): retry now.
                        Some(at) if at <= now_ms() => {
                            let this = self.clone();
                            let (task, node) = (task.clone(), node_id.clone());
                            tokio::spawn(async move {
                                if let Err(err) = this.retry_due(&task, &node).await {
                                    tracing::error!(task, node, %err, "a retry failed to start");
                                }
                            });
                        }
                        Some(at) => self.arm_retry(task, node_id, at).await,
                        // Waiting for approval: fails it if it expired meanwhile.
                        None => {
                            let this = self.clone();
                            let (task, node) = (task.clone(), node_id.clone());
                            tokio::spawn(async move {
                                if let Err(err) = this.retry_due(&task, &node).await {
                                    tracing::error!(task, node, %err, "checking an approval failed");
                                }
                            });
                        }
                    },
                    _ => {}
                }
            }
            self.spawn_drive(task.clone());
        }
        Ok(tasks.len())
    }

    /// A task's state, rebuilt from its log.
    pub async fn load(&self, task: &str) -> Result<TaskView, OrchError> {
        let task = task.to_owned();
        Ok(self
            .inner
            .store
            .call(move |conn| Ok(journal::load(conn, &task)))
            .await??)
    }

    /// Waits until `done` holds for the task (checked after every change).
    pub async fn wait_for(
        &self,
        task: &str,
        done: impl Fn(&TaskView) -> bool,
    ) -> Result<TaskView, OrchError> {
        let mut changes = self.inner.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let view = self.load(task).await?;
            if done(&view) {
                return Ok(view);
            }
            if changes.changed().await.is_err() {
                return Ok(view);
            }
        }
    }

    /// Waits until the task is completed, failed or rolled back (checking
    /// only the task's own state after each change, then reading it whole).
    pub async fn wait_finished(&self, task: &str) -> Result<TaskView, OrchError> {
        let mut changes = self.inner.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let t = task.to_owned();
            let state = self
                .inner
                .store
                .call(move |conn| Ok(journal::current(conn, &t, None)))
                .await??;
            if state.is_none_or(State::is_terminal) || changes.changed().await.is_err() {
                return self.load(task).await;
            }
        }
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    fn spawn_drive(&self, task: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.drive(&task).await {
                tracing::error!(task, %err, "driving a task failed; it resumes on restart");
            }
        });
    }

    fn spawn_run(&self, task: String, node: String) {
        self.spawn_run_with(task, node, None);
    }

    /// Runs a node on its own tokio task; `view` saves re-reading the log
    /// when the caller just read it (a stale view is harmless: every
    /// transition re-checks the state it starts from).
    fn spawn_run_with(&self, task: String, node: String, view: Option<TaskView>) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.run_node(&task, &node, view).await {
                tracing::error!(task, node, %err, "running a node failed; it resumes on restart");
            }
            this.spawn_drive(task);
        });
    }

    /// Starts every node whose dependencies are complete, and closes the
    /// task when all nodes are.
    async fn drive(&self, task: &str) -> Result<(), OrchError> {
        let view = self.load(task).await?;
        if view.state.is_terminal() {
            return Ok(());
        }
        if view.state == State::Planned {
            self.task_to(task, State::Running, json!({})).await?;
        }
        // A node failed and the task was not closed (a crash came between
        // the two): close it now; compensations already done are skipped
        // by their idempotency keys.
        if let Some((id, node)) = view
            .nodes
            .iter()
            .find(|(_, n)| n.state == Some(State::Failed))
        {
            let reason = node.error.clone().unwrap_or_else(|| "failed".into());
            return self.fail_task(task, id, &reason, true).await;
        }
        if view
            .nodes
            .values()
            .all(|n| n.state == Some(State::Completed))
        {
            if self.task_to(task, State::Completed, json!({})).await? {
                self.tell(&view.principal, completion_text(&view)).await;
            }
            return Ok(());
        }
        for node in &view.graph.nodes {
            let ready = view.node(&node.id).state == Some(State::Planned)
                && node
                    .deps
                    .iter()
                    .all(|d| view.node(d).state == Some(State::Completed));
            if ready {
                self.start_node(&view, node).await?;
            }
        }
        Ok(())
    }

    /// Moves the task to `to` unless it is there already; `false` when
    /// someone else moved it first.
    async fn task_to(&self, task: &str, to: State, detail: Value) -> Result<bool, OrchError> {
        let task = task.to_owned();
        let moved = self
            .inner
            .store
            .call(move |conn| {
                let from = journal::current(conn, &task, None);
                Ok(from.and_then(|from| match from {
                    Some(from) if from == to || !from.allows(to, crate::state::Subject::Task) => {
                        Ok(false)
                    }
                    from => journal::transition(conn, &task, None, from, to, &detail, now_ms())
                        .map(|_| true),
                }))
            })
            .await??;
        self.bump();
        Ok(moved)
    }

    /// Decides what a planned node needs: refusal, approval, or nothing.
    async fn start_node(&self, view: &TaskView, node: &TaskNode) -> Result<(), OrchError> {
        let task = view.task_id.clone();
        let action = match self.action_for(node) {
            Ok(action) => action,
            Err(reason) => {
                self.refuse(&task, &node.id, Some(State::Planned), &reason)
                    .await?;
                return Ok(());
            }
        };
        if action.tier < Tier::SideEffect {
            // Approved and started in one transaction by `run_node`.
            self.spawn_run_with(task, node.id.clone(), Some(view.clone()));
            return Ok(());
        }
        self.ask_approval(view, node, action).await
    }

    /// The tool, arguments and tier of a node; `Err` names why it may not
    /// run at all.
    fn action_for(&self, node: &TaskNode) -> Result<Action, String> {
        let (tool, args) = match node.kind {
            NodeKind::Tool => (
                node.params["tool"].as_str().unwrap_or_default().to_owned(),
                node.params["args"].clone(),
            ),
            // Nodes without a tool: a message to the user, a bare approval
            // gate, or a reasoning step whose result the planner already
            // folded into the plan.
            NodeKind::Message | NodeKind::Approval | NodeKind::Reason => {
                let tier = match (node.kind, node.policy.trust_tier) {
                    (_, Some(tier)) => tier_of(tier),
                    (NodeKind::Approval, None) => Tier::SideEffect,
                    _ => Tier::ReadOnly,
                };
                let tier = if node.policy.requires_approval {
                    tier.max(Tier::SideEffect)
                } else {
                    tier
                };
                return Ok(Action {
                    tool: String::new(),
                    args: node.params.clone(),
                    tier,
                });
            }
        };
        let runner = self
            .inner
            .runners
            .get(tool.as_str())
            .ok_or_else(|| format!("no runner for tool {tool:?}"))?;
        let policy_tier = self
            .inner
            .policy
            .tier(&tool, runner.tool().scope())
            .map_err(|e| e.to_string())?;
        // The plan may raise a node's tier, never lower it below policy.
        let mut tier = policy_tier.max(node.policy.trust_tier.map_or(Tier::ReadOnly, tier_of));
        if node.policy.requires_approval {
            tier = tier.max(Tier::SideEffect);
        }
        Ok(Action { tool, args, tier })
    }

    async fn ask_approval(
        &self,
        view: &TaskView,
        node: &TaskNode,
        action: Action,
    ) -> Result<(), OrchError> {
        let shown = json!({
            "task": view.task_id,
            "node": node.id,
            "tool": action.tool,
            "args": action.args,
        });
        let request = ActionRequest {
            tool: action.tool.clone(),
            scope: self.scope_of(&action.tool).to_owned(),
            tier: action.tier,
            action: shown.clone(),
            requested_for: view.principal.clone(),
        };
        let ttl = self.inner.config.approval_ttl;
        let (task, node_id) = (view.task_id.clone(), node.id.clone());
        let approval = self
            .inner
            .store
            .call(move |conn| {
                let run = || -> Result<Option<approval::Approval>, OrchError> {
                    if journal::current(conn, &task, Some(&node_id))? != Some(State::Planned) {
                        return Ok(None);
                    }
                    let approval = approval::request(conn, &request, Utc::now(), ttl)?;
                    journal::link_approval(conn, &approval.id, &task, &node_id)?;
                    journal::transition(
                        conn,
                        &task,
                        Some(&node_id),
                        Some(State::Planned),
                        State::Blocked,
                        &json!({ "approval_id": approval.id, "wait": "external", "tier": request.tier.level() }),
                        now_ms(),
                    )?;
                    if journal::current(conn, &task, None)? == Some(State::Running) {
                        journal::transition(conn, &task, None, Some(State::Running), State::Blocked, &json!({ "wait": "approval" }), now_ms())?;
                    }
                    audit_append(
                        conn,
                        "approval_requested",
                        "orchestrator",
                        &json!({ "approval": approval.id, "tier": request.tier.level(), "action": request.action }),
                    )?;
                    Ok(Some(approval))
                };
                Ok(run())
            })
            .await??;
        if let Some(approval) = approval {
            let text = approval_prompt(&approval, &action);
            self.tell(&view.principal, text).await;
            // One timer for the expiry: an unanswered request fails the node.
            let expires = approval.expires_at.timestamp_millis();
            self.arm_retry(&view.task_id, &node.id, expires).await;
        }
        // After the prompt: whoever waits for `blocked` can read it.
        self.bump();
        Ok(())
    }

    fn scope_of(&self, tool: &str) -> &'static str {
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

    async fn decide(
        &self,
        id: &str,
        by: &Principal,
        code: Option<&str>,
        approve: bool,
    ) -> Result<String, OrchError> {
        let (id, by, code) = (id.to_owned(), by.clone(), code.map(str::to_owned));
        let totp = self.inner.totp.clone();
        let decided = self
            .inner
            .store
            .call(move |conn| {
                let run = || -> Result<(String, String), OrchError> {
                    let (task, node) = journal::approval_subject(conn, &id)?
                        .ok_or_else(|| OrchError::UnknownApproval(id.clone()))?;
                    let state = journal::current(conn, &task, Some(&node))?;
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
                    journal::transition(
                        conn,
                        &task,
                        Some(&node),
                        Some(State::Blocked),
                        to,
                        &json!({ "approval_id": id, "error": (!approve).then_some("denied by the user") }),
                        now_ms(),
                    )?;
                    Ok((task, node))
                };
                Ok(run())
            })
            .await?;
        self.bump();
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

    /// Runs (or resumes) one node that is approved, running (after a
    /// crash) or due for a retry.
    async fn run_node(
        &self,
        task: &str,
        node_id: &str,
        view: Option<TaskView>,
    ) -> Result<(), OrchError> {
        let view = match view {
            Some(view) => view,
            None => self.load(task).await?,
        };
        let Some(node) = view.graph.nodes.iter().find(|n| n.id == node_id).cloned() else {
            return Err(JournalError::UnknownNode {
                task: task.to_owned(),
                node: node_id.to_owned(),
            }
            .into());
        };
        let state = view.node(node_id);
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
                let detail = json!({ "attempt": attempt, "prepared": prepared, "key": key });
                let (t, n, k) = (task.to_owned(), node_id.to_owned(), key.clone());
                let tier = action.tier.level();
                let entered = self
                    .inner
                    .store
                    .call(move |conn| {
                        let run = || -> Result<KeyState, OrchError> {
                            let mut from = from;
                            if from == State::Planned {
                                journal::transition(
                                    conn,
                                    &t,
                                    Some(&n),
                                    Some(from),
                                    State::Approved,
                                    &json!({ "tier": tier }),
                                    now_ms(),
                                )?;
                                from = State::Approved;
                            }
                            if let Some(id) = &approval_id {
                                // What runs is byte for byte what was approved.
                                approval::ensure_approved(conn, id, &shown, Utc::now())?;
                            }
                            journal::transition(
                                conn,
                                &t,
                                Some(&n),
                                Some(from),
                                State::Running,
                                &detail,
                                now_ms(),
                            )?;
                            // The key is committed with `running`, before the call.
                            Ok(idempotency::begin(conn, &k, Utc::now())?)
                        };
                        Ok(run())
                    })
                    .await?;
                self.bump();
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
                (attempt, prepared, Some(key_state))
            }
            _ => return Ok(()),
        };
        let key = idempotency_key(task, node_id, state.run, attempt);
        let outcome = match self.inner.runners.get(action.tool.as_str()) {
            None => Ok(json!({ "note": non_tool_note(&node, &action) })),
            Some(runner) => {
                let prepared = prepared.unwrap_or(Value::Null);
                let attempt = ToolAttempt {
                    task,
                    node: node_id,
                    key: &key,
                    key_state,
                    budget,
                };
                self.call_tool(attempt, runner, &prepared).await?
            }
        };
        if node.kind == NodeKind::Message
            && let Some(text) = node.params["text"].as_str()
        {
            self.tell(&view.principal, text.to_owned()).await;
        }
        match outcome {
            Ok(output) => {
                let (t, n, k) = (task.to_owned(), node_id.to_owned(), key.clone());
                let tool = action.tool.clone();
                let task_stopped = self
                    .inner
                    .store
                    .call(move |conn| {
                        let run = || -> Result<bool, OrchError> {
                            idempotency::finish(conn, &k, &output.to_string(), Utc::now())?;
                            journal::transition(conn, &t, Some(&n), Some(State::Running), State::Completed, &json!({ "output": output, "key": k }), now_ms())?;
                            audit_append(conn, "tool_action", &runner_name(&tool), &json!({ "task": t, "node": n, "tool": tool, "key": k, "attempt": attempt, "outcome": "completed" }))?;
                            // Read in the same transaction as the task's
                            // close (see `fail_task`): one of the two sees
                            // the other.
                            Ok(journal::current(conn, &t, None)?.is_some_and(State::is_terminal))
                        };
                        Ok(run())
                    })
                    .await??;
                self.bump();
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

    /// Mints the node's token, stores the idempotency key, and runs the
    /// tool on a blocking thread within its budget. The outer error is the
    /// store's; the inner one the call's.
    async fn call_tool(
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
            budget,
        } = call;
        let tool = runner.tool();
        let resource = match tool.resource(prepared) {
            Ok(resource) => resource,
            Err(error) => return Ok(Err(error)),
        };
        let grant = Grant {
            tool: tool.name().to_owned(),
            scope: tool.scope().to_owned(),
            resource,
            audience: runner_name(tool.name()),
            node: format!("{task}/{node_id}"),
        };
        // Least privilege in time too: the budget plus a little, never more
        // than the maximum.
        let ttl = (budget + Duration::from_secs(5)).min(MAX_TTL);
        let token = match self.inner.minter.mint(&grant, Utc::now(), ttl) {
            Ok(token) => token.to_base64(),
            Err(error) => return Ok(Err(ToolError::Token(error))),
        };
        // The key is committed before the call: a crash after this point
        // finds it and never repeats a side effect blindly.
        let state = match key_state {
            Some(state) => state,
            None => {
                let k = key.to_owned();
                self.inner
                    .store
                    .call(move |conn| Ok(idempotency::begin(conn, &k, Utc::now())))
                    .await??
            }
        };
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

    async fn after_failure(
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
        self.inner
            .store
            .call(move |conn| {
                let run = || -> Result<(), OrchError> {
                    let (to, detail) = if retry {
                        (State::Blocked, json!({ "retry_at_ms": wake_at, "error": msg, "attempt": attempt }))
                    } else {
                        (State::Failed, json!({ "error": msg, "attempt": attempt }))
                    };
                    journal::transition(conn, &t, Some(&n), Some(State::Running), to, &detail, now_ms())?;
                    audit_append(conn, kind, &runner_name(&tool), &json!({ "task": t, "node": n, "tool": tool, "key": k, "attempt": attempt, "outcome": "failed", "error": msg, "retry": retry }))?;
                    Ok(())
                };
                Ok(run())
            })
            .await??;
        self.bump();
        if retry {
            self.arm_retry(task, node_id, wake_at).await;
            Ok(())
        } else {
            self.fail_task(task, node_id, &message, true).await
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
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
    fn arm_retry<'a>(&'a self, task: &'a str, node: &'a str, wake_at_ms: i64) -> BoxFuture<'a, ()> {
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
        let view = self.load(task).await?;
        let Some(state) = view.nodes.get(node) else {
            return Ok(());
        };
        if state.state != Some(State::Blocked) || view.state.is_terminal() {
            return Ok(());
        }
        if state.retry_at_ms.is_some() {
            self.run_node(task, node, Some(view)).await?;
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

    /// Fails a node that may not run at all (no policy, unknown tool,
    /// invalid arguments), audits the refusal, and fails the task.
    async fn refuse(
        &self,
        task: &str,
        node: &str,
        from: Option<State>,
        reason: &str,
    ) -> Result<(), OrchError> {
        let (t, n, r) = (task.to_owned(), node.to_owned(), reason.to_owned());
        let moved = self
            .inner
            .store
            .call(move |conn| {
                let run = || -> Result<bool, OrchError> {
                    match journal::transition(
                        conn,
                        &t,
                        Some(&n),
                        from,
                        State::Failed,
                        &json!({ "error": r }),
                        now_ms(),
                    ) {
                        Ok(_) => {}
                        Err(JournalError::Conflict { .. }) => return Ok(false),
                        Err(other) => return Err(other.into()),
                    }
                    audit_append(
                        conn,
                        "refusal",
                        "orchestrator",
                        &json!({ "task": t, "node": n, "reason": r }),
                    )?;
                    Ok(true)
                };
                Ok(run())
            })
            .await??;
        self.bump();
        if moved {
            self.fail_task(task, node, reason, false).await?;
        }
        Ok(())
    }

    /// After `failed_node` failed for good: compensates completed nodes in
    /// reverse order of completion, fails nodes that never started, closes
    /// the task, and dead-letters it when `dead_letter` is set.
    async fn fail_task(
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
        // Nodes with an undo that were still running when `view` was read.
        let running_with_undo: Vec<String> = view
            .graph
            .nodes
            .iter()
            .filter(|n| {
                !n.params["compensate"].is_null() && view.node(&n.id).state == Some(State::Running)
            })
            .map(|n| n.id.clone())
            .collect();
        let closed = self
            .inner
            .store
            .call(move |conn| {
                let run = || -> Result<(bool, Vec<String>), OrchError> {
                    for (id, from) in &untouched {
                        let detail = json!({ "error": format!("not run: node {f} failed") });
                        match journal::transition(
                            conn,
                            &t,
                            Some(id),
                            Some(*from),
                            State::Failed,
                            &detail,
                            now_ms(),
                        ) {
                            Ok(_) | Err(JournalError::Conflict { .. }) => {}
                            Err(other) => return Err(other.into()),
                        }
                    }
                    let from = journal::current(conn, &t, None)?;
                    if from.is_none_or(State::is_terminal) {
                        return Ok((false, Vec::new()));
                    }
                    // Completed since `view` was read, before this close:
                    // their completion did not see the task stopped.
                    let mut finished_meanwhile = Vec::new();
                    for id in &running_with_undo {
                        if journal::current(conn, &t, Some(id))? == Some(State::Completed) {
                            finished_meanwhile.push(id.clone());
                        }
                    }
                    let detail =
                        json!({ "failed_node": f, "error": r, "compensation_errors": errors });
                    journal::transition(conn, &t, None, from, end, &detail, now_ms())?;
                    if dead_letter {
                        journal::dead_letter(conn, &t, &f, &r, now_ms())?;
                        audit_append(
                            conn,
                            "dead_letter",
                            "orchestrator",
                            &json!({ "task": t, "node": f, "reason": r }),
                        )?;
                    }
                    Ok((true, finished_meanwhile))
                };
                Ok(run())
            })
            .await??;
        self.bump();
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
            let mut text = format!("Task {task} stopped: node {failed_node} failed: {reason}.");
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
    async fn compensate(
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
        self.inner
            .store
            .call(move |conn| {
                let run = || -> Result<(), OrchError> {
                    audit_append(
                        conn,
                        "compensation",
                        &runner_name(&tool),
                        &json!({ "task": t, "node": n, "tool": tool, "key": k, "error": error }),
                    )?;
                    if let Some(output) = output {
                        idempotency::finish(conn, &k, &output.to_string(), Utc::now())?;
                        journal::transition(
                            conn,
                            &t,
                            Some(&n),
                            Some(State::Completed),
                            State::RolledBack,
                            &json!({ "compensation": output }),
                            now_ms(),
                        )?;
                    }
                    Ok(())
                };
                Ok(run())
            })
            .await??;
        self.bump();
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
        self.inner
            .store
            .call(move |conn| Ok(replay_in(conn, &t)))
            .await??;
        self.bump();
        self.spawn_drive(task.to_owned());
        Ok(())
    }

    async fn tell(&self, to: &Principal, text: String) {
        if let Some(notifier) = &self.inner.notifier {
            notifier.notify(to, text).await;
        }
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

fn audit_append(
    conn: &Connection,
    kind: &str,
    actor: &str,
    action: &Value,
) -> Result<(), OrchError> {
    audit::append(conn, kind, actor, action, Utc::now())
        .map(|_| ())
        .map_err(|e| OrchError::Store(StoreError::CommitFailed(format!("audit: {e}"))))
}

fn tier_of(tier: opticlaw_core::TrustTier) -> Tier {
    Tier::try_from(tier as u8).unwrap_or(Tier::HighRisk)
}

fn non_tool_note(node: &TaskNode, action: &Action) -> String {
    match node.kind {
        NodeKind::Message => "message sent".into(),
        NodeKind::Approval => format!("approved at tier {}", action.tier.level()),
        _ => "reasoning step: nothing to run".into(),
    }
}

/// What the user sees when asked to approve: the exact action, and how to
/// answer.
fn approval_prompt(approval: &approval::Approval, action: &Action) -> String {
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

fn completion_text(view: &TaskView) -> String {
    let mut text = format!("Done: {}", view.graph.goal);
    for node in &view.graph.nodes {
        if let Some(output) = &view.node(&node.id).output {
            let shown = output["stdout"]
                .as_str()
                .or(output["text"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| output.to_string());
            let shown: String = shown.chars().take(2000).collect();
            text.push_str(&format!("\n[{}] {}", node.id, shown.trim_end()));
        }
    }
    text
}
