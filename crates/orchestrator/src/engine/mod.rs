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
use opticlaw_security::token::{Grant, MAX_TTL, RevocationList, TokenMinter};
use opticlaw_security::totp::Totp;
use opticlaw_security::{Policy, Tier, audit};
use opticlaw_store::rusqlite::Connection;
use opticlaw_store::{StoreError, StoreHandle};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::journal::{self, JournalError, NodeView, TaskView};
use crate::state::State;
use crate::tools::{Runner, Tool, ToolCall, ToolError, runner_name};
use live::{LiveViews, Tx};

mod approvals;
mod failure;
mod live;
mod run;

pub use failure::replay_in;

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

/// Told how every tool call ended, inside the transaction that records it
/// (the daemon feeds the planner's self-model with it). `error` is `None`
/// on success; refusals (policy, grants, tokens) are not reported: they say
/// nothing about the tool's reliability.
pub trait OutcomeHook: Send + Sync {
    fn tool_outcome(
        &self,
        conn: &Connection,
        tool: &str,
        scope: &str,
        error: Option<&str>,
    ) -> opticlaw_store::rusqlite::Result<()>;
}

/// Runs a plan's reasoning step (a `reason` node: "summarize what the
/// read node returned"). `inputs` are the outputs of the node's
/// dependencies, by node id; the result becomes the node's output (a
/// `text` field is what a message's `{ID.output}` shows). The daemon backs
/// it with the model router (value gate, accounting), or an extractive
/// summary when no model is configured. Without one, reason nodes pass
/// through.
pub trait Reasoner: Send + Sync {
    fn reason<'a>(
        &'a self,
        task: &'a str,
        node: &'a TaskNode,
        inputs: Vec<(String, Value)>,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<Value, String>>;
}

/// Work done in the transaction that stores a new task (the daemon stores
/// the planner's decisions with it). Not called for a task already stored.
pub type OnInsert = Box<dyn FnOnce(&Connection) -> opticlaw_store::rusqlite::Result<()> + Send>;

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
    outcomes: Option<Arc<dyn OutcomeHook>>,
    reasoner: Option<Arc<dyn Reasoner>>,
    /// The folded state of running tasks (see [`live`]).
    live: Arc<LiveViews>,
    /// Revoked tokens, shared with every runner.
    revoked: RevocationList,
}

/// What running one node needs from its task's view.
#[derive(Debug, Clone)]
struct NodeRun {
    node: TaskNode,
    state: NodeView,
    principal: Principal,
    task_state: State,
}

impl NodeRun {
    fn of(view: &TaskView, node_id: &str) -> Option<Self> {
        Some(Self {
            node: view.graph.nodes.iter().find(|n| n.id == node_id)?.clone(),
            state: view.nodes.get(node_id)?.clone(),
            principal: view.principal.clone(),
            task_state: view.state,
        })
    }
}

/// What `drive` found the task needs next.
enum Next {
    Nothing,
    /// A node failed and the task was not closed yet.
    Close {
        node: String,
        reason: String,
    },
    /// Every node completed: close the task and tell the user this.
    Complete {
        principal: Principal,
        text: String,
    },
    /// Planned nodes whose dependencies completed.
    Start(Vec<NodeRun>),
}

/// One call of a node's tool: whose, under which idempotency key (and
/// where that key stands, with the token the caller minted and recorded
/// with it, when the caller already stored it), how long.
struct ToolAttempt<'a> {
    task: &'a str,
    node: &'a str,
    key: &'a str,
    key_state: Option<KeyState>,
    token: Option<Result<Minted, ToolError>>,
    budget: Duration,
}

/// A capability token minted for one call, and what revokes it.
struct Minted {
    token: String,
    revocation_id: String,
    expires_ms: i64,
}

/// What a node will do, as checked, approved and run.
#[derive(Debug, Clone)]
struct Action {
    tool: String,
    /// The scope the plan named (the runner's own when it named none).
    scope: String,
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
        let root = parts.minter.verifying_key();
        let revoked = RevocationList::default();
        let runners = parts
            .tools
            .into_iter()
            .map(|tool| {
                let runner = Runner::new(tool, root.clone()).with_revocations(revoked.clone());
                (runner.tool().name(), runner)
            })
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
                outcomes: None,
                reasoner: None,
                live: Default::default(),
                revoked,
            }),
        }
    }

    /// Reports every tool call's end to `hook` (call right after `new`).
    pub fn with_outcome_hook(mut self, hook: Arc<dyn OutcomeHook>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.outcomes = Some(hook),
            None => tracing::error!("with_outcome_hook called on a shared orchestrator; ignored"),
        }
        self
    }

    /// Runs `reason` nodes with `reasoner` (call right after `new`).
    pub fn with_reasoner(mut self, reasoner: Arc<dyn Reasoner>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.reasoner = Some(reasoner),
            None => tracing::error!("with_reasoner called on a shared orchestrator; ignored"),
        }
        self
    }

    pub fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    /// The runner of `tool`, as the orchestrator calls it (it refuses
    /// revoked tokens).
    pub fn runner(&self, tool: &str) -> Option<&Runner> {
        self.inner.runners.get(tool)
    }

    /// Cancels a task on behalf of `by`: nodes not started never start,
    /// completed ones with a compensating action are undone, and every
    /// token minted for the task that has not expired is revoked (audited),
    /// so a runner refuses it even if it is presented later.
    pub async fn cancel(&self, task: &str, by: &str) -> Result<(), OrchError> {
        // The task must exist (this reads it from the log if need be).
        self.with_view(task, |_| ()).await?;
        self.fail_task(task, "", &format!("cancelled by {by}"), false)
            .await
    }

    /// Accepts a validated graph for `principal` and starts it. Every
    /// tool node must name a tool this orchestrator runs. Submitting the
    /// same `task_id` twice starts it once.
    pub async fn submit(
        &self,
        graph: TaskGraph,
        principal: Principal,
    ) -> Result<String, OrchError> {
        self.submit_with(graph, principal, Box::new(|_| Ok(())))
            .await
    }

    /// Like [`Orchestrator::submit`], running `on_insert` in the same
    /// transaction as the task's first record (never for a resubmission).
    pub async fn submit_with(
        &self,
        graph: TaskGraph,
        principal: Principal,
        on_insert: OnInsert,
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
        let live = self.inner.live.clone();
        self.inner
            .store
            .call_then(
                move |conn| {
                    let run = || -> Result<Option<TaskView>, OrchError> {
                        let view = journal::insert_task(conn, &graph, &principal, now_ms())?;
                        if view.is_some() {
                            on_insert(conn)?;
                            audit_append(
                                conn,
                                "task_submitted",
                                &principal.user_id,
                                &json!({ "task": id, "goal": goal, "nodes": graph.nodes.len() }),
                            )?;
                        }
                        Ok(view)
                    };
                    Ok(run())
                },
                // A new task starts in memory: no step reads its log.
                move |inserted| {
                    if let Ok(Some(view)) = inserted {
                        live.adopt(view);
                    }
                },
            )
            .await??;
        self.spawn_drive(task_id.clone());
        Ok(task_id)
    }

    /// After a restart: rebuilds every unfinished task from the log and
    /// carries on where it stopped. Calls that were in flight are resumed
    /// with their idempotency key; retry timers are armed again.
    pub async fn resume_all(&self) -> Result<usize, OrchError> {
        // Before anything runs again: tokens revoked before the restart
        // stay refused.
        let revoked = self.inner.revoked.clone();
        self.inner
            .store
            .call(move |conn| Ok(revoked.refresh(conn, Utc::now())))
            .await?
            .map_err(|e| OrchError::Store(StoreError::CommitFailed(format!("revocations: {e}"))))?;
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

    /// A task's state: its live view while it runs, else rebuilt from its
    /// log.
    pub async fn load(&self, task: &str) -> Result<TaskView, OrchError> {
        self.with_view(task, TaskView::clone).await
    }

    /// The task's view as kept in memory while it runs; `None` when it is
    /// not there (finished, or not read since a restart). For checking
    /// that memory agrees with the log; callers want [`Orchestrator::load`].
    pub fn live_view(&self, task: &str) -> Option<TaskView> {
        self.inner.live.read(task, TaskView::clone).ok()
    }

    /// Runs `read` on the task's live view, reading the task from its log
    /// first when it is not in memory (after a restart, or once finished).
    async fn with_view<R>(
        &self,
        task: &str,
        read: impl FnOnce(&TaskView) -> R,
    ) -> Result<R, OrchError> {
        let read = match self.inner.live.read(task, read) {
            Ok(found) => return Ok(found),
            Err(read) => read,
        };
        let t = task.to_owned();
        let live = self.inner.live.clone();
        let view = self
            .inner
            .store
            .call_then(
                move |conn| Ok(journal::load(conn, &t)),
                // Adopted in commit order: every later commit is folded in.
                move |loaded| {
                    if let Ok(view) = loaded {
                        live.adopt(view);
                    }
                },
            )
            .await??;
        Ok(read(&view))
    }

    /// Runs `work` in one transaction; once it commits, the transitions it
    /// appended are folded into the live views (and whoever waits on a
    /// change is woken).
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> T + Send + 'static,
    ) -> Result<T, OrchError> {
        let (live, revoked) = (self.inner.live.clone(), self.inner.revoked.clone());
        let result = self
            .inner
            .store
            .call_then(
                move |conn| {
                    let mut tx = Tx::new(conn);
                    let value = work(&mut tx);
                    Ok((value, tx.appended, tx.revoked))
                },
                move |(_, appended, ids)| {
                    live.apply(appended);
                    if !ids.is_empty() {
                        revoked.extend(ids.iter().cloned(), Utc::now());
                    }
                },
            )
            .await;
        self.bump();
        match result {
            Ok((value, ..)) => Ok(value),
            Err(error) => {
                // The commit's fate is unknown to memory: read the log again.
                self.inner.live.clear();
                Err(error.into())
            }
        }
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
            let finished = self.with_view(task, |v| v.state.is_terminal()).await?;
            if finished || changes.changed().await.is_err() {
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

    /// Runs a node on its own tokio task; `snapshot` saves reading the
    /// view again when the caller just read it (a stale one is harmless:
    /// every transition re-checks the state it starts from).
    fn spawn_run_with(&self, task: String, node: String, snapshot: Option<NodeRun>) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.run_node(&task, &node, snapshot).await {
                tracing::error!(task, node, %err, "running a node failed; it resumes on restart");
            }
            this.spawn_drive(task);
        });
    }

    /// Starts every node whose dependencies are complete, and closes the
    /// task when all nodes are.
    async fn drive(&self, task: &str) -> Result<(), OrchError> {
        let (state, next) = self
            .with_view(task, |view| (view.state, next_step(view)))
            .await?;
        if state.is_terminal() {
            return Ok(());
        }
        if state == State::Planned {
            self.task_to(task, State::Running, json!({})).await?;
        }
        match next {
            Next::Nothing => Ok(()),
            // A node failed and the task was not closed (a crash came
            // between the two): close it now; compensations already done
            // are skipped by their idempotency keys.
            Next::Close { node, reason } => self.fail_task(task, &node, &reason, true).await,
            Next::Complete { principal, text } => {
                if self.task_to(task, State::Completed, json!({})).await? {
                    self.tell(&principal, text).await;
                }
                Ok(())
            }
            Next::Start(ready) => {
                for run in ready {
                    self.start_node(task, run).await?;
                }
                Ok(())
            }
        }
    }

    /// Moves the task to `to` unless it is there already; `false` when
    /// someone else moved it first.
    async fn task_to(&self, task: &str, to: State, detail: Value) -> Result<bool, OrchError> {
        let task = task.to_owned();
        Ok(self
            .write(move |tx| {
                let from = tx.current(&task, None)?;
                match from {
                    Some(from) if from == to || !from.allows(to, crate::state::Subject::Task) => {
                        Ok(false)
                    }
                    from => tx.transition(&task, None, from, to, &detail).map(|_| true),
                }
            })
            .await??)
    }

    /// Decides what a planned node needs: refusal, approval, or nothing.
    async fn start_node(&self, task: &str, run: NodeRun) -> Result<(), OrchError> {
        let action = match self.action_for(&run.node) {
            Ok(action) => action,
            Err(reason) => {
                self.refuse(task, &run.node.id, Some(State::Planned), &reason)
                    .await?;
                return Ok(());
            }
        };
        if action.tier < Tier::SideEffect {
            // Approved and started in one transaction by `run_node`.
            self.spawn_run_with(task.to_owned(), run.node.id.clone(), Some(run));
            return Ok(());
        }
        self.ask_approval(task, &run.principal, &run.node, action)
            .await
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
                    scope: String::new(),
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
        // Network hosts must be in the policy, and make it tier 2 or more.
        let hosts = runner.tool().hosts(&args).map_err(|e| e.to_string())?;
        let policy_tier = self
            .inner
            .policy
            .tier_with_hosts(&tool, runner.tool().scope(), &hosts)
            .map_err(|e| e.to_string())?;
        // The plan may raise a node's tier, never lower it below policy.
        let mut tier = policy_tier.max(node.policy.trust_tier.map_or(Tier::ReadOnly, tier_of));
        if node.policy.requires_approval {
            tier = tier.max(Tier::SideEffect);
        }
        let scope = node.params["scope"]
            .as_str()
            .unwrap_or(runner.tool().scope())
            .to_owned();
        Ok(Action {
            tool,
            scope,
            args,
            tier,
        })
    }

    async fn tell(&self, to: &Principal, text: String) {
        if let Some(notifier) = &self.inner.notifier {
            notifier.notify(to, text).await;
        }
    }
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

/// What a task needs next, read from its view.
fn next_step(view: &TaskView) -> Next {
    if view.state.is_terminal() {
        return Next::Nothing;
    }
    if let Some((id, node)) = view
        .nodes
        .iter()
        .find(|(_, n)| n.state == Some(State::Failed))
    {
        let reason = node.error.clone().unwrap_or_else(|| "failed".into());
        return Next::Close {
            node: id.clone(),
            reason,
        };
    }
    if view
        .nodes
        .values()
        .all(|n| n.state == Some(State::Completed))
    {
        return Next::Complete {
            principal: view.principal.clone(),
            text: completion_text(view),
        };
    }
    let ready = view
        .graph
        .nodes
        .iter()
        .filter(|node| {
            view.node(&node.id).state == Some(State::Planned)
                && node
                    .deps
                    .iter()
                    .all(|d| view.node(d).state == Some(State::Completed))
        })
        .filter_map(|node| NodeRun::of(view, &node.id))
        .collect();
    Next::Start(ready)
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
