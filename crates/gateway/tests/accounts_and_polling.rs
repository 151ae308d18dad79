//! Several accounts per platform (one route each, `/hooks/{platform}/{account}`),
//! and the long-poll receivers for accounts with no public URL, against the
//! fake platform server on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_platform::FakePlatform;
use common::*;
use opticlaw_core::{ResponseKind, ResponsePacket};
use opticlaw_gateway::poll::{cursor_name, run_telegram};
use opticlaw_gateway::{
    Channel, Gateway, GatewayConfig, MemoryAuditLog, MemoryCursors, MemoryLedger,
    MemoryPairingStore, MemorySink, Platform, Secret, SendError, Sender, TelegramConfig,
};
use serde_json::Value;

/// The default config plus a second Telegram bot, account `work`.
fn two_telegram_bots(api: &str) -> GatewayConfig {
    let mut config = config(api);
    let mut work: TelegramConfig = config.telegram[0].clone();
    work.account = "work".into();
    work.bot_token = Secret::new(TELEGRAM_WORK_TOKEN);
    work.webhook_secret = Some(Secret::new(TELEGRAM_WORK_SECRET));
    config.telegram.push(work);
    config
}

#[tokio::test]
async fn each_account_has_its_own_route_secret_and_event_source() {
    let h = Harness::start(two_telegram_bots("http://127.0.0.1:9")).await;
    let body = fixture("telegram_message.json");

    let work = h
        .post_telegram_at("/hooks/telegram/work", &body, TELEGRAM_WORK_SECRET)
        .await;
    assert_eq!(work.status(), 200);
    // The default bot's secret does not open the work bot's route.
    let crossed = h
        .post_telegram_at("/hooks/telegram/work", &body, TELEGRAM_SECRET)
        .await;
    assert_eq!(crossed.status(), 403);
    let default = h
        .post_telegram_at("/hooks/telegram/default", &body, TELEGRAM_SECRET)
        .await;
    assert_eq!(default.status(), 200);
    let unknown = h
        .post_telegram_at("/hooks/telegram/nosuch", &body, TELEGRAM_SECRET)
        .await;
    assert_eq!(unknown.status(), 404);

    // The same update_id from two bots is two events: dedupe is per account.
    let sources: Vec<String> = h.sink.events().iter().map(|e| e.source.clone()).collect();
    assert_eq!(sources, ["telegram:work", "telegram"]);
}

#[tokio::test]
async fn default_account_is_still_served_at_the_old_route() {
    let h = Harness::start_default().await;
    let response = h
        .post_telegram_at(
            "/webhooks/telegram",
            &fixture("telegram_message.json"),
            TELEGRAM_SECRET,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.sink.events()[0].source, "telegram");
}

type TestGateway = Gateway<MemorySink, MemoryAuditLog, MemoryPairingStore>;

/// Two Telegram bots against the fake platform: a gateway and a sender.
async fn two_bots_world() -> (FakePlatform, TestGateway, Sender<MemoryLedger>) {
    let fake = FakePlatform::start().await;
    let config = two_telegram_bots(&fake.base);
    let (gateway, sender) = common::memory_world(config);
    (fake, gateway, sender)
}

/// A reply to Telegram chat 1111111 from the account with event source `source`.
fn reply(source: &str, seq: i64, text: &str) -> ResponsePacket {
    ResponsePacket {
        seq,
        in_reply_to: None,
        source: source.into(),
        user_id: "1111111".into(),
        thread_id: "1111111".into(),
        kind: ResponseKind::Reply,
        text: text.into(),
        attachments: Vec::new(),
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_reply_goes_out_through_the_account_it_came_in_on() {
    let (fake, gateway, sender) = two_bots_world().await;
    let packet = reply("telegram:work", 7, "from the work bot");
    let channel = Channel::from_source(&packet.source).unwrap();
    assert_eq!(channel, Channel::new(Platform::Telegram, "work"));
    let parts = gateway.render(&channel, &packet, None).unwrap().unwrap();
    sender.deliver(&parts).await.unwrap();
    let calls = fake.delivered("telegram");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].path.contains(TELEGRAM_WORK_TOKEN),
        "sent with the work bot's token: {}",
        calls[0].path
    );

    // An account that is not configured is named in the error.
    let mut stray = parts[0].clone();
    stray.account = "gone".into();
    stray.idempotency_key = "oc1-stray".into();
    match sender.deliver(&[stray]).await.unwrap_err() {
        SendError::NotConfigured { detail, .. } => assert!(detail.contains("gone"), "{detail}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn account_names_must_be_route_safe_and_unique() {
    let mut config = two_telegram_bots("http://127.0.0.1:9");
    config.telegram[1].account = "Work Bot".into();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("Work Bot") && err.contains("a-z"), "{err}");
    config.telegram[1].account = "default".into();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("configured twice"), "{err}");
}

#[test]
fn a_platform_section_is_one_table_or_an_array_of_accounts() {
    let one: GatewayConfig = serde_json::from_value(serde_json::json!({
        "telegram": {"bot_token": "1:A", "webhook_secret": "s"}
    }))
    .unwrap();
    assert_eq!(one.telegram.len(), 1);
    assert_eq!(one.telegram[0].account, "default");
    let many: GatewayConfig = serde_json::from_value(serde_json::json!({
        "telegram": [
            {"account": "home", "bot_token": "1:A"},
            {"account": "work", "bot_token": "2:B", "long_poll": true}
        ]
    }))
    .unwrap();
    let accounts: Vec<&str> = many.telegram.iter().map(|t| t.account.as_str()).collect();
    assert_eq!(accounts, ["home", "work"]);
    assert!(many.telegram[1].long_poll);
    // A typo inside one account is still named.
    let err = serde_json::from_value::<GatewayConfig>(serde_json::json!({
        "telegram": [{"account": "home", "bot_tokn": "1:A"}]
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("bot_tokn"), "{err}");
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn telegram_long_poll_stores_updates_and_resumes_from_the_saved_offset() {
    let fake = FakePlatform::start().await;
    let mut config = config(&fake.base);
    config.telegram[0].long_poll = true;
    config.telegram[0].webhook_secret = None;
    config.telegram[0].poll_timeout_secs = 20;
    let sink = Arc::new(MemorySink::new());
    let gateway = Arc::new(
        Gateway::new(
            config,
            sink.clone(),
            Arc::new(MemoryAuditLog::new()),
            Arc::new(MemoryPairingStore::new()),
        )
        .unwrap(),
    );
    let cursors = Arc::new(MemoryCursors::new());
    let channel = Channel::default_for(Platform::Telegram);
    let account = gateway.config().telegram[0].clone();
    let run = || {
        tokio::spawn(run_telegram(
            gateway.clone(),
            cursors.clone(),
            account.clone(),
            reqwest::Client::new(),
        ))
    };

    let first = run();
    // The poller is parked in a held getUpdates before anything arrives.
    wait_for("the first getUpdates", || fake.polls().len() == 1).await;
    let update: Value = serde_json::from_slice(&fixture("telegram_message.json")).unwrap();
    fake.push_update(update.clone());
    wait_for("the update to be stored", || sink.events().len() == 1).await;
    let name = cursor_name(&channel);
    wait_for("the offset to be saved", || {
        cursors.get(&name).as_deref() == Some("10001")
    })
    .await;
    assert_eq!(sink.events()[0].source, "telegram");
    assert_eq!(sink.events()[0].content.text, "/start");
    first.abort();

    // A restart resumes from the saved offset: Telegram (the fake keeps every
    // update it was given) is asked only for what came after.
    let before = fake.polls().len();
    let second = run();
    wait_for("the resumed getUpdates", || fake.polls().len() > before).await;
    let resumed = &fake.polls()[before];
    assert_eq!(resumed["offset"], 10001);
    assert_eq!(resumed["timeout"], 20);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.events().len(), 1, "nothing processed twice");
    second.abort();
}

#[tokio::test]
async fn probes_prove_each_accounts_credentials_at_its_platform() {
    use opticlaw_gateway::probe::{ProbeError, probe};
    let fake = FakePlatform::start().await;
    let good = config(&fake.base);
    let client = reqwest::Client::new();
    let expect = [
        (Platform::Telegram, "@opticlaw_bot (id 123456)"),
        (Platform::Slack, "opticlaw in team Team"),
        (Platform::Discord, "opticlaw"),
        (Platform::WhatsApp, "+1 555-0100 (OptiClaw)"),
        (Platform::Matrix, MATRIX_BOT),
    ];
    for (platform, identity) in expect {
        let found = probe(&client, &good, &Channel::default_for(platform)).await;
        assert_eq!(found.unwrap(), identity, "{platform}");
    }

    // Wrong credentials are refused by the fake as by the platform, and the
    // error never repeats the credential.
    let mut bad = good.clone();
    bad.telegram[0].bot_token = Secret::new("999:WRONG-token");
    bad.slack[0].bot_token = Secret::new("xoxb-wrong");
    bad.discord[0].bot_token = Some(Secret::new("wrong-bot-token"));
    bad.whatsapp[0].access_token = Secret::new("EAAG-wrong");
    bad.matrix[0].as_token = Secret::new("wrong-as-token");
    for platform in Platform::ALL {
        let err = probe(&client, &bad, &Channel::default_for(platform))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProbeError::Refused { .. }),
            "{platform}: {err}"
        );
        let text = err.to_string();
        assert!(!text.contains("wrong"), "credential leaked: {text}");
    }
    let err = probe(&client, &good, &Channel::new(Platform::Slack, "nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::NotConfigured(_)));
}

#[tokio::test]
async fn each_account_has_its_own_send_quota() {
    let fake = FakePlatform::start().await;
    let config = two_telegram_bots(&fake.base);
    let (gateway, sender) = common::memory_world(config);
    let sender = sender.with_max_inline_wait(Duration::ZERO);
    let reply = |source: &str, seq: i64| ResponsePacket {
        seq,
        in_reply_to: None,
        source: source.into(),
        user_id: "1111111".into(),
        thread_id: "1111111".into(),
        kind: ResponseKind::Reply,
        text: format!("reply {seq}"),
        attachments: Vec::new(),
        created_at: chrono::Utc::now(),
    };
    let send = |source: &'static str, seq: i64| {
        let packet = reply(source, seq);
        let channel = Channel::from_source(source).unwrap();
        let parts = gateway.render(&channel, &packet, None).unwrap().unwrap();
        let sender = &sender;
        async move { sender.deliver(&parts).await }
    };
    // Telegram allows a burst of a few messages per chat, then about one a second.
    let mut limited = false;
    for seq in 0..10 {
        if let Err(SendError::RateLimited { .. }) = send("telegram", seq).await {
            limited = true;
            break;
        }
    }
    assert!(limited, "the default bot reached its per-chat quota");
    // The work bot's quota for the same chat is untouched.
    send("telegram:work", 100).await.unwrap();
}
