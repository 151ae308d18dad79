//! `opticlaw bench gateway`: signed webhooks of all five platforms in, rule
//! replies out through a fake of each platform's API, all on loopback,
//! against a real daemon (`opticlaw serve` in a temporary home).
//!
//! Each message is a `/time` from its own conversation, signed exactly as
//! its platform signs (Slack HMAC-SHA256 v0, Discord Ed25519, WhatsApp
//! `X-Hub-Signature-256`, Telegram secret token, Matrix `hs_token`), and
//! signed before the timed window, as a platform signs on its own machines;
//! the daemon verifies every signature inside it. A rule
//! answer is stored and answered in one transaction before the webhook's
//! 200; the daemon then delivers it to the fake API. Two latencies are
//! measured per message: the webhook's round trip (what the platform
//! waits for) and in→out (webhook sent until the reply reaches the fake
//! platform). The fake platform is unlimited by default and the daemon's
//! send rate limits are off (`gateway.send_rate_limits = false`), so the
//! figures measure OptiClaw, not the platforms' quotas; `--platform-limit`
//! gives the fake a per-platform limit that answers 429 as documented.
//! Each worker holds one kept-alive HTTP/1 connection to the daemon, as a
//! platform does, and writes its requests straight onto it.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signer, SigningKey};
use opticlaw_gateway::Platform;
use opticlaw_gateway::platforms::{slack, whatsapp};
use opticlaw_gateway::ratelimit::{BucketSpec, TokenBucket};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// How long to send messages
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Webhook requests in flight at once
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Forged requests per platform sent first (each must be refused)
    #[arg(long, default_value_t = 40)]
    forged: usize,
    /// Messages a second the fake platform accepts per platform before it
    /// answers 429 (0: unlimited, which measures OptiClaw rather than the quota)
    #[arg(long, default_value_t = 0)]
    platform_limit: u32,
}

/// Requests signed ahead per connection and second of the run (more than
/// a connection sends here).
const PRESIGNED_PER_CONNECTION_PER_SEC: u64 = 1_000;

const TELEGRAM_SECRET: &str = "bench-webhook-secret";
const SLACK_SECRET: &str = "bench-slack-signing-secret";
const WHATSAPP_SECRET: &str = "bench-whatsapp-app-secret";
const MATRIX_HS_TOKEN: &str = "bench-hs-token";
const DISCORD_APP: &str = "1107430150000000000";
const PHONE_ID: &str = "106540352242922";

/// When the first reply of each conversation reached the fake platform.
#[derive(Default)]
struct FakeState {
    arrivals: Mutex<HashMap<(Platform, String), Instant>>,
    limits: Mutex<HashMap<Platform, TokenBucket>>,
    limited: Mutex<u64>,
}

type Shared = Arc<FakeState>;

pub fn run(args: Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

/// The conversation a platform call answers, and the 429 its platform sends.
fn conversation(platform: Platform, rest: &str, body: &Value) -> Option<String> {
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .or(v.as_i64().map(|i| i.to_string()))
    };
    match platform {
        Platform::Telegram => text(&body["chat_id"]),
        Platform::Slack => text(&body["channel"]),
        // webhooks/{application_id}/{interaction token}
        Platform::Discord => rest.split('/').nth(4).map(str::to_owned),
        Platform::WhatsApp => text(&body["to"]),
        // _matrix/client/v3/rooms/{roomId}/send/...
        Platform::Matrix => rest.split('/').nth(4).map(|room| {
            percent_encoding::percent_decode_str(room)
                .decode_utf8_lossy()
                .into_owned()
        }),
    }
}

fn too_many(platform: Platform) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", "1".parse().expect("header"));
    let body = match platform {
        Platform::Telegram => {
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}})
        }
        Platform::Slack => json!({"ok": false, "error": "ratelimited"}),
        Platform::Discord => {
            json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false})
        }
        Platform::WhatsApp => {
            json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429}})
        }
        Platform::Matrix => {
            json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 1000})
        }
    };
    (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(body)).into_response()
}

fn delivered(platform: Platform) -> Value {
    match platform {
        Platform::Telegram => json!({"ok": true, "result": {"message_id": 1}}),
        Platform::Slack => json!({"ok": true, "ts": "1700000000.000100"}),
        Platform::Discord => json!({"id": "1"}),
        Platform::WhatsApp => json!({"messages": [{"id": "wamid.bench"}]}),
        Platform::Matrix => json!({"event_id": "$bench"}),
    }
}

async fn fake_call(
    State(state): State<Shared>,
    Path((platform, rest)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(platform) = Platform::parse(&platform) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(bucket) = state.limits.lock().expect("lock").get_mut(&platform)
        && bucket.try_take(Instant::now()).is_err()
    {
        *state.limited.lock().expect("lock") += 1;
        return too_many(platform);
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(key) = conversation(platform, &rest, &body) {
        state
            .arrivals
            .lock()
            .expect("lock")
            .entry((platform, key))
            .or_insert_with(Instant::now);
    }
    axum::Json(delivered(platform)).into_response()
}

async fn fake_platform(state: Shared) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route(
            "/{platform}/{*rest}",
            axum::routing::post(fake_call).put(fake_call),
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn gateway_config(api: &str, discord_key: &SigningKey) -> String {
    let public_key = hex::encode(discord_key.verifying_key().as_bytes());
    format!(
        r#"
[gateway]
send_rate_limits = false
[gateway.telegram]
bot_token = "1:BENCH"
webhook_secret = "{TELEGRAM_SECRET}"
allow_from = ["*"]
api_base = "{api}/telegram"
[gateway.slack]
signing_secret = "{SLACK_SECRET}"
bot_token = "xoxb-bench"
allow_from = ["*"]
api_base = "{api}/slack/api"
[gateway.discord]
application_id = "{DISCORD_APP}"
public_key = "{public_key}"
allow_from = ["*"]
api_base = "{api}/discord/api/v10"
[gateway.whatsapp]
app_secret = "{WHATSAPP_SECRET}"
verify_token = "bench"
access_token = "EAAG-bench"
phone_number_id = "{PHONE_ID}"
allow_from = ["*"]
api_base = "{api}/whatsapp/v21.0"
[gateway.matrix]
hs_token = "{MATRIX_HS_TOKEN}"
as_token = "bench-as-token"
homeserver_url = "{api}/matrix"
bot_user_id = "@opticlaw:bench"
allow_from = ["*"]
"#
    )
}

/// One signed webhook: its route, method, headers, body, and the
/// conversation its reply goes to.
struct Webhook {
    path: String,
    put: bool,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    conversation: String,
}

/// Message `n` for `platform`, signed as the platform signs (or forged).
fn webhook(platform: Platform, n: u64, discord: &SigningKey, forged: bool) -> Webhook {
    let now = chrono::Utc::now().timestamp();
    let route = |p: &str| format!("/hooks/{p}/default");
    match platform {
        Platform::Telegram => {
            let body = json!({"update_id": n, "message": {"message_id": 1, "from": {"id": n, "is_bot": false, "first_name": "Bench"}, "chat": {"id": n, "type": "private"}, "date": now, "text": "/time"}});
            let secret = if forged { "forged" } else { TELEGRAM_SECRET };
            Webhook {
                path: route("telegram"),
                put: false,
                headers: vec![("x-telegram-bot-api-secret-token", secret.into())],
                body: body.to_string().into_bytes(),
                conversation: n.to_string(),
            }
        }
        Platform::Slack => {
            let channel = format!("D{n}");
            let body = json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": format!("Ev{n}"), "event_time": now,
                "event": {"type": "message", "channel": channel, "user": format!("U{n}"), "text": "/time", "ts": format!("{now}.{n:06}"), "channel_type": "im"}})
            .to_string()
            .into_bytes();
            let ts = now.to_string();
            let secret = if forged { "forged" } else { SLACK_SECRET };
            Webhook {
                path: route("slack"),
                put: false,
                headers: vec![
                    ("x-slack-request-timestamp", ts.clone()),
                    ("x-slack-signature", slack::sign(secret, &ts, &body)),
                ],
                body,
                conversation: channel,
            }
        }
        Platform::Discord => {
            let token = format!("tok{n}");
            let body = json!({"id": n.to_string(), "application_id": DISCORD_APP, "type": 2, "data": {"id": "1", "name": "time", "type": 1},
                "channel_id": format!("{n}"), "user": {"id": format!("{n}"), "username": "bench"}, "token": token, "version": 1})
            .to_string()
            .into_bytes();
            let ts = now.to_string();
            let mut message = ts.clone().into_bytes();
            message.extend_from_slice(&body);
            let key = if forged {
                SigningKey::from_bytes(&[9; 32])
            } else {
                discord.clone()
            };
            Webhook {
                path: route("discord"),
                put: false,
                headers: vec![
                    ("x-signature-timestamp", ts),
                    (
                        "x-signature-ed25519",
                        hex::encode(key.sign(&message).to_bytes()),
                    ),
                ],
                body,
                conversation: token,
            }
        }
        Platform::WhatsApp => {
            let from = format!("1{n:010}");
            let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_ID},
                "contacts": [{"profile": {"name": "Bench"}, "wa_id": from}],
                "messages": [{"from": from, "id": format!("wamid.{n}"), "timestamp": now.to_string(), "type": "text", "text": {"body": "/time"}}]}}]}]})
            .to_string()
            .into_bytes();
            let secret = if forged { "forged" } else { WHATSAPP_SECRET };
            Webhook {
                path: route("whatsapp"),
                put: false,
                headers: vec![("x-hub-signature-256", whatsapp::sign(secret, &body))],
                body,
                conversation: from,
            }
        }
        Platform::Matrix => {
            let room = format!("!r{n}:bench");
            let body = json!({"events": [{"type": "m.room.message", "event_id": format!("$e{n}:bench"), "room_id": room,
                "sender": format!("@u{n}:bench"), "origin_server_ts": now * 1000, "content": {"msgtype": "m.text", "body": "/time"}}]})
            .to_string()
            .into_bytes();
            let token = if forged { "forged" } else { MATRIX_HS_TOKEN };
            Webhook {
                path: format!("{}/_matrix/app/v1/transactions/txn{n}", route("matrix")),
                put: true,
                headers: vec![("authorization", format!("Bearer {token}"))],
                body,
                conversation: room,
            }
        }
    }
}

/// One kept-alive HTTP/1 connection to the daemon, as a platform holds
/// (Telegram keeps up to 40). Requests go out as built, with no URL parsing,
/// redirect policy or pool in between: the harness shares the two cores it
/// measures, so it should take as little of them as it can.
struct WebhookConnection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<axum::body::Bytes>>,
    host: String,
}

impl WebhookConnection {
    async fn open(addr: &str) -> Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to the daemon at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: addr.to_owned(),
        })
    }

    /// Sends one webhook and reads the whole answer; its HTTP status.
    async fn post(&mut self, hook: Webhook) -> Result<u16> {
        use http_body_util::BodyExt;
        let mut request = axum::http::Request::builder()
            .method(if hook.put { "PUT" } else { "POST" })
            .uri(hook.path)
            .header("host", &self.host)
            .header("content-type", "application/json");
        for (name, value) in hook.headers {
            request = request.header(name, value);
        }
        let request = request.body(http_body_util::Full::new(axum::body::Bytes::from(
            hook.body,
        )))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

async fn start_daemon(
    api: &str,
    discord: &SigningKey,
) -> Result<(tempfile::TempDir, tokio::process::Child, String)> {
    let home = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let init = std::process::Command::new(&exe)
        .args(["init", "--port", &port.to_string()])
        .env("OPTICLAW_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .status()?;
    if !init.success() {
        bail!("`opticlaw init` failed");
    }
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(home.path().join("config.toml"))?;
    config.write_all(gateway_config(api, discord).as_bytes())?;
    let mut daemon = tokio::process::Command::new(&exe)
        .arg("serve")
        .env("OPTICLAW_HOME", home.path())
        .env("OPTICLAW_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the daemon")?;
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(daemon.stdout.take().expect("piped")).lines();
    let ready = lines.next_line().await?.unwrap_or_default();
    if !ready.contains("ready") {
        bail!("the daemon did not start: {ready}");
    }
    Ok((home, daemon, format!("127.0.0.1:{port}")))
}

/// One accepted message: its platform, conversation, when it was sent and
/// how long the webhook took.
struct Sent {
    platform: Platform,
    conversation: String,
    at: Instant,
    ack: Duration,
}

fn percentiles(mut samples: Vec<Duration>) -> [f64; 3] {
    samples.sort_unstable();
    if samples.is_empty() {
        return [f64::NAN; 3];
    }
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    [at(0.50), at(0.95), at(0.99)]
}

async fn bench(args: Args) -> Result<ExitCode> {
    let state: Shared = Arc::default();
    if args.platform_limit > 0 {
        let rate = f64::from(args.platform_limit);
        let mut limits = state.limits.lock().expect("lock");
        for platform in Platform::ALL {
            limits.insert(
                platform,
                TokenBucket::new(BucketSpec::new(rate, rate), Instant::now()),
            );
        }
    }
    let api = fake_platform(state.clone()).await?;
    let discord = SigningKey::from_bytes(&[7; 32]);
    let (_home, mut daemon, addr) = start_daemon(&api, &discord).await?;

    // Forged requests, every platform: each must be refused.
    let mut refused = 0;
    let forged_total = args.forged * Platform::ALL.len();
    let mut forger = WebhookConnection::open(&addr).await?;
    for i in 0..args.forged as u64 {
        for platform in Platform::ALL {
            let status = forger
                .post(webhook(platform, 9_000_000_000 + i, &discord, true))
                .await?;
            if status == 401 || status == 403 {
                refused += 1;
            }
        }
    }

    // Each connection's requests are signed before the timed window: a
    // platform signs on its own machines, so signing is not OptiClaw's work
    // and must not take the cores it is measured on. A connection that runs
    // out signs the rest as it goes.
    let message = |worker: usize, n: u64| {
        let id = (worker as u64 + 1) * 100_000_000 + n;
        let platform = Platform::ALL[(worker + n as usize) % Platform::ALL.len()];
        (platform, id)
    };
    let presigned_per_connection = args.seconds * PRESIGNED_PER_CONNECTION_PER_SEC;
    let presigned: Vec<Vec<Webhook>> = (0..args.concurrency)
        .map(|worker| {
            (0..presigned_per_connection)
                .map(|n| {
                    let (platform, id) = message(worker, n);
                    webhook(platform, id, &discord, false)
                })
                .collect()
        })
        .collect();

    let daemon_pid = daemon.id().unwrap_or(0);
    let ticks_before = crate::procfs::cpu_ticks(daemon_pid);
    let bench_ticks_before = crate::procfs::cpu_ticks(std::process::id());
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut workers = Vec::new();
    for (worker, signed) in presigned.into_iter().enumerate() {
        let (sent, discord) = (sent.clone(), discord.clone());
        let mut connection = WebhookConnection::open(&addr).await?;
        workers.push(tokio::spawn(async move {
            let mut signed = signed.into_iter();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let (platform, id) = message(worker, n);
                n += 1;
                let hook = signed
                    .next()
                    .unwrap_or_else(|| webhook(platform, id, &discord, false));
                let conversation = hook.conversation.clone();
                let at = Instant::now();
                match connection.post(hook).await {
                    Ok(200) => sent.lock().expect("lock").push(Sent {
                        platform,
                        conversation,
                        at,
                        ack: at.elapsed(),
                    }),
                    Ok(status) => eprintln!("{platform} webhook answered {status}"),
                    Err(err) => {
                        // The connection is gone: this worker stops.
                        eprintln!("{platform} webhook failed: {err:#}");
                        break;
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let ingress = start.elapsed();
    let sent = std::mem::take(&mut *sent.lock().expect("lock"));
    if sent.is_empty() {
        bail!("no webhook was accepted");
    }
    // Replies still in flight: wait (bounded) until every one has arrived.
    let settle = Instant::now() + Duration::from_secs(10);
    while state.arrivals.lock().expect("lock").len() < sent.len() && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let daemon_ticks = crate::procfs::cpu_ticks(daemon_pid)
        .zip(ticks_before)
        .map(|(after, before)| after - before);
    let bench_ticks = crate::procfs::cpu_ticks(std::process::id())
        .zip(bench_ticks_before)
        .map(|(after, before)| after - before);
    let _ = daemon.kill().await;

    let arrivals = state.arrivals.lock().expect("lock").clone();
    let mut all_in_out = Vec::new();
    let mut last_arrival = start;
    for platform in Platform::ALL {
        let mine: Vec<&Sent> = sent.iter().filter(|s| s.platform == platform).collect();
        let acks = percentiles(mine.iter().map(|s| s.ack).collect());
        let mut in_out = Vec::new();
        for s in &mine {
            if let Some(arrived) = arrivals.get(&(platform, s.conversation.clone())) {
                in_out.push(arrived.saturating_duration_since(s.at));
                last_arrival = last_arrival.max(*arrived);
            }
        }
        let delivered = in_out.len();
        all_in_out.extend(in_out.iter().copied());
        let io = percentiles(in_out);
        println!(
            "{:<9} {:>6} msgs ({:>5.0}/s)  webhook p50={:.2}ms p95={:.2}ms p99={:.2}ms  in->out p50={:.2}ms p95={:.2}ms p99={:.2}ms  delivered {delivered}/{}",
            platform.as_str(),
            mine.len(),
            mine.len() as f64 / ingress.as_secs_f64(),
            acks[0],
            acks[1],
            acks[2],
            io[0],
            io[1],
            io[2],
            mine.len()
        );
    }
    let delivered = all_in_out.len();
    let elapsed = last_arrival.saturating_duration_since(start).max(ingress);
    let rate = delivered as f64 / elapsed.as_secs_f64();
    let overall = percentiles(all_in_out);
    let limit = if args.platform_limit == 0 {
        "unlimited (the figures measure OptiClaw, not the platforms' quotas)".to_owned()
    } else {
        format!(
            "{} msgs/s per platform, {} calls answered 429",
            args.platform_limit,
            state.limited.lock().expect("lock")
        )
    };
    println!(
        "all: {} signed webhooks (signed before the timed window) in {:.1}s over {} connections, {delivered} replies delivered, in->out p50={:.2}ms p95={:.2}ms p99={:.2}ms; fake platform rate limit: {limit}; daemon send limits off",
        sent.len(),
        ingress.as_secs_f64(),
        args.concurrency,
        overall[0],
        overall[1],
        overall[2],
    );
    // CPU time per message holds still when the machine is shared, unlike
    // the rates: 100 ticks are one second of one core.
    if let (Some(d), Some(b)) = (daemon_ticks, bench_ticks) {
        let per_msg = |ticks: u64| ticks as f64 * 10_000.0 / sent.len() as f64;
        println!(
            "cpu per message: daemon {:.0}us, bench client + fake platforms {:.0}us; daemon used {:.0}% of a core",
            per_msg(d),
            per_msg(b),
            d as f64 / elapsed.as_secs_f64()
        );
    }
    println!(
        "msgs_per_s={rate:.0} p95_ms={:.2} forged_refused={refused}/{forged_total}",
        overall[1]
    );
    Ok(ExitCode::SUCCESS)
}
