//! A chat platform's webhook through the real daemon: verified, paired,
//! stored once, answered; forged requests leave only an audit record.

mod common;

use std::io::Write;

use common::Home;
use opticlaw_store::rusqlite::Connection;
use serde_json::{Value, json};

const SECRET: &str = "s3cret-webhook-token";

fn telegram_home() -> Home {
    let home = Home::init();
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(home.config_file())
        .unwrap();
    writeln!(
        config,
        "\n[gateway.telegram]\nbot_token = \"123456:TEST\"\nwebhook_secret = \"{SECRET}\"\napi_base = \"http://127.0.0.1:9\"\n"
    )
    .unwrap();
    home
}

fn update(update_id: i64, user: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": { "id": user, "is_bot": false, "first_name": "Sam" },
            "chat": { "id": user, "type": "private", "first_name": "Sam" },
            "date": 1_764_000_000,
            "text": text
        }
    })
}

fn post_webhook(daemon: &common::Daemon, secret: &str, body: &Value) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/hooks/telegram/default", daemon.base))
            .header("X-Telegram-Bot-Api-Secret-Token", secret)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn count(home: &Home, sql: &str) -> i64 {
    let conn = Connection::open(home.path().join("data/opticlaw.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn forged_telegram_request_is_refused_and_only_audited() {
    let home = telegram_home();
    let daemon = home.serve();
    let status = post_webhook(&daemon, "not-the-secret", &update(1, 42, "/help"));
    assert!(status == 401 || status == 403, "{status}");
    assert_eq!(count(&home, "SELECT COUNT(*) FROM events"), 0);
    assert_eq!(
        count(
            &home,
            "SELECT COUNT(*) FROM gateway_audit WHERE kind = 'forged_request'"
        ),
        1
    );
}

#[test]
fn unknown_sender_gets_a_code_and_is_heard_only_after_approval() {
    let home = telegram_home();
    let daemon = home.serve();
    assert_eq!(
        post_webhook(&daemon, SECRET, &update(10, 42, "hello?")),
        200
    );
    assert_eq!(
        count(&home, "SELECT COUNT(*) FROM events"),
        0,
        "an unknown sender's message is not stored"
    );
    // The pairing code goes out through the outbox, and the owner sees it.
    let notice: String = Connection::open(home.path().join("data/opticlaw.db"))
        .unwrap()
        .query_row(
            "SELECT body FROM replies WHERE source = 'telegram'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let listed = String::from_utf8(home.run(&["pairing", "list"]).stdout).unwrap();
    let code = listed.split_whitespace().next().unwrap().to_owned();
    assert!(notice.contains(&code), "{notice} / {listed}");
    assert!(listed.contains("42"), "{listed}");

    let approved = home.run(&["pairing", "approve", &code]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );

    assert_eq!(post_webhook(&daemon, SECRET, &update(11, 42, "/help")), 200);
    // Telegram retries the same update: stored and answered once.
    assert_eq!(post_webhook(&daemon, SECRET, &update(11, 42, "/help")), 200);
    assert_eq!(
        count(
            &home,
            "SELECT COUNT(*) FROM events WHERE source = 'telegram'"
        ),
        1
    );
    assert_eq!(
        count(&home, "SELECT COUNT(*) FROM events WHERE status = 'done'"),
        1
    );
    assert_eq!(
        count(
            &home,
            "SELECT COUNT(*) FROM replies WHERE source = 'telegram' AND kind = 'reply'"
        ),
        1
    );
}

/// Every call the fake platform received: (path, JSON body).
type Calls = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;

/// A fake Telegram Bot API on loopback that records every call.
fn fake_telegram() -> (String, Calls, std::thread::JoinHandle<()>) {
    fake_telegram_with(false)
}

/// A Telegram Bot API on loopback recording every call; with `hang_first`,
/// the first call is taken and never answered (a daemon killed then cannot
/// know whether the message went out).
fn fake_telegram_with(hang_first: bool) -> (String, Calls, std::thread::JoinHandle<()>) {
    use axum::routing::post;
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        post(
            move |axum::extract::Path(path): axum::extract::Path<String>,
                  axum::Json(body): axum::Json<Value>| {
                let recorded = recorded.clone();
                async move {
                    let first = {
                        let mut calls = recorded.lock().unwrap();
                        calls.push((path, body));
                        calls.len() == 1
                    };
                    if hang_first && first {
                        std::future::pending::<()>().await;
                    }
                    axum::Json(json!({ "ok": true, "result": { "message_id": 777 } }))
                }
            },
        ),
    );
    let (base, server) = common::serve_in_thread(app, 20);
    (base, calls, server)
}

/// A daemon whose Telegram account allows user 42 and sends to `api_base`,
/// once it has taken a webhook with `/help` from 42 and called the API.
fn help_sent_to_telegram(api_base: &str, calls: &Calls) -> (Home, common::Daemon) {
    let home = Home::init();
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(home.config_file())
        .unwrap();
    writeln!(
        config,
        "\n[gateway.telegram]\nbot_token = \"123456:TEST\"\nwebhook_secret = \"{SECRET}\"\nallow_from = [\"42\"]\napi_base = \"{api_base}\"\n"
    )
    .unwrap();
    let daemon = home.serve();
    assert_eq!(post_webhook(&daemon, SECRET, &update(20, 42, "/help")), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while calls.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (home, daemon)
}

#[test]
fn reply_to_an_allowed_sender_is_delivered_to_telegram_once() {
    let (api_base, calls, _server) = fake_telegram();
    let (home, daemon) = help_sent_to_telegram(&api_base, &calls);
    // The sender keeps its connection to the platform for the next reply,
    // and an idle daemon still never wakes (no pool reaper timer).
    common::wait_until_quiet(daemon.pid());
    let before = common::context_switches(daemon.pid());
    std::thread::sleep(std::time::Duration::from_secs(3));
    let woke = common::context_switches(daemon.pid()) - before;
    assert_eq!(
        woke, 0,
        "the idle daemon woke {woke} times in 3 s after a delivery"
    );
    // A restart must not send it again.
    daemon.kill9();
    let daemon = home.serve();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (path, body) = &calls[0];
    assert!(path.ends_with("sendMessage"), "{path}");
    assert!(path.contains("123456:TEST"), "{path}");
    assert_eq!(body["chat_id"].to_string().trim_matches('"'), "42");
    assert!(
        body["text"].as_str().unwrap().contains("remind me"),
        "{body}"
    );
    // Delivered and recorded so: the reply left the outbox and its part
    // left the send ledger, which holds only parts in flight.
    assert_eq!(
        count(
            &home,
            "SELECT COUNT(*) FROM replies WHERE delivered_ms IS NULL AND source <> 'local'"
        ),
        0
    );
    assert_eq!(count(&home, "SELECT COUNT(*) FROM gateway_send_ledger"), 0);
    drop(daemon);
}

/// A daemon killed while Telegram holds its send cannot know whether the
/// message went out: after the restart the part is in doubt and is not
/// sent again (Telegram has no idempotency key), and the reply leaves the
/// outbox.
#[test]
fn a_send_cut_by_a_crash_is_never_repeated() {
    let (api_base, calls, _server) = fake_telegram_with(true);
    let (home, daemon) = help_sent_to_telegram(&api_base, &calls);
    assert_eq!(calls.lock().unwrap().len(), 1, "the reply was never sent");
    daemon.kill9();
    let undelivered =
        "SELECT COUNT(*) FROM replies WHERE delivered_ms IS NULL AND source <> 'local'";
    assert_eq!(count(&home, undelivered), 1);

    let daemon = home.serve();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&home, undelivered) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        count(&home, undelivered),
        0,
        "the restart left it in the outbox"
    );
    assert_eq!(calls.lock().unwrap().len(), 1, "sent a second time");
    assert_eq!(count(&home, "SELECT COUNT(*) FROM gateway_send_ledger"), 0);
    drop(daemon);
}

/// `opticlaw bench gateway` against its own daemon and fake platforms: every
/// forged request refused, every accepted webhook answered on its platform,
/// and the summary line last.
#[test]
fn the_gateway_bench_delivers_every_reply_and_prints_its_summary_last() {
    let home = Home::init();
    let out = home.run(&[
        "bench",
        "gateway",
        "--seconds",
        "1",
        "--concurrency",
        "2",
        "--forged",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for platform in ["slack", "telegram", "discord", "whatsapp", "matrix"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(platform))
            .unwrap_or_else(|| panic!("no {platform} line in {stdout}"));
        let (_, delivered) = line.split_once("delivered ").expect("a delivered count");
        let (got, of) = delivered.split_once('/').expect("delivered N/M");
        assert_eq!(got, of, "{line}");
        assert_ne!(got, "0", "{line}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    let field = |name: &str| {
        last.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in the last line: {last}"))
            .to_owned()
    };
    assert!(field("msgs_per_s").parse::<f64>().unwrap() > 0.0, "{last}");
    assert!(field("p95_ms").parse::<f64>().unwrap() > 0.0, "{last}");
    assert_eq!(field("forged_refused"), "10/10", "{last}");
}
