//! Approve / Deny buttons on each platform that has them, through the real
//! daemon: a tier 2 `/read` typed in a chat gets its prompt and a buttons
//! message (checked at a fake platform API on loopback); a press by another
//! member is refused (and audited) and leaves the buttons; a forged press is
//! refused like any forged webhook; the owner's press approves once, the
//! platform's answer calls are made, and a second click or a redelivered
//! press changes nothing.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, Home, configure, granted_dir};
use opticlaw_store::rusqlite::Connection;
use serde_json::{Value, json};

/// One call the fake platform received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    auth: Option<String>,
    body: Value,
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// A fake platform API on loopback that records every call and answers
/// with a body every platform's sender reads as success (Telegram `ok` +
/// `result.message_id`, Slack `ok` + `ts`, Discord `id`, WhatsApp
/// `messages[0].id`).
fn fake_platform() -> (String, Calls, std::thread::JoinHandle<()>) {
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::any(
            move |method: axum::http::Method,
                  axum::extract::Path(path): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    recorded.lock().unwrap().push(Call {
                        method: method.to_string(),
                        path,
                        auth,
                        body,
                    });
                    axum::Json(json!({
                        "ok": true,
                        "result": { "message_id": 777 },
                        "ts": "1764000000.000900",
                        "id": "1300000000000000777",
                        "messages": [{ "id": "wamid.out" }],
                    }))
                }
            },
        ),
    );
    let (base, server) = common::serve_in_thread(app, 120);
    (base, calls, server)
}

/// Waits (in the test only) for a call matching `pred`.
fn wait_call(calls: &Calls, what: &str, pred: impl Fn(&Call) -> bool) -> Call {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(call) = calls.lock().unwrap().iter().find(|c| pred(c)) {
            return call.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what} call: {:#?}",
            calls.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count_calls(calls: &Calls, pred: impl Fn(&Call) -> bool) -> usize {
    calls.lock().unwrap().iter().filter(|c| pred(c)).count()
}

/// Lets the daemon finish anything in flight before counting calls.
fn settle() {
    std::thread::sleep(Duration::from_millis(700));
}

fn db_count(home: &Home, sql: &str) -> i64 {
    let conn = Connection::open(home.path().join("data/opticlaw.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn post(url: &str, headers: &[(&str, String)], content_type: &str, body: Vec<u8>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

/// A home whose `file.read` is tier 2 (needs approval), a note in the
/// granted directory, and `section` appended (one platform, pointed at the
/// fake API).
fn home_with(section: &str) -> (Home, tempfile::TempDir, String) {
    let (keep, grant) = granted_dir();
    std::fs::write(grant.join("note.txt"), "thenotecontent42\n").unwrap();
    let home = Home::init();
    configure(&home, &grant, &[("file.read", "read", 2)]);
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(home.config_file())
        .unwrap();
    writeln!(config, "\n[gateway]\nsend_rate_limits = false\n{section}").unwrap();
    let note = grant.join("note.txt").display().to_string();
    (home, keep, note)
}

/// The refusals of the approval check, by user.
fn refusals_by(home: &Home, user: &str) -> i64 {
    db_count(
        home,
        &format!(
            "SELECT COUNT(*) FROM security_audit WHERE kind = 'approval_refused' AND actor = '{user}'"
        ),
    )
}

fn approvals(home: &Home) -> i64 {
    db_count(
        home,
        "SELECT COUNT(*) FROM security_audit WHERE kind = 'approval'",
    )
}

/// One forged request audited, and the file still unread.
fn assert_forged_audited_and_nothing_read(home: &Home, calls: &Calls) {
    assert_eq!(
        db_count(
            home,
            "SELECT COUNT(*) FROM gateway_audit WHERE kind = 'forged_request'"
        ),
        1
    );
    settle();
    assert_not_read_yet(calls);
}

fn assert_not_read_yet(calls: &Calls) {
    assert_eq!(
        count_calls(calls, |c| c.body.to_string().contains("thenotecontent42")),
        0,
        "the file was read before the owner approved"
    );
}

// ---------------------------------------------------------------- Telegram

const TG_SECRET: &str = "tg-webhook-secret";
const TG_GROUP: i64 = -1001234;

fn telegram_post(daemon: &Daemon, secret: &str, body: &Value) -> u16 {
    post(
        &format!("{}/hooks/telegram/default", daemon.base),
        &[("X-Telegram-Bot-Api-Secret-Token", secret.to_owned())],
        "application/json",
        body.to_string().into_bytes(),
    )
    .0
}

fn telegram_press(update_id: i64, query: &str, user: i64, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": query,
            "from": { "id": user, "is_bot": false, "first_name": "U" },
            "message": {
                "message_id": 777,
                "from": { "id": 999, "is_bot": true, "first_name": "Bot" },
                "chat": { "id": TG_GROUP, "type": "supergroup", "title": "Team" },
                "date": 1_764_000_000,
                "text": "Approve or deny request ...?"
            },
            "chat_instance": "-5555",
            "data": data
        }
    })
}

#[test]
fn telegram_buttons_approve_once_and_only_for_the_requester() {
    let (api, calls, _server) = fake_platform();
    let (home, _keep, note) = home_with(&format!(
        "[gateway.telegram]\nbot_token = \"123456:TEST\"\nwebhook_secret = \"{TG_SECRET}\"\nallow_from = [\"42\", \"43\"]\napi_base = \"{api}\"\n"
    ));
    let daemon = home.serve();
    let typed = json!({
        "update_id": 1,
        "message": {
            "message_id": 10,
            "from": { "id": 42, "is_bot": false, "first_name": "Owner" },
            "chat": { "id": TG_GROUP, "type": "supergroup", "title": "Team" },
            "date": 1_764_000_000,
            "text": format!("/read {note}")
        }
    });
    assert_eq!(telegram_post(&daemon, TG_SECRET, &typed), 200);

    // The prompt, then the buttons message with an inline keyboard.
    wait_call(&calls, "prompt", |c| {
        c.path.ends_with("/sendMessage") && c.body.to_string().contains("Approval needed")
    });
    let buttons = wait_call(&calls, "buttons", |c| {
        c.path.ends_with("/sendMessage") && c.body.get("reply_markup").is_some()
    });
    assert_eq!(buttons.path, "bot123456:TEST/sendMessage");
    assert_eq!(buttons.body["chat_id"], json!(TG_GROUP));
    let row = &buttons.body["reply_markup"]["inline_keyboard"][0];
    assert_eq!(row[0]["text"], "Approve");
    assert_eq!(row[1]["text"], "Deny");
    let approve = row[0]["callback_data"].as_str().unwrap().to_owned();
    assert!(
        approve.len() <= 64,
        "callback_data is 1-64 bytes: {approve}"
    );

    // Another member of the group presses Approve: refused, shown only to them.
    assert_eq!(
        telegram_post(
            &daemon,
            TG_SECRET,
            &telegram_press(2, "cq-other", 43, &approve)
        ),
        200
    );
    let refused = wait_call(&calls, "refusal", |c| {
        c.path.ends_with("/answerCallbackQuery") && c.body["callback_query_id"] == "cq-other"
    });
    assert_eq!(refused.body["show_alert"], true);
    assert!(
        refused.body["text"]
            .as_str()
            .unwrap()
            .contains("another user or chat"),
        "{refused:?}"
    );
    assert!(refused.body["text"].as_str().unwrap().chars().count() <= 200);

    // A forged press (wrong secret token): refused, audited, never stored.
    let events_before = db_count(&home, "SELECT COUNT(*) FROM events");
    let status = telegram_post(
        &daemon,
        "guess",
        &telegram_press(3, "cq-forged", 42, &approve),
    );
    assert!(status == 401 || status == 403, "{status}");
    assert_eq!(
        db_count(&home, "SELECT COUNT(*) FROM events"),
        events_before
    );
    assert_forged_audited_and_nothing_read(&home, &calls);
    assert_eq!(
        count_calls(&calls, |c| c.path.ends_with("/editMessageText")),
        0
    );

    // The owner presses Approve: the toast, the buttons replaced by the
    // outcome, and the file read.
    let owner_press = telegram_press(4, "cq-owner", 42, &approve);
    assert_eq!(telegram_post(&daemon, TG_SECRET, &owner_press), 200);
    let answered = wait_call(&calls, "owner's answer", |c| {
        c.path.ends_with("/answerCallbackQuery") && c.body["callback_query_id"] == "cq-owner"
    });
    assert_eq!(answered.body["show_alert"], false);
    assert!(
        answered.body["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved:")
    );
    let edited = wait_call(&calls, "edit", |c| c.path.ends_with("/editMessageText"));
    assert_eq!(edited.body["message_id"], 777);
    assert_eq!(edited.body["chat_id"], json!(TG_GROUP));
    assert!(edited.body["text"].as_str().unwrap().contains("Approved:"));
    assert!(
        edited.body.get("reply_markup").is_none(),
        "the keyboard goes"
    );
    wait_call(&calls, "the result", |c| {
        c.body.to_string().contains("thenotecontent42")
    });

    // A double click and a redelivered update: approved once.
    assert_eq!(
        telegram_post(
            &daemon,
            TG_SECRET,
            &telegram_press(5, "cq-again", 42, &approve)
        ),
        200
    );
    let again = wait_call(&calls, "second click", |c| {
        c.body["callback_query_id"] == "cq-again"
    });
    // Refused: the request is no longer waiting for a decision.
    assert_eq!(again.body["show_alert"], true, "{again:?}");
    assert!(
        again.body["text"]
            .as_str()
            .unwrap()
            .starts_with("That was refused"),
        "{again:?}"
    );
    assert_eq!(telegram_post(&daemon, TG_SECRET, &owner_press), 200);
    settle();
    assert_eq!(
        count_calls(&calls, |c| c.body["callback_query_id"] == "cq-owner"),
        1
    );
    assert_eq!(
        count_calls(&calls, |c| c.path.ends_with("/editMessageText")),
        1
    );
    assert_eq!(approvals(&home), 1);
    assert_eq!(
        refusals_by(&home, "43"),
        1,
        "the other member's press is audited"
    );
}

#[test]
fn telegram_tier3_button_asks_for_the_code() {
    let (api, calls, _server) = fake_platform();
    let (home, _keep, note) = home_with(&format!(
        "[gateway.telegram]\nbot_token = \"123456:TEST\"\nwebhook_secret = \"{TG_SECRET}\"\nallow_from = [\"42\"]\napi_base = \"{api}\"\n"
    ));
    // Tier 3 needs a TOTP secret file (0600).
    let totp = home.path().join("totp.secret");
    std::fs::write(&totp, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n").unwrap();
    std::fs::set_permissions(
        &totp,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let text = std::fs::read_to_string(home.config_file()).unwrap();
    let text = text.replace("tier = 2", "tier = 3").replace(
        "retry_base_ms = 20\n",
        &format!(
            "retry_base_ms = 20\ntotp_secret_file = {:?}\n",
            totp.display().to_string()
        ),
    );
    std::fs::write(home.config_file(), text).unwrap();
    let daemon = home.serve();
    let typed = json!({
        "update_id": 1,
        "message": {
            "message_id": 10,
            "from": { "id": 42, "is_bot": false, "first_name": "Owner" },
            "chat": { "id": 42, "type": "private", "first_name": "Owner" },
            "date": 1_764_000_000,
            "text": format!("/read {note}")
        }
    });
    assert_eq!(telegram_post(&daemon, TG_SECRET, &typed), 200);
    let buttons = wait_call(&calls, "buttons", |c| c.body.get("reply_markup").is_some());
    assert!(
        buttons.body["text"].as_str().unwrap().contains("CODE"),
        "{buttons:?}"
    );
    let approve = buttons.body["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut press = telegram_press(2, "cq-t3", 42, &approve);
    press["callback_query"]["message"]["chat"] = json!({ "id": 42, "type": "private" });
    assert_eq!(telegram_post(&daemon, TG_SECRET, &press), 200);
    let answer = wait_call(&calls, "answer", |c| c.body["callback_query_id"] == "cq-t3");
    let text = answer.body["text"].as_str().unwrap();
    assert!(text.contains("CODE") && text.contains("/approve"), "{text}");
    assert_eq!(answer.body["show_alert"], true);
    settle();
    assert_not_read_yet(&calls);
    assert_eq!(approvals(&home), 0);
}

// ------------------------------------------------------------------- Slack

const SLACK_SECRET: &str = "slack-signing-secret";

fn slack_post(
    daemon: &Daemon,
    route: &str,
    secret: &str,
    content_type: &str,
    body: Vec<u8>,
) -> u16 {
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = opticlaw_gateway::platforms::slack::sign(secret, &ts, &body);
    post(
        &format!("{}/hooks/slack/default{route}", daemon.base),
        &[
            ("X-Slack-Request-Timestamp", ts),
            ("X-Slack-Signature", signature),
        ],
        content_type,
        body,
    )
    .0
}

/// A `block_actions` payload as Slack posts it: form-encoded `payload=`.
fn slack_press(user: &str, value: &str, action_ts: &str) -> Vec<u8> {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user, "username": "u", "team_id": "T1" },
        "api_app_id": "A1",
        "token": "legacy-unused",
        "container": { "type": "message", "message_ts": "1764000000.000900", "channel_id": "C1", "is_ephemeral": false },
        "trigger_id": format!("1337.42.{action_ts}"),
        "team": { "id": "T1", "domain": "team" },
        "channel": { "id": "C1", "name": "general" },
        "message": { "type": "message", "ts": "1764000000.000900", "text": "Approve or deny?" },
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
        "actions": [{
            "action_id": "opticlaw_approve",
            "block_id": "opticlaw_approval",
            "text": { "type": "plain_text", "text": "Approve" },
            "value": value,
            "style": "primary",
            "type": "button",
            "action_ts": action_ts
        }]
    });
    let encoded: String = percent_encoding::utf8_percent_encode(
        &payload.to_string(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .collect();
    format!("payload={encoded}").into_bytes()
}

#[test]
fn slack_buttons_approve_once_and_only_for_the_requester() {
    let (api, calls, _server) = fake_platform();
    let (home, _keep, note) = home_with(&format!(
        "[gateway.slack]\nsigning_secret = \"{SLACK_SECRET}\"\nbot_token = \"xoxb-test\"\nallow_from = [\"U1\", \"U2\"]\napi_base = \"{api}\"\n"
    ));
    let daemon = home.serve();
    let typed = json!({
        "token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "Ev1", "event_time": 1_764_000_000,
        "event": { "type": "message", "channel": "C1", "user": "U1", "text": format!("/read {note}"),
                   "ts": "1764000000.000100", "channel_type": "channel" }
    });
    let status = slack_post(
        &daemon,
        "",
        SLACK_SECRET,
        "application/json",
        typed.to_string().into_bytes(),
    );
    assert_eq!(status, 200);
    let buttons = wait_call(&calls, "buttons", |c| c.body.get("blocks").is_some());
    assert_eq!(buttons.path, "chat.postMessage");
    assert_eq!(buttons.auth.as_deref(), Some("Bearer xoxb-test"));
    let actions = &buttons.body["blocks"][1];
    assert_eq!(actions["type"], "actions");
    let approve = actions["elements"][0]["value"].as_str().unwrap().to_owned();
    assert_eq!(actions["elements"][0]["text"]["text"], "Approve");
    assert_eq!(actions["elements"][1]["text"]["text"], "Deny");

    // Another user: an ephemeral refusal to them only.
    let route = "/interactive";
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        slack_post(
            &daemon,
            route,
            SLACK_SECRET,
            form,
            slack_press("U2", &approve, "1764000001.000001")
        ),
        200
    );
    let refused = wait_call(&calls, "ephemeral", |c| c.path == "chat.postEphemeral");
    assert_eq!(refused.body["user"], "U2");
    assert!(
        refused.body["text"]
            .as_str()
            .unwrap()
            .contains("another user or chat")
    );

    // Forged: signed with the wrong secret.
    let status = slack_post(
        &daemon,
        route,
        "wrong",
        form,
        slack_press("U1", &approve, "1764000002.000001"),
    );
    assert_eq!(status, 401);
    assert_forged_audited_and_nothing_read(&home, &calls);

    // The owner: the buttons' message becomes the outcome.
    let owner = slack_press("U1", &approve, "1764000003.000001");
    assert_eq!(
        slack_post(&daemon, route, SLACK_SECRET, form, owner.clone()),
        200
    );
    let updated = wait_call(&calls, "chat.update", |c| c.path == "chat.update");
    assert_eq!(updated.body["ts"], "1764000000.000900");
    assert_eq!(updated.body["channel"], "C1");
    assert!(updated.body["text"].as_str().unwrap().contains("Approved:"));
    assert!(
        !updated.body["blocks"].to_string().contains("actions"),
        "the buttons go: {updated:?}"
    );
    wait_call(&calls, "the result", |c| {
        c.body.to_string().contains("thenotecontent42")
    });

    // The same press resent (a retry, re-signed): stored once.
    assert_eq!(slack_post(&daemon, route, SLACK_SECRET, form, owner), 200);
    settle();
    assert_eq!(count_calls(&calls, |c| c.path == "chat.update"), 1);
    assert_eq!(approvals(&home), 1);
    assert_eq!(refusals_by(&home, "U2"), 1);
}

// ----------------------------------------------------------------- Discord

fn discord_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

fn discord_post(daemon: &Daemon, key: &ed25519_dalek::SigningKey, body: &Value) -> (u16, Value) {
    use ed25519_dalek::Signer;
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = key.sign(format!("{ts}{body}").as_bytes());
    let (status, text) = post(
        &format!("{}/hooks/discord/default", daemon.base),
        &[
            ("X-Signature-Ed25519", hex::encode(signature.to_bytes())),
            ("X-Signature-Timestamp", ts),
        ],
        "application/json",
        body.into_bytes(),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn discord_press(id: &str, token: &str, user: &str, custom_id: &str) -> Value {
    json!({
        "id": id, "application_id": "4242", "type": 3, "token": token, "version": 1,
        "guild_id": "9000", "channel_id": "5555",
        "member": { "user": { "id": user, "username": "u" }, "roles": [] },
        "message": { "id": "1300000000000000777", "channel_id": "5555", "content": "Approve or deny?" },
        "data": { "custom_id": custom_id, "component_type": 2 }
    })
}

#[test]
fn discord_buttons_approve_once_and_only_for_the_requester() {
    let (api, calls, _server) = fake_platform();
    let key = discord_key();
    let public = hex::encode(key.verifying_key().to_bytes());
    let (home, _keep, note) = home_with(&format!(
        "[gateway.discord]\napplication_id = \"4242\"\npublic_key = \"{public}\"\nbot_token = \"bot-tok\"\nallow_from = [\"111\", \"222\"]\napi_base = \"{api}\"\n"
    ));
    let daemon = home.serve();
    let typed = json!({
        "id": "1300000000000000001", "application_id": "4242", "type": 2, "token": "tok-cmd",
        "version": 1, "guild_id": "9000", "channel_id": "5555",
        "member": { "user": { "id": "111", "username": "owner" }, "roles": [] },
        "data": { "id": "1", "name": "ask", "type": 1,
                  "options": [{ "name": "text", "type": 3, "value": format!("/read {note}") }] }
    });
    assert_eq!(discord_post(&daemon, &key, &typed).0, 200);
    let buttons = wait_call(&calls, "buttons", |c| c.body.get("components").is_some());
    assert_eq!(buttons.path, "channels/5555/messages");
    assert_eq!(buttons.auth.as_deref(), Some("Bot bot-tok"));
    let row = &buttons.body["components"][0];
    assert_eq!(row["type"], 1);
    assert_eq!(row["components"][0]["type"], 2);
    assert_eq!(row["components"][0]["label"], "Approve");
    let approve = row["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(approve.len() <= 100, "custom_id is at most 100 characters");

    // Another member: acknowledged as a deferred update, refused ephemerally.
    let (status, ack) = discord_post(
        &daemon,
        &key,
        &discord_press("1300000000000000002", "tok-other", "222", &approve),
    );
    assert_eq!((status, ack["type"].clone()), (200, json!(6)));
    let refused = wait_call(&calls, "ephemeral", |c| c.path == "webhooks/4242/tok-other");
    assert_eq!(refused.method, "POST");
    assert_eq!(refused.body["flags"], 64);
    assert!(
        refused.body["content"]
            .as_str()
            .unwrap()
            .contains("another user or chat")
    );

    // Forged: signed by another key.
    let forger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let (status, _) = discord_post(
        &daemon,
        &forger,
        &discord_press("1300000000000000003", "tok-f", "111", &approve),
    );
    assert_eq!(status, 401);
    assert_forged_audited_and_nothing_read(&home, &calls);

    // The owner: the original message is edited, its components removed.
    let owner = discord_press("1300000000000000004", "tok-owner", "111", &approve);
    assert_eq!(discord_post(&daemon, &key, &owner).1["type"], 6);
    let edited = wait_call(&calls, "edit", |c| c.method == "PATCH");
    assert_eq!(edited.path, "webhooks/4242/tok-owner/messages/@original");
    assert_eq!(edited.body["components"], json!([]));
    assert!(
        edited.body["content"]
            .as_str()
            .unwrap()
            .contains("Approved:")
    );
    wait_call(&calls, "the result", |c| {
        c.body.to_string().contains("thenotecontent42")
    });

    // Discord redelivers the same interaction: stored once.
    assert_eq!(discord_post(&daemon, &key, &owner).0, 200);
    settle();
    assert_eq!(count_calls(&calls, |c| c.method == "PATCH"), 1);
    assert_eq!(approvals(&home), 1);
    assert_eq!(refusals_by(&home, "222"), 1);
}

// ---------------------------------------------------------------- WhatsApp

const WA_SECRET: &str = "wa-app-secret";

fn whatsapp_post(daemon: &Daemon, secret: &str, message: Value) -> u16 {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "WABA1", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "PN1" },
            "contacts": [{ "profile": { "name": "Sam" }, "wa_id": message["from"] }],
            "messages": [message]
        }}]}]
    })
    .to_string()
    .into_bytes();
    let signature = opticlaw_gateway::platforms::whatsapp::sign(secret, &body);
    post(
        &format!("{}/hooks/whatsapp/default", daemon.base),
        &[("X-Hub-Signature-256", signature)],
        "application/json",
        body,
    )
    .0
}

fn whatsapp_press(id: &str, from: &str, button: &str) -> Value {
    json!({
        "context": { "from": "15550000000", "id": "wamid.out" },
        "from": from, "id": id, "timestamp": "1764000000", "type": "interactive",
        "interactive": { "type": "button_reply", "button_reply": { "id": button, "title": "Approve" } }
    })
}

#[test]
fn whatsapp_buttons_approve_once_and_only_for_the_requester() {
    let (api, calls, _server) = fake_platform();
    let (home, _keep, note) = home_with(&format!(
        "[gateway.whatsapp]\napp_secret = \"{WA_SECRET}\"\nverify_token = \"v\"\naccess_token = \"EAAtest\"\nphone_number_id = \"PN1\"\nallow_from = [\"15551230001\", \"15551230002\"]\napi_base = \"{api}\"\n"
    ));
    let daemon = home.serve();
    let typed = json!({
        "from": "15551230001", "id": "wamid.typed", "timestamp": "1764000000", "type": "text",
        "text": { "body": format!("/read {note}") }
    });
    assert_eq!(whatsapp_post(&daemon, WA_SECRET, typed), 200);
    let buttons = wait_call(&calls, "buttons", |c| c.body["type"] == "interactive");
    assert_eq!(buttons.path, "PN1/messages");
    assert_eq!(buttons.auth.as_deref(), Some("Bearer EAAtest"));
    let interactive = &buttons.body["interactive"];
    assert_eq!(interactive["type"], "button");
    let first = &interactive["action"]["buttons"][0];
    assert_eq!(first["type"], "reply");
    assert!(first["reply"]["title"].as_str().unwrap().chars().count() <= 20);
    assert!(
        interactive["body"]["text"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 1024
    );
    let approve = first["reply"]["id"].as_str().unwrap().to_owned();

    // Another number presses a forwarded button: refused to that number.
    assert_eq!(
        whatsapp_post(
            &daemon,
            WA_SECRET,
            whatsapp_press("wamid.other", "15551230002", &approve)
        ),
        200
    );
    wait_call(&calls, "refusal", |c| {
        c.body["to"] == "15551230002" && c.body.to_string().contains("another user or chat")
    });
    // Forged signature.
    assert_eq!(
        whatsapp_post(
            &daemon,
            "wrong",
            whatsapp_press("wamid.forged", "15551230001", &approve)
        ),
        401
    );
    assert_forged_audited_and_nothing_read(&home, &calls);

    let owner = whatsapp_press("wamid.owner", "15551230001", &approve);
    assert_eq!(whatsapp_post(&daemon, WA_SECRET, owner.clone()), 200);
    wait_call(&calls, "approved", |c| {
        c.body.to_string().contains("Approved:")
    });
    wait_call(&calls, "the result", |c| {
        c.body.to_string().contains("thenotecontent42")
    });
    // Meta redelivers the same message: stored once.
    assert_eq!(whatsapp_post(&daemon, WA_SECRET, owner), 200);
    settle();
    assert_eq!(
        count_calls(&calls, |c| c.body.to_string().contains("Approved:")),
        1
    );
    assert_eq!(approvals(&home), 1);
    assert_eq!(refusals_by(&home, "15551230002"), 1);
}
