//! The axum router: one route per platform and account,
//! `/hooks/{platform}/{account}`, for each configured account.
//!
//! | route | methods |
//! |---|---|
//! | `/hooks/slack/{account}` | POST |
//! | `/hooks/slack/{account}/interactive` | POST (button presses, form-encoded `payload`) |
//! | `/hooks/telegram/{account}` | POST |
//! | `/hooks/discord/{account}` | POST |
//! | `/hooks/whatsapp/{account}` | GET (subscription check), POST |
//! | `/hooks/matrix/{account}/_matrix/app/v1/transactions/{txnId}` | PUT |
//! | `/hooks/matrix/{account}/transactions/{txnId}` | PUT (legacy path) |
//! | `/hooks/matrix/{account}/_matrix/app/v1/ping` | POST |
//!
//! The Matrix registration's `url` is therefore `https://host/hooks/matrix/{account}`.
//! The account named `default` is also served at the older
//! `/webhooks/{platform}`, so existing platform settings keep working.
//! Bodies over `max_body_bytes` get 413, malformed JSON 400, both with a JSON
//! error naming the problem.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;

use crate::gateway::{Reply, ReplyBody};
use crate::{
    AuditLog, Channel, DEFAULT_ACCOUNT, EventSink, Gateway, InboundRequest, PairingStore, Platform,
};

struct RouteState<S, A, P> {
    gateway: Arc<Gateway<S, A, P>>,
    channel: Arc<Channel>,
}

impl<S, A, P> Clone for RouteState<S, A, P> {
    fn clone(&self) -> Self {
        Self {
            gateway: Arc::clone(&self.gateway),
            channel: Arc::clone(&self.channel),
        }
    }
}

/// Builds the webhook router for every platform configured in `gateway`.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` to get
/// peer addresses in audit records.
pub fn webhook_router<S, A, P>(gateway: Arc<Gateway<S, A, P>>) -> Router
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
{
    let mut router = Router::new();
    for channel in gateway.channels().cloned().collect::<Vec<_>>() {
        let mut bases = vec![channel.route()];
        if channel.account == DEFAULT_ACCOUNT {
            bases.push(format!("/webhooks/{}", channel.platform));
        }
        let state = RouteState {
            gateway: Arc::clone(&gateway),
            channel: Arc::new(channel),
        };
        for base in bases {
            router = router.merge(account_routes(&base, state.clone()));
        }
    }
    router
}

fn account_routes<S, A, P>(base: &str, state: RouteState<S, A, P>) -> Router
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
{
    match state.channel.platform {
        Platform::Matrix => Router::new()
            .route(
                &format!("{base}/_matrix/app/v1/transactions/{{txn_id}}"),
                put(matrix_transaction::<S, A, P>),
            )
            .route(
                &format!("{base}/transactions/{{txn_id}}"),
                put(matrix_transaction::<S, A, P>),
            )
            .route(
                &format!("{base}/_matrix/app/v1/ping"),
                post(webhook::<S, A, P>),
            )
            .with_state(state),
        Platform::Slack => Router::new()
            .route(base, post(webhook::<S, A, P>))
            .route(
                &format!("{base}/{}", crate::platforms::slack::INTERACTIVE),
                post(slack_interactive::<S, A, P>),
            )
            .with_state(state),
        Platform::WhatsApp => Router::new()
            .route(base, get(webhook::<S, A, P>).post(webhook::<S, A, P>))
            .with_state(state),
        _ => Router::new()
            .route(base, post(webhook::<S, A, P>))
            .with_state(state),
    }
}

async fn webhook<S, A, P>(State(state): State<RouteState<S, A, P>>, request: Request) -> Response
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
{
    serve(state, None, request).await
}

async fn slack_interactive<S, A, P>(
    State(state): State<RouteState<S, A, P>>,
    request: Request,
) -> Response
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
{
    let param = crate::platforms::slack::INTERACTIVE.to_owned();
    serve(state, Some(param), request).await
}

async fn matrix_transaction<S, A, P>(
    State(state): State<RouteState<S, A, P>>,
    Path(txn_id): Path<String>,
    request: Request,
) -> Response
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
{
    serve(state, Some(txn_id), request).await
}

async fn serve<S, A, P>(
    state: RouteState<S, A, P>,
    path_param: Option<String>,
    request: Request,
) -> Response
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
{
    let platform = state.channel.platform;
    let limit = state.gateway.config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return too_large(platform, limit);
    }
    let body = match axum::body::to_bytes(Body::new(body), limit).await {
        Ok(bytes) => bytes,
        Err(err) if is_length_limit(&err) => return too_large(platform, limit),
        Err(err) => {
            let reply = Reply::error(
                Some(platform),
                400,
                "unreadable_body",
                &err.to_string(),
                Some("body"),
            );
            return into_response(reply);
        }
    };
    let remote_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.to_string());
    let inbound = InboundRequest {
        method: &parts.method,
        query: parts.uri.query(),
        path_param: path_param.as_deref(),
        headers: &parts.headers,
        body: &body,
    };
    let reply = state
        .gateway
        .handle(&state.channel, &inbound, remote_addr, Utc::now())
        .await;
    into_response(reply)
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        source = e.source();
    }
    false
}

fn too_large(platform: Platform, limit: usize) -> Response {
    into_response(Reply::error(
        Some(platform),
        413,
        "body_too_large",
        &format!("request body exceeds the {limit}-byte limit"),
        Some("body"),
    ))
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        ReplyBody::Json(value) => (status, axum::Json(value)).into_response(),
        ReplyBody::Text(text) => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
    };
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
