//! The daemon's HTTP API on loopback: health, status, and the local channel
//! (post a message, read or stream replies).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use opticlaw_core::{EventEnvelope, Priority, ResponsePacket};
use opticlaw_runtime::{Runtime, SubmitError};
use opticlaw_store::ops;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

pub struct AppState {
    pub runtime: Runtime,
    pub token: String,
    pub max_body_bytes: usize,
    pub local_user: String,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/status", get(status))
        .route("/v1/local/messages", post(post_message))
        .route("/v1/local/replies", get(list_replies))
        .route("/v1/local/stream", get(stream_replies))
        .merge(crate::webchat::routes())
        .fallback(not_found)
        .with_state(state)
}

/// A JSON error body: `{"error":{"code":..,"message":..,"field":..}}`.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> Self {
        match err {
            SubmitError::Busy { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", err.to_string())
            },
            SubmitError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                err.to_string(),
            ),
            SubmitError::Store(store) => {
                tracing::error!(%store, "store failure while accepting an event");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store",
                    "the store failed; the event was not accepted",
                )
            }
        }
    }
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    check_bearer(&state.token, headers)
}

/// Checks the bearer token in constant time (also for other routers).
pub(crate) fn check_bearer(token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (it is in $OPTICLAW_HOME/api_token)",
        ))
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "state": state.runtime.state() }))
}

async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let status = state.runtime.status().await.map_err(|err| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", err.to_string())
    })?;
    let mut body = serde_json::to_value(status).unwrap_or_default();
    body["pid"] = json!(std::process::id());
    body["rss_bytes"] = json!(crate::procfs::rss_bytes(std::process::id()));
    Ok(Json(body).into_response())
}

/// What a local client posts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalMessage {
    text: String,
    #[serde(default)]
    thread_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    /// A client-chosen id makes a retry safe: the same id is processed once.
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
    /// Where the text came from when not typed by the user (`email`,
    /// `web`, `file`, `tool_output`): an automation forwarding content
    /// marks it, and what the planner derives from it waits for approval.
    #[serde(default)]
    provenance: Option<opticlaw_planner::Provenance>,
}

const MAX_ID_BYTES: usize = 200;

async fn post_message(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    authorize(&state, request.headers())?;
    let body = read_body(request.into_body(), state.max_body_bytes).await?;
    let message: LocalMessage = parse_json(&body)?;
    let check_id = |field: &str, value: &Option<String>| match value {
        Some(v) if v.is_empty() || v.len() > MAX_ID_BYTES => Err(ApiError {
            field: Some(field.to_owned()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                format!("`{field}` must be 1 to {MAX_ID_BYTES} bytes"),
            )
        }),
        _ => Ok(()),
    };
    check_id("thread_id", &message.thread_id)?;
    check_id("user_id", &message.user_id)?;
    check_id("event_id", &message.event_id)?;
    let mut event = EventEnvelope::local_text(
        message.user_id.as_deref().unwrap_or(&state.local_user),
        message.thread_id.as_deref().unwrap_or("main"),
        &message.text,
    );
    if let Some(id) = message.event_id {
        event.event_id = id;
    }
    if let Some(priority) = message.priority {
        event.hints.priority = priority;
    }
    if let Some(provenance) = message.provenance {
        event.metadata.insert(
            crate::planning::PROVENANCE_KEY.to_owned(),
            serde_json::json!(provenance.as_str()),
        );
    }
    let submission = state.runtime.submit(event).await?;
    let status = if submission.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(submission)).into_response())
}

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes (server.max_body_bytes)"),
        )
    })
}

/// Parses JSON naming the field at fault.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // A missing field is reported at the parent: name it from the message.
        let field = if path == "." {
            missing_field_name(&inner.to_string())
        } else {
            Some(path)
        };
        ApiError {
            field: field.clone(),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                match field {
                    Some(f) => format!("invalid request body at `{f}`: {inner}"),
                    None => format!("invalid request body: {inner}"),
                },
            )
        }
    })
}

fn missing_field_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

#[derive(Debug, Deserialize)]
struct ReplyQuery {
    #[serde(default = "main_thread")]
    thread_id: String,
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn main_thread() -> String {
    "main".to_owned()
}

fn default_limit() -> usize {
    100
}

async fn list_replies(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ReplyQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let limit = query.limit.min(1000);
    let replies = state
        .runtime
        .store()
        .call(move |conn| ops::local_replies_after(conn, &query.thread_id, query.after, limit))
        .await
        .map_err(|err| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", err.to_string())
        })?;
    Ok(Json(json!({ "replies": replies })).into_response())
}

/// Server-sent events: the thread's replies after `after`, then each new
/// one as it is committed. No keep-alive pings: an idle stream costs no
/// wake-ups.
async fn stream_replies(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ReplyQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    authorize(&state, &headers)?;
    // Subscribe before reading the backlog so nothing falls between them.
    let live = state.runtime.subscribe();
    let thread = query.thread_id.clone();
    let backlog = state
        .runtime
        .store()
        .call(move |conn| ops::local_replies_after(conn, &thread, query.after, 1000))
        .await
        .map_err(|err| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", err.to_string())
        })?;
    let last_sent = backlog.last().map_or(query.after, |r| r.seq);
    let stopping = state.runtime.stopping();
    let thread = query.thread_id;
    let live = stream::unfold((live, last_sent), move |(mut live, last_sent)| {
        let stopping = stopping.clone();
        let thread = thread.clone();
        async move {
            loop {
                let next = tokio::select! {
                    next = live.recv() => next,
                    () = stopping.cancelled() => return None,
                };
                match next {
                    Ok(reply)
                        if reply.source == "local"
                            && reply.thread_id == thread
                            && reply.seq > last_sent =>
                    {
                        let seq = reply.seq;
                        return Some((reply, (live, seq)));
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "a reply stream lagged; the client can resume with ?after="
                        );
                        continue;
                    }
                    Err(_) => return None,
                }
            }
        }
    });
    let events = stream::iter(backlog)
        .chain(live)
        .map(|reply: ResponsePacket| {
            Ok(Event::default()
                .id(reply.seq.to_string())
                .event(reply.kind.as_str())
                .json_data(&reply)
                .unwrap_or_default())
        });
    Ok(Sse::new(events))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see `opticlaw --help`",
    )
}
