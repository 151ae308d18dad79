//! A fake of every platform's outbound API on loopback. It checks each call
//! the way the platform does (auth, required fields, length limits) and
//! answers as the platform documents, including 429 with a retry delay.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::*;

/// One call the fake accepted or refused.
#[derive(Debug, Clone)]
pub struct Call {
    pub platform: &'static str,
    pub method: Method,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
pub struct FakeState {
    pub calls: Mutex<Vec<Call>>,
    /// Per platform: answer the next calls with 429 and these delays (seconds).
    pub throttle: Mutex<HashMap<&'static str, VecDeque<f64>>>,
    matrix_txns: Mutex<HashMap<String, String>>,
    updates: Mutex<Vec<Value>>,
    /// Per platform: answer the next this-many calls 503 (an outage).
    outage: Mutex<HashMap<&'static str, u32>>,
    /// `getUpdates` bodies as they arrive (calls are logged when answered,
    /// which for a held poll is much later).
    polls: Mutex<Vec<Value>>,
    update_arrived: Notify,
}

pub struct FakePlatform {
    pub base: String,
    pub state: Arc<FakeState>,
    server: JoinHandle<()>,
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakePlatform {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            state,
            server,
        }
    }

    /// Accepted calls (2xx) to one platform.
    pub fn delivered(&self, platform: &str) -> Vec<Call> {
        self.calls(platform)
            .into_iter()
            .filter(|c| (200..300).contains(&c.status))
            .collect()
    }

    pub fn calls(&self, platform: &str) -> Vec<Call> {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.platform == platform)
            .cloned()
            .collect()
    }

    pub fn throttle(&self, platform: &'static str, delays: &[f64]) {
        self.state
            .throttle
            .lock()
            .unwrap()
            .entry(platform)
            .or_default()
            .extend(delays.iter().copied());
    }

    /// Answers the next `calls` calls to `platform` with 503 Service Unavailable.
    pub fn outage(&self, platform: &'static str, calls: u32) {
        self.state.outage.lock().unwrap().insert(platform, calls);
    }

    /// The `getUpdates` calls received so far, answered or still held.
    pub fn polls(&self) -> Vec<Value> {
        self.state.polls.lock().unwrap().clone()
    }

    /// Queues a Telegram update for `getUpdates` and wakes a waiting poll.
    pub fn push_update(&self, update: Value) {
        self.state.updates.lock().unwrap().push(update);
        self.state.update_arrived.notify_waiters();
    }
}

fn utf16(text: &str) -> usize {
    text.encode_utf16().count()
}

async fn handle(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = parts.uri.path().to_owned();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let platform: &'static str = ["telegram", "slack", "discord", "whatsapp", "matrix"]
        .into_iter()
        .find(|p| path.starts_with(&format!("/{p}/")))
        .unwrap_or("unknown");

    let throttled = state
        .throttle
        .lock()
        .unwrap()
        .get_mut(platform)
        .and_then(|q| q.pop_front());
    let down = state
        .outage
        .lock()
        .unwrap()
        .get_mut(platform)
        .filter(|left| **left > 0)
        .map(|left| *left -= 1)
        .is_some();
    let (status, headers, answer) = if down {
        (
            503,
            HeaderMap::new(),
            json!({"error": "service unavailable"}),
        )
    } else if let Some(delay) = throttled {
        rate_limited(platform, delay)
    } else {
        match platform {
            "telegram" => telegram(&state, &path, &json).await,
            "slack" => slack(&path, auth.as_deref(), &json),
            "discord" => discord(&path, auth.as_deref(), &json),
            "whatsapp" => whatsapp(&path, auth.as_deref(), &json),
            "matrix" => matrix(&state, &parts.method, &path, auth.as_deref(), &json),
            _ => (404, HeaderMap::new(), json!({"error": "unknown platform"})),
        }
    };
    state.calls.lock().unwrap().push(Call {
        platform,
        method: parts.method.clone(),
        path,
        authorization: auth,
        body: json,
        status,
    });
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(answer)).into_response();
    response.headers_mut().extend(headers);
    response
}

type Answer = (u16, HeaderMap, Value);

fn ok(body: Value) -> Answer {
    (200, HeaderMap::new(), body)
}

fn rate_limited(platform: &str, delay: f64) -> Answer {
    let mut headers = HeaderMap::new();
    let secs = delay.ceil() as u64;
    match platform {
        // parameters.retry_after, integer seconds
        "telegram" => (
            429,
            headers,
            json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {secs}"), "parameters": {"retry_after": secs}}),
        ),
        // Retry-After header
        "slack" => {
            headers.insert("retry-after", secs.to_string().parse().unwrap());
            (429, headers, json!({"ok": false, "error": "ratelimited"}))
        }
        // retry_after in (fractional) seconds
        "discord" => {
            headers.insert("retry-after", secs.to_string().parse().unwrap());
            (
                429,
                headers,
                json!({"message": "You are being rate limited.", "retry_after": delay, "global": false}),
            )
        }
        "whatsapp" => (
            400,
            headers,
            json!({"error": {"message": "(#131056) (Business Account, Consumer Account) pair rate limit hit", "type": "OAuthException", "code": 131056, "fbtrace_id": "A1"}}),
        ),
        _ => {
            headers.insert("retry-after", secs.to_string().parse().unwrap());
            (
                429,
                headers,
                json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": (delay * 1000.0) as u64}),
            )
        }
    }
}

async fn telegram(state: &FakeState, path: &str, body: &Value) -> Answer {
    let method = [TELEGRAM_TOKEN, TELEGRAM_WORK_TOKEN]
        .iter()
        .find_map(|token| path.strip_prefix(&format!("/telegram/bot{token}/")));
    let Some(method) = method else {
        return (
            401,
            HeaderMap::new(),
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    };
    let bad = |d: &str| {
        (
            400,
            HeaderMap::new(),
            json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {d}")}),
        )
    };
    match method {
        "getMe" => ok(
            json!({"ok": true, "result": {"id": 123456, "is_bot": true, "first_name": "OptiClaw", "username": "opticlaw_bot"}}),
        ),
        "sendPhoto" | "sendDocument" | "sendAudio" | "sendVideo" => {
            // https://core.telegram.org/bots/api#sending-files: a file_id or an HTTP URL.
            let field = method.trim_start_matches("send").to_ascii_lowercase();
            if body["chat_id"].is_null() {
                return bad("chat_id is empty");
            }
            let Some(file) = body[&field].as_str().filter(|f| !f.is_empty()) else {
                return bad(&format!("there is no {field} in the request"));
            };
            let web = file.starts_with("https://") || file.starts_with("http://");
            if !web && file.contains('/') {
                return bad("wrong remote file identifier specified");
            }
            if body["caption"].as_str().is_some_and(|c| utf16(c) > 1024) {
                return bad("message caption is too long");
            }
            ok(
                json!({"ok": true, "result": {"message_id": 1000 + rand_id(), "chat": {"id": body["chat_id"]}, "date": 0}}),
            )
        }
        "sendMessage" => {
            if body["chat_id"].is_null() {
                return bad("chat_id is empty");
            }
            let Some(text) = body["text"].as_str() else {
                return bad("message text is empty");
            };
            if text.trim().is_empty() {
                return bad("message text is empty");
            }
            if utf16(text) > 4096 {
                return bad("message is too long");
            }
            if !matches!(
                body["parse_mode"].as_str(),
                None | Some("MarkdownV2" | "HTML")
            ) {
                return bad("unsupported parse_mode");
            }
            ok(
                json!({"ok": true, "result": {"message_id": 1000 + rand_id(), "chat": {"id": body["chat_id"]}, "date": 0, "text": text}}),
            )
        }
        "getUpdates" => {
            state.polls.lock().unwrap().push(body.clone());
            let offset = body["offset"].as_i64().unwrap_or(0);
            let timeout = body["timeout"].as_u64().unwrap_or(0);
            let take = || -> Vec<Value> {
                state
                    .updates
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .cloned()
                    .collect()
            };
            let mut found = take();
            if found.is_empty() && timeout > 0 {
                // Long polling: hold the request until an update arrives or the timeout passes.
                let _ = tokio::time::timeout(
                    Duration::from_secs(timeout),
                    state.update_arrived.notified(),
                )
                .await;
                found = take();
            }
            ok(json!({"ok": true, "result": found}))
        }
        _ => (
            404,
            HeaderMap::new(),
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ),
    }
}

fn slack(path: &str, auth: Option<&str>, body: &Value) -> Answer {
    if !matches!(path, "/slack/api/chat.postMessage" | "/slack/api/auth.test") {
        return ok(json!({"ok": false, "error": "unknown_method"}));
    }
    if auth != Some(&format!("Bearer {SLACK_BOT_TOKEN}")) {
        return ok(json!({"ok": false, "error": "invalid_auth"}));
    }
    if path == "/slack/api/auth.test" {
        return ok(
            json!({"ok": true, "url": "https://team.slack.com/", "team": "Team", "user": "opticlaw", "team_id": "T1", "user_id": "U1", "bot_id": "B1"}),
        );
    }
    if body["channel"].as_str().is_none_or(str::is_empty) {
        return ok(json!({"ok": false, "error": "channel_not_found"}));
    }
    let Some(text) = body["text"].as_str().filter(|t| !t.is_empty()) else {
        return ok(json!({"ok": false, "error": "no_text"}));
    };
    if utf16(text) > 4000 {
        return ok(json!({"ok": false, "error": "msg_too_long"}));
    }
    ok(
        json!({"ok": true, "channel": body["channel"], "ts": format!("1503435956.{:06}", rand_id())}),
    )
}

fn discord(path: &str, auth: Option<&str>, body: &Value) -> Answer {
    let rest = path.strip_prefix("/discord/api/v10/").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').collect();
    let authorized = match segments.as_slice() {
        ["webhooks", app, token] => *app == DISCORD_APP_ID && !token.is_empty(),
        ["channels", _, "messages"] => auth == Some(&format!("Bot {DISCORD_BOT_TOKEN}")),
        ["users", "@me"] => {
            if auth != Some(&format!("Bot {DISCORD_BOT_TOKEN}")) {
                return (
                    401,
                    HeaderMap::new(),
                    json!({"message": "401: Unauthorized", "code": 0}),
                );
            }
            return ok(json!({"id": "80351110224678912", "username": "opticlaw", "bot": true}));
        }
        _ => {
            return (
                404,
                HeaderMap::new(),
                json!({"message": "404: Not Found", "code": 0}),
            );
        }
    };
    if !authorized {
        return (
            401,
            HeaderMap::new(),
            json!({"message": "401: Unauthorized", "code": 0}),
        );
    }
    let content = body["content"].as_str().unwrap_or("");
    if content.is_empty() {
        return (
            400,
            HeaderMap::new(),
            json!({"message": "Cannot send an empty message", "code": 50006}),
        );
    }
    if content.chars().count() > 2000 {
        return (
            400,
            HeaderMap::new(),
            json!({"code": 50035, "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}, "message": "Invalid Form Body"}),
        );
    }
    ok(
        json!({"id": format!("11{}", rand_id()), "content": content, "channel_id": "645027906669510667"}),
    )
}

fn whatsapp(path: &str, auth: Option<&str>, body: &Value) -> Answer {
    let err = |status: u16, code: i64, message: &str| {
        (
            status,
            HeaderMap::new(),
            json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Az"}}),
        )
    };
    let lookup = path == format!("/whatsapp/v21.0/{WHATSAPP_PHONE_ID}");
    if !lookup && path != format!("/whatsapp/v21.0/{WHATSAPP_PHONE_ID}/messages") {
        return err(400, 100, "Unsupported post request");
    }
    if auth != Some(&format!("Bearer {WHATSAPP_ACCESS_TOKEN}")) {
        return err(401, 190, "Invalid OAuth access token");
    }
    if lookup {
        return ok(
            json!({"display_phone_number": "+1 555-0100", "verified_name": "OptiClaw", "id": WHATSAPP_PHONE_ID}),
        );
    }
    if body["messaging_product"] != "whatsapp" || body["to"].as_str().is_none() {
        return err(400, 100, "(#100) Invalid parameter");
    }
    let kind = body["type"].as_str().unwrap_or("");
    if matches!(kind, "image" | "document" | "audio" | "video") {
        let media = &body[kind];
        let link = media["link"].as_str().unwrap_or("");
        if !(link.starts_with("https://") || link.starts_with("http://")) {
            return err(400, 100, "(#100) Param link must be an HTTP/HTTPS URL");
        }
        if kind == "audio" && !media["caption"].is_null() {
            return err(400, 100, "(#100) Param audio['caption'] is not allowed");
        }
        if media["caption"].as_str().is_some_and(|c| utf16(c) > 1024) {
            return err(
                400,
                100,
                "(#100) Param caption must be at most 1024 characters long.",
            );
        }
        return ok(
            json!({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}], "messages": [{"id": format!("wamid.{}", rand_id())}]}),
        );
    }
    if kind != "text" {
        return err(400, 100, "(#100) Invalid parameter");
    }
    let text = body["text"]["body"].as_str().unwrap_or("");
    if text.is_empty() || utf16(text) > 4096 {
        return err(
            400,
            100,
            "(#100) Param text['body'] must be at most 4096 characters long.",
        );
    }
    ok(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}], "messages": [{"id": format!("wamid.{}", rand_id())}]}),
    )
}

fn matrix(
    state: &FakeState,
    method: &Method,
    path: &str,
    auth: Option<&str>,
    body: &Value,
) -> Answer {
    let err = |status: u16, errcode: &str, error: &str| {
        (
            status,
            HeaderMap::new(),
            json!({"errcode": errcode, "error": error}),
        )
    };
    let Some(auth) = auth else {
        return err(401, "M_MISSING_TOKEN", "Missing access token");
    };
    if auth != format!("Bearer {MATRIX_AS_TOKEN}") {
        return err(401, "M_UNKNOWN_TOKEN", "Unrecognised access token");
    }
    if path == "/matrix/_matrix/client/v3/account/whoami" {
        return ok(json!({"user_id": MATRIX_BOT, "is_guest": false}));
    }
    let rest = path
        .strip_prefix("/matrix/_matrix/client/v3/rooms/")
        .unwrap_or("");
    let segments: Vec<&str> = rest.split('/').collect();
    let [_, "send", "m.room.message", txn] = segments.as_slice() else {
        return err(404, "M_UNRECOGNIZED", "Unrecognized request");
    };
    if method != Method::PUT {
        return err(405, "M_UNRECOGNIZED", "Unrecognized request");
    }
    if !segments[0].starts_with("%21") {
        return err(
            400,
            "M_INVALID_PARAM",
            "room id must be percent-encoded and start with !",
        );
    }
    if body["msgtype"].as_str().is_none() || body["body"].as_str().is_none() {
        return err(400, "M_BAD_JSON", "msgtype and body are required");
    }
    let media = matches!(
        body["msgtype"].as_str(),
        Some("m.image" | "m.file" | "m.audio" | "m.video")
    );
    if media
        && !body["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("mxc://"))
    {
        return err(400, "M_BAD_JSON", "media events need an mxc:// url");
    }
    if serde_json::to_vec(body).unwrap().len() > 65536 {
        return err(413, "M_TOO_LARGE", "event too large");
    }
    // Transaction ids make the send idempotent: same txn, same event.
    let mut txns = state.matrix_txns.lock().unwrap();
    let event_id = txns
        .entry(txn.to_string())
        .or_insert_with(|| format!("$ev{}:example.org", rand_id()))
        .clone();
    ok(json!({"event_id": event_id}))
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
