//! Wiring the orchestrator into the daemon: tools from `[tools]`, tiers
//! from `[[policy]]`, the signing key, chat notifications through the
//! runtime's outbox, retry timers through the runtime's scheduler, the
//! `/run` `/read` `/approve` `/deny` chat commands, and the local API the
//! `approvals` and `dlq` commands use.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use opticlaw_core::ResponseKind;
use opticlaw_orchestrator::plans::task_id_for_event;
use opticlaw_orchestrator::tools::{FileRead, FileWrite, GrantedDirs, Shell, Tool};
use opticlaw_orchestrator::{
    BoxFuture, Notifier, Orchestrator, OrchestratorConfig, Parts, RetryTimer, Timers,
};
use opticlaw_planner::rules;
use opticlaw_runtime::{
    ACTOR_TIMER, ActRequest, Actor, Answer, AnswerFuture, AnswerRequest, Answerer, Runtime,
};
use opticlaw_security::approval::Principal;
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::TokenMinter;
use opticlaw_security::totp::Totp;
use opticlaw_security::{Policy, PolicyConfig, Secret};
use opticlaw_store::{NewDeferredTask, NewReply, StoreHandle};
use opticlaw_triage::rules::ActCommand;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::home::Home;
use crate::planning;

/// The runtime, set once it has started (the orchestrator is built first,
/// because the runtime takes it as its actor).
#[derive(Default)]
pub struct LateRuntime(OnceLock<Runtime>);

impl LateRuntime {
    pub fn set(&self, runtime: Runtime) {
        let _ = self.0.set(runtime);
    }
}

/// What a sandboxed command must not read even as the daemon's own uid:
/// the daemon's home (API token, signing key, store) and common key stores.
fn secret_dirs(home: &Home) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![home.root.clone()];
    if let Some(user_home) = std::env::var_os("HOME").map(std::path::PathBuf::from) {
        for name in [".ssh", ".gnupg", ".aws", ".config/gcloud", ".kube"] {
            dirs.push(user_home.join(name));
        }
    }
    dirs
}

/// Builds the orchestrator for the daemon.
pub fn build(
    home: &Home,
    config: &Config,
    store: StoreHandle,
    runtime: Arc<LateRuntime>,
) -> Result<Orchestrator> {
    let grants = GrantedDirs::new(&config.tools.granted_dirs).context("[tools] granted_dirs")?;
    let mut tools: Vec<Arc<dyn Tool>> = vec![
        Arc::new(FileRead::new(grants.clone())),
        Arc::new(FileWrite::new(grants.clone())),
    ];
    match crate::sandbox_runner::build(&config.sandbox, home) {
        Ok(sandbox) => tools.push(Arc::new(
            Shell::new(sandbox, grants, config.tools.shell_network)
                .hiding(secret_dirs(home))
                .auditing_egress(store.clone()),
        )),
        // Fail closed: without the sandbox there is no shell tool at all.
        Err(err) => tracing::warn!(%err, "the sandbox is unavailable here: /run is disabled"),
    }
    let policy = Policy::from_config(&PolicyConfig {
        policy: config.policy.clone(),
    })?;
    let totp = match &config.tools.totp_secret_file {
        Some(path) => Some(read_totp(path)?),
        None => None,
    };
    let key = SigningKey::load_or_create(&home.data_dir().join("token_signing.key"))?;
    let orchestrator = Orchestrator::new(Parts {
        store,
        minter: TokenMinter::new(key),
        tools,
        policy,
        totp,
        notifier: Some(Arc::new(ChatNotifier(runtime.clone()))),
        timers: Timers::External(Arc::new(SchedulerTimer(runtime))),
        config: OrchestratorConfig {
            max_attempts: config.tools.max_attempts,
            retry_base: std::time::Duration::from_millis(config.tools.retry_base_ms),
            ..OrchestratorConfig::default()
        },
    });
    // Tool outcomes update the planner's reliability figures.
    Ok(orchestrator.with_outcome_hook(Arc::new(planning::SelfModelHook)))
}

fn read_totp(path: &Path) -> Result<Totp> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("[tools] totp_secret_file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "[tools] totp_secret_file {} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    let seed = Secret::new(std::fs::read_to_string(path)?);
    Totp::from_base32(seed.expose().trim())
        .with_context(|| format!("[tools] totp_secret_file {}", path.display()))
}

/// Tells the user in the chat the task came from, through the outbox (so a
/// chat platform gets it like any reply).
struct ChatNotifier(Arc<LateRuntime>);

impl Notifier for ChatNotifier {
    fn notify<'a>(&'a self, to: &'a Principal, text: String) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(runtime) = self.0.0.get() else {
                return;
            };
            let reply = NewReply {
                in_reply_to: None,
                source: to.source.clone(),
                user_id: to.user_id.clone(),
                thread_id: to.chat_id.clone(),
                kind: ResponseKind::Notice,
                text,
            };
            if let Err(err) = runtime.notify(reply).await {
                tracing::error!(%err, "could not store a notice for the user");
            }
        })
    }
}

/// Retry timers are deferred tasks: the scheduler's one timer covers them,
/// and they survive a restart.
struct SchedulerTimer(Arc<LateRuntime>);

impl RetryTimer for SchedulerTimer {
    fn arm<'a>(&'a self, task: &'a str, node: &'a str, wake_at_ms: i64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(runtime) = self.0.0.get() else {
                return;
            };
            let deferred = NewDeferredTask {
                task_id: format!("orch-retry/{task}/{node}/{wake_at_ms}"),
                wake_at_ms,
                condition: None,
                payload: json!({ "kind": ACTOR_TIMER, "task": task, "node": node }),
                owner_source: "orchestrator".into(),
                owner_user: "orchestrator".into(),
            };
            if let Err(err) = runtime.defer(deferred).await {
                tracing::error!(%err, task, node, "could not arm a retry; it is re-armed on restart");
            }
        })
    }
}

/// The runtime's actor: chat commands and action requests in, through the
/// planner, plans to the orchestrator.
#[derive(Clone)]
pub struct DaemonActor {
    pub orch: Orchestrator,
    pub planner: Arc<opticlaw_planner::Planner>,
    /// The model path, for action requests no rule plans (`None`: no
    /// model, or `[planner] model_plans` is off).
    pub model: Option<crate::model_answerer::ModelAnswerer>,
    /// Triage's classifier must give at least this probability that a tool
    /// is needed before a model is asked to plan (cheap first: other
    /// messages go to the plain answerer).
    pub tool_need: f32,
}

impl Actor for DaemonActor {
    fn act(&self, request: ActRequest) -> AnswerFuture {
        let this = self.clone();
        Box::pin(async move {
            let event = &request.event;
            let principal = planning::principal_of(event);
            let task_id = task_id_for_event(&event.source, &event.event_id);
            let orch = &this.orch;
            let (text, outcome) = match request.command {
                ActCommand::Run(command) => {
                    let goal = planning::goal_for(event, &format!("/run {command}"), None);
                    this.plan_command(
                        goal,
                        principal,
                        task_id,
                        "/run",
                        rules::run_command(&command),
                    )
                    .await?
                }
                ActCommand::Read(path) => {
                    let goal = planning::goal_for(event, &format!("/read {path}"), None);
                    this.plan_command(goal, principal, task_id, "/read", rules::read_file(&path))
                        .await?
                }
                ActCommand::Approve { id, code } => {
                    let text = orch
                        .approve(&id, &principal, code.as_deref())
                        .await
                        .map_err(|e| approve_refusal(&id, e))?;
                    (text, json!({ "approved": id }))
                }
                ActCommand::Deny(id) => {
                    let text = orch
                        .deny(&id, &principal)
                        .await
                        .map_err(|e| e.to_string())?;
                    (text, json!({ "denied": id }))
                }
            };
            Ok(Answer { text, outcome })
        })
    }

    fn plan(&self, request: &AnswerRequest) -> Option<AnswerFuture> {
        let text = request.event.content.text.trim().to_owned();
        let intent = request.triage.intent.as_ref();
        let label = intent.filter(|i| i.in_scope).map(|i| i.intent.clone());
        let by_rule = planning::rules_plan(&text, label.as_deref());
        let by_model = !by_rule
            && self.model.is_some()
            && intent.is_some_and(|i| i.tool_needed >= self.tool_need);
        if !by_rule && !by_model {
            return None;
        }
        let this = self.clone();
        let event = request.event.clone();
        let fallback = request.clone();
        Some(Box::pin(async move {
            let goal = planning::goal_for(&event, &text, label);
            let task_id = task_id_for_event(&event.source, &event.event_id);
            let llm = this.model.as_ref().map(|m| m.decomposer());
            let planned = planning::plan_goal(
                &this.planner,
                &this.orch,
                &goal,
                task_id,
                llm.as_ref().filter(|_| by_model),
            )
            .await?;
            // The model found no plan (or the gate refused it): answer the
            // message as a question instead.
            if by_model
                && matches!(
                    planned.result,
                    Err(opticlaw_planner::PlanError::NoPlan(_)
                        | opticlaw_planner::PlanError::Model(_))
                )
                && let Some(model) = &this.model
            {
                let outcomes = planned.model_outcomes;
                this.orch
                    .store()
                    .call(move |conn| {
                        for outcome in &outcomes {
                            opticlaw_models::accounting::persist_outcome(conn, outcome)?;
                        }
                        Ok(())
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                return model.answer(fallback).await;
            }
            let (text, outcome) =
                planning::submit(&this.orch, planned, planning::principal_of(&event)).await?;
            Ok(Answer { text, outcome })
        }))
    }

    fn timer_fired(
        &self,
        task: opticlaw_store::DeferredTask,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let orch = self.orch.clone();
        Box::pin(async move {
            let field = |name: &str| task.payload[name].as_str().unwrap_or_default().to_owned();
            let (task_id, node) = (field("task"), field("node"));
            if let Err(err) = orch.retry_due(&task_id, &node).await {
                tracing::error!(task = task_id, node, %err, "a retry failed to start");
            }
        })
    }
}

/// Why an approval was refused, for the chat; a tier 3 request approved
/// without its code (a typed `/approve ID`, or an Approve button) says how
/// to give it.
fn approve_refusal(id: &str, error: opticlaw_orchestrator::OrchError) -> String {
    use opticlaw_security::approval::ApprovalError;
    match error {
        opticlaw_orchestrator::OrchError::Approval(ApprovalError::TotpRequired) => format!(
            "request {id} is tier 3: reply /approve {id} CODE with your 6-digit authenticator code"
        ),
        other => other.to_string(),
    }
}

impl DaemonActor {
    /// Plans a command's nodes (no decomposition) and submits them.
    async fn plan_command(
        &self,
        goal: opticlaw_planner::Goal,
        principal: Principal,
        task_id: uuid::Uuid,
        command: &str,
        nodes: Vec<opticlaw_core::TaskNode>,
    ) -> Result<(String, Value), String> {
        let self_model = planning::load_self_model(&self.orch).await?;
        let planned = self
            .planner
            .plan_nodes(&goal, task_id, command, nodes, &self_model);
        planning::submit(&self.orch, planned, principal).await
    }
}

/// The local API for `opticlaw approvals approve|deny` and `opticlaw dlq
/// replay`: the daemon does them, so the node runs in the daemon. The
/// caller holds the daemon's bearer token: the machine's owner.
///
/// `POST /v1/tasks` takes any task graph (the planner's seam) for the local
/// user in `thread_id`; `GET /v1/tasks/{id}` shows its state.
pub fn router(orch: Orchestrator, token: String, local_user: String) -> Router {
    let state = Arc::new(ApiState {
        orch,
        token,
        local_user,
    });
    Router::new()
        .route("/v1/approvals/{id}/{decision}", post(decide))
        .route("/v1/dlq/{task}/replay", post(replay))
        .route("/v1/tasks", post(submit_task))
        .route("/v1/tasks/{task}", axum::routing::get(show_task))
        .with_state(state)
}

struct ApiState {
    orch: Orchestrator,
    token: String,
    local_user: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    graph: Value,
    thread_id: Option<String>,
}

async fn submit_task(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Json(body): Json<TaskBody>,
) -> ApiResult {
    authorized(&state, &headers)?;
    // Validated on the way in: cycles, dangling ids and bad fields are
    // refused naming the node.
    let graph = opticlaw_core::TaskGraph::from_json(&body.graph.to_string())
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let principal = Principal {
        source: "local".into(),
        user_id: state.local_user.clone(),
        chat_id: body.thread_id.unwrap_or_else(|| "main".into()),
    };
    state
        .orch
        .submit(graph, principal)
        .await
        .map(|task| Json(json!({ "task": task })))
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn show_task(
    State(state): State<Arc<ApiState>>,
    UrlPath(task): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorized(&state, &headers)?;
    let view = state
        .orch
        .load(&task)
        .await
        .map_err(|e| api_error(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(Json(serde_json::to_value(view).unwrap_or_default()))
}

fn authorized(state: &ApiState, headers: &HeaderMap) -> Result<(), (StatusCode, Json<Value>)> {
    crate::server::check_bearer(&state.token, headers).map_err(|_| {
        api_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    code: Option<String>,
}

type ApiResult = Result<Json<Value>, (StatusCode, Json<Value>)>;

fn api_error(status: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": { "message": message } })))
}

async fn decide(
    State(state): State<Arc<ApiState>>,
    UrlPath((id, decision)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<DecideBody>>,
) -> ApiResult {
    crate::server::check_bearer(&state.token, &headers).map_err(|_| {
        api_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
    })?;
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(api_error(
                StatusCode::NOT_FOUND,
                format!("unknown decision {other:?}: approve or deny"),
            ));
        }
    };
    let code = body.and_then(|Json(b)| b.code);
    state
        .orch
        .decide_as_owner(&id, approve, code.as_deref())
        .await
        .map(|text| Json(json!({ "message": text })))
        .map_err(|e| api_error(StatusCode::CONFLICT, e.to_string()))
}

async fn replay(
    State(state): State<Arc<ApiState>>,
    UrlPath(task): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorized(&state, &headers)?;
    state
        .orch
        .replay(&task)
        .await
        .map(|()| Json(json!({ "message": format!("task {task} replayed") })))
        .map_err(|e| api_error(StatusCode::CONFLICT, e.to_string()))
}
