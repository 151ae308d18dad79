//! Outbound: formatting, splitting and delivery to a fake of each platform's
//! API on loopback that checks every call as the platform would.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::fake_platform::FakePlatform;
use common::*;
use opticlaw_core::{ResponseKind, ResponsePacket};
use opticlaw_gateway::format::{escape_markdown_v2, telegram_markdown_v2};
use opticlaw_gateway::platforms::telegram::TelegramPoller;
use opticlaw_gateway::{
    Channel, Gateway, GatewayConfig, MemoryAuditLog, MemoryLedger, MemoryPairingStore, MemorySink,
    OutboundMessage, PartOutcome, Platform, ReplyOrigin, SendError, SendLedger, Sender,
};
use serde_json::{Value, json};

type TestGateway = Gateway<MemorySink, MemoryAuditLog, MemoryPairingStore>;

fn gateway(config: GatewayConfig) -> TestGateway {
    Gateway::new(
        config,
        Arc::new(MemorySink::new()),
        Arc::new(MemoryAuditLog::new()),
        Arc::new(MemoryPairingStore::new()),
    )
    .unwrap()
}

fn packet(platform: Platform, thread_id: &str, seq: i64, text: &str) -> ResponsePacket {
    ResponsePacket {
        seq,
        in_reply_to: None,
        source: platform.as_str().into(),
        user_id: "u".into(),
        thread_id: thread_id.into(),
        kind: ResponseKind::Reply,
        text: text.into(),
        attachments: Vec::new(),
        created_at: Utc::now(),
    }
}

fn render(
    g: &TestGateway,
    p: &ResponsePacket,
    origin: Option<&ReplyOrigin>,
) -> Vec<OutboundMessage> {
    g.render(&Channel::from_source(&p.source).unwrap(), p, origin)
        .unwrap()
        .unwrap()
}

/// A fake platform server, a gateway and a sender aimed at it.
async fn fake_world() -> (FakePlatform, TestGateway, Sender<MemoryLedger>) {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let sender = Sender::new(
        reqwest::Client::new(),
        config,
        Arc::new(MemoryLedger::new()),
    );
    (fake, g, sender)
}

fn thread_of(platform: Platform) -> &'static str {
    match platform {
        Platform::Slack => "C123ABC456",
        Platform::Telegram => "1111111",
        Platform::Discord => "645027906669510667",
        Platform::WhatsApp => "16505551234",
        Platform::Matrix => "!jEsUZKDJdhlrceRyVU:example.org",
    }
}

fn text_of(platform: Platform, body: &Value) -> String {
    let text = match platform {
        Platform::Slack | Platform::Telegram => &body["text"],
        Platform::Discord => &body["content"],
        Platform::WhatsApp => &body["text"]["body"],
        Platform::Matrix => &body["body"],
    };
    text.as_str().unwrap().to_owned()
}

/// A long reply: paragraphs of sentences, ~`n` characters.
fn long_reply(n: usize) -> String {
    let sentence = "The assistant writes a sentence with words. ";
    let mut text = String::new();
    let mut i = 0;
    while text.len() < n {
        text.push_str(sentence);
        i += 1;
        if i % 9 == 0 {
            text.push_str("\n\n");
        }
    }
    text
}

#[test]
fn markdownv2_escapes_reserved_characters() {
    let all = "_*[]()~`>#+-=|{}.!\\";
    assert_eq!(
        escape_markdown_v2(all),
        "\\_\\*\\[\\]\\(\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\"
    );
    assert_eq!(
        telegram_markdown_v2("Price: 5.00 (tax-free)! *Now* `a_b\\c` [docs](https://x.y/a_(b))"),
        "Price: 5\\.00 \\(tax\\-free\\)\\! *Now* `a_b\\\\c` [docs](https://x.y/a_(b\\))"
    );
}

#[test]
fn long_reply_is_split_at_telegram_limit_on_paragraph_boundary() {
    let g = gateway(config("http://127.0.0.1:9"));
    let text = long_reply(10_000);
    let parts = render(&g, &packet(Platform::Telegram, "1111111", 1, &text), None);
    assert!(parts.len() >= 3);
    for part in &parts {
        let rendered = part.body["text"].as_str().unwrap();
        assert!(rendered.encode_utf16().count() <= 4096);
        // every part but the last ends a paragraph: its escaped last sentence
        assert!(
            rendered.ends_with("words\\."),
            "{:?}",
            &rendered[rendered.len() - 20..]
        );
        assert_eq!(part.body["parse_mode"], "MarkdownV2");
    }
    assert_eq!(parts[0].parts, parts.len());
    let keys: std::collections::HashSet<_> = parts.iter().map(|p| &p.idempotency_key).collect();
    assert_eq!(
        keys.len(),
        parts.len(),
        "each part has its own idempotency key"
    );
}

#[test]
fn each_platform_splits_at_its_own_limit() {
    let g = gateway(config("http://127.0.0.1:9"));
    let text = long_reply(30_000);
    for (platform, limit) in [
        (Platform::Slack, 4000),
        (Platform::Telegram, 4096),
        (Platform::Discord, 2000),
        (Platform::WhatsApp, 4096),
    ] {
        let parts = render(&g, &packet(platform, thread_of(platform), 1, &text), None);
        assert!(parts.len() > 30_000 / limit, "{platform}");
        for part in &parts {
            assert!(
                text_of(platform, &part.body).encode_utf16().count() <= limit,
                "{platform}"
            );
        }
    }
    let parts = render(
        &g,
        &packet(
            Platform::Matrix,
            thread_of(Platform::Matrix),
            1,
            &long_reply(100_000),
        ),
        None,
    );
    assert!(parts.len() >= 4);
    for part in &parts {
        assert!(serde_json::to_vec(&part.body).unwrap().len() < 65_536);
        assert_eq!(part.body["format"], "org.matrix.custom.html");
    }
}

#[tokio::test]
async fn reply_reaches_every_fake_platform_formatted_for_it() {
    let (fake, g, sender) = fake_world().await;
    let text = "*Done*: 3 < 4 & `x_y` [link](https://example.org/a)";
    for platform in Platform::ALL {
        let parts = render(&g, &packet(platform, thread_of(platform), 10, text), None);
        let delivery = sender
            .deliver(&parts)
            .await
            .unwrap_or_else(|e| panic!("{platform}: {e}"));
        assert!(
            matches!(
                delivery.parts[0].1,
                PartOutcome::Sent { remote_id: Some(_) }
            ),
            "{platform}"
        );
        assert_eq!(fake.delivered(platform.as_str()).len(), 1, "{platform}");
    }
    let slack = &fake.delivered("slack")[0];
    assert_eq!(
        slack.body["text"],
        "*Done*: 3 &lt; 4 &amp; `x_y` <https://example.org/a|link>"
    );
    let telegram = &fake.delivered("telegram")[0];
    assert_eq!(
        telegram.body["text"],
        "*Done*: 3 < 4 & `x_y` [link](https://example.org/a)"
    );
    let discord = &fake.delivered("discord")[0];
    assert_eq!(
        discord.body["content"],
        "**Done**: 3 < 4 & `x_y` [link](<https://example.org/a>)"
    );
    assert_eq!(discord.body["allowed_mentions"], json!({"parse": []}));
    assert_eq!(
        discord.authorization.as_deref(),
        Some("Bot discord-bot-token")
    );
    let whatsapp = &fake.delivered("whatsapp")[0];
    assert_eq!(
        whatsapp.body["text"]["body"],
        "*Done*: 3 < 4 & `x_y` link (https://example.org/a)"
    );
    let matrix = &fake.delivered("matrix")[0];
    assert_eq!(matrix.method, "PUT");
    assert!(
        matrix
            .path
            .ends_with(&format!("/send/m.room.message/{}", matrix_key(10)))
    );
    assert_eq!(
        matrix.body["body"],
        "Done: 3 < 4 & x_y link (https://example.org/a)"
    );
    assert_eq!(
        matrix.body["formatted_body"],
        "<b>Done</b>: 3 &lt; 4 &amp; <code>x_y</code> <a href=\"https://example.org/a\">link</a>"
    );
}

fn matrix_key(seq: i64) -> String {
    opticlaw_gateway::idempotency_key("matrix", thread_of(Platform::Matrix), seq, 0)
}

#[tokio::test]
async fn long_replies_pass_the_fake_platforms_length_checks() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let sender = Sender::new(
        reqwest::Client::new(),
        config,
        Arc::new(MemoryLedger::new()),
    )
    .with_limiter(
        Platform::Telegram,
        opticlaw_gateway::ratelimit::RateLimiter::new(
            opticlaw_gateway::ratelimit::BucketSpec::new(100.0, 100.0),
            opticlaw_gateway::ratelimit::BucketSpec::new(100.0, 100.0),
        ),
    );
    let text = format!("{}\n\n{}", long_reply(9_000), "🙂 ".repeat(3000));
    let parts = render(&g, &packet(Platform::Telegram, "1111111", 2, &text), None);
    sender.deliver(&parts).await.unwrap();
    assert_eq!(fake.delivered("telegram").len(), parts.len());
    assert!(fake.calls("telegram").iter().all(|c| c.status == 200));
}

#[tokio::test]
async fn fake_platform_refuses_an_over_limit_message_as_the_platform_does() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let sender = Sender::new(
        reqwest::Client::new(),
        config,
        Arc::new(MemoryLedger::new()),
    );
    let message = OutboundMessage {
        platform: Platform::Discord,
        account: "default".into(),
        method: "POST".into(),
        path: "channels/645027906669510667/messages".into(),
        body: json!({"content": "x".repeat(2001)}),
        idempotency_key: "oc1-handmade".into(),
        rate_key: "645027906669510667".into(),
        part: 0,
        parts: 1,
        upload: None,
    };
    let err = sender.deliver(&[message]).await.unwrap_err();
    match err {
        SendError::Rejected { status, code, .. } => {
            assert_eq!(status, 400);
            assert_eq!(code, "50035");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn telegram_retry_after_is_honoured_once_then_sent() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let sender = Sender::new(
        reqwest::Client::new(),
        config,
        Arc::new(MemoryLedger::new()),
    )
    .with_max_inline_wait(Duration::from_secs(2));
    fake.throttle("telegram", &[1.0]);
    let parts = render(&g, &packet(Platform::Telegram, "1111111", 3, "hello"), None);
    let started = std::time::Instant::now();
    sender.deliver(&parts).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited retry_after"
    );
    let calls = fake.calls("telegram");
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200]
    );
}

/// While a reply waits out a 429, nothing of it is sent: its part is not
/// left begun, so a crash during the wait leaves it to be sent after the
/// restart rather than in doubt (and lost).
#[tokio::test]
async fn a_part_waiting_out_a_429_is_not_in_doubt() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let ledger = Arc::new(MemoryLedger::new());
    let sender = Sender::new(reqwest::Client::new(), config, ledger.clone())
        .with_max_inline_wait(Duration::from_secs(2));
    fake.throttle("telegram", &[1.0]);
    let parts = render(&g, &packet(Platform::Telegram, "1111111", 5, "hello"), None);
    let key = parts[0].idempotency_key.clone();
    let sending = tokio::spawn(async move { sender.deliver(&parts).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fake.calls("telegram").is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.calls("telegram").len(), 1, "the first call never came");
    assert!(!ledger.is_pending(&key), "begun while waiting out the 429");
    sending.await.unwrap().unwrap();
    let calls = fake.calls("telegram");
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert!(matches!(
        opticlaw_gateway::SendLedger::begin(ledger.as_ref(), &key).await,
        opticlaw_gateway::LedgerState::Sent(Some(_))
    ));
}

#[tokio::test]
async fn long_retry_after_is_returned_as_a_one_shot_delay() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let ledger = Arc::new(MemoryLedger::new());
    let sender = Sender::new(reqwest::Client::new(), config, ledger.clone());
    for (platform, delay) in [
        (Platform::Slack, 30.0),
        (Platform::Discord, 42.5),
        (Platform::Matrix, 20.0),
        (Platform::Telegram, 33.0),
    ] {
        fake.throttle(
            match platform {
                Platform::Slack => "slack",
                Platform::Discord => "discord",
                Platform::Matrix => "matrix",
                _ => "telegram",
            },
            &[delay],
        );
        let parts = render(&g, &packet(platform, thread_of(platform), 4, "hello"), None);
        match sender.deliver(&parts).await.unwrap_err() {
            SendError::RateLimited {
                retry_after, part, ..
            } => {
                assert_eq!(part, 0);
                assert_eq!(retry_after, Duration::from_secs_f64(delay), "{platform}");
            }
            other => panic!("{platform}: unexpected {other:?}"),
        }
        // the key was released: after the delay the same reply is sendable
        assert_eq!(
            opticlaw_gateway::SendLedger::begin(ledger.as_ref(), &parts[0].idempotency_key).await,
            opticlaw_gateway::LedgerState::Fresh
        );
    }
}

#[tokio::test]
async fn delivered_reply_is_never_sent_twice() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let ledger = Arc::new(MemoryLedger::new());
    let sender = Sender::new(reqwest::Client::new(), config, ledger.clone());
    let parts = render(&g, &packet(Platform::Slack, "C123ABC456", 5, "once"), None);
    sender.deliver(&parts).await.unwrap();
    let again = sender.deliver(&parts).await.unwrap();
    assert!(matches!(again.parts[0].1, PartOutcome::AlreadySent { .. }));
    assert_eq!(fake.delivered("slack").len(), 1);
}

#[tokio::test]
async fn crash_mid_send_is_not_resent_where_the_platform_cannot_deduplicate() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let ledger = Arc::new(MemoryLedger::new());
    let sender = Sender::new(reqwest::Client::new(), config, ledger.clone());
    let parts = render(
        &g,
        &packet(Platform::Telegram, "1111111", 6, "maybe sent"),
        None,
    );
    ledger.mark_pending(&parts[0].idempotency_key); // the process died after `begin`
    let delivery = sender.deliver(&parts).await.unwrap();
    assert_eq!(delivery.parts[0].1, PartOutcome::SkippedInDoubt);
    assert!(fake.calls("telegram").is_empty());
}

#[tokio::test]
async fn crash_mid_send_to_matrix_is_resent_with_the_same_txn_id() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let ledger = Arc::new(MemoryLedger::new());
    let sender = Sender::new(reqwest::Client::new(), config.clone(), ledger.clone());
    let parts = render(
        &g,
        &packet(Platform::Matrix, thread_of(Platform::Matrix), 7, "hi"),
        None,
    );
    // first attempt reached the homeserver, then the process died
    let first = Sender::new(
        reqwest::Client::new(),
        config,
        Arc::new(MemoryLedger::new()),
    );
    first.deliver(&parts).await.unwrap();
    ledger.mark_pending(&parts[0].idempotency_key);
    let delivery = sender.deliver(&parts).await.unwrap();
    assert!(matches!(delivery.parts[0].1, PartOutcome::Sent { .. }));
    let calls = fake.delivered("matrix");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].path, calls[1].path,
        "same txnId, so the homeserver dedupes"
    );
}

#[tokio::test]
async fn replies_thread_under_the_original_message() {
    let g = gateway(config("http://127.0.0.1:9"));
    let mut origin = ReplyOrigin::new();
    origin.insert("slack.thread_ts".into(), json!("1515449522.000016"));
    let parts = render(
        &g,
        &packet(Platform::Slack, "C123ABC456", 8, "hi"),
        Some(&origin),
    );
    assert_eq!(parts[0].body["thread_ts"], "1515449522.000016");

    let mut origin = ReplyOrigin::new();
    origin.insert("discord.interaction_token".into(), json!("A_UNIQUE_TOKEN"));
    let parts = render(
        &g,
        &packet(Platform::Discord, "645027906669510667", 8, "hi"),
        Some(&origin),
    );
    assert_eq!(
        parts[0].path,
        format!("webhooks/{DISCORD_APP_ID}/A_UNIQUE_TOKEN?wait=true")
    );

    let mut origin = ReplyOrigin::new();
    origin.insert("telegram.message_id".into(), json!(1365));
    let parts = render(
        &g,
        &packet(Platform::Telegram, "1111111", 8, "hi"),
        Some(&origin),
    );
    assert_eq!(parts[0].body["reply_parameters"]["message_id"], 1365);
}

#[tokio::test]
async fn discord_interaction_followup_needs_no_bot_token() {
    let fake = FakePlatform::start().await;
    let mut config = config(&fake.base);
    config.discord[0].bot_token = None;
    let g = gateway(config.clone());
    let sender = Sender::new(
        reqwest::Client::new(),
        config,
        Arc::new(MemoryLedger::new()),
    );
    let mut origin = ReplyOrigin::new();
    origin.insert("discord.interaction_token".into(), json!("A_UNIQUE_TOKEN"));
    let parts = render(
        &g,
        &packet(Platform::Discord, "645027906669510667", 9, "hi"),
        Some(&origin),
    );
    sender.deliver(&parts).await.unwrap();
    let call = &fake.delivered("discord")[0];
    assert_eq!(
        call.path,
        format!("/discord/api/v10/webhooks/{DISCORD_APP_ID}/A_UNIQUE_TOKEN")
    );
    assert_eq!(call.authorization, None);
}

#[tokio::test]
async fn telegram_long_poll_blocks_at_the_server_until_an_update_arrives() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let mut poller = TelegramPoller::new(reqwest::Client::new(), &config.telegram[0], 0, 30);
    let update: Value = serde_json::from_slice(&fixture("telegram_message.json")).unwrap();
    let push = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.push_update(update);
    };
    let (batch, ()) = tokio::join!(poller.next_batch(), push);
    let events = batch.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, "10000");
    assert_eq!(poller.offset(), 10001);
    let calls = fake.calls("telegram");
    assert_eq!(calls.len(), 1, "one held request, no polling loop");
    assert_eq!(calls[0].body["timeout"], 30);
    assert_eq!(calls[0].body["offset"], 0);
}

#[tokio::test]
async fn telegram_long_poll_turns_a_button_press_into_the_typed_command() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let mut poller = TelegramPoller::new(reqwest::Client::new(), &config.telegram[0], 0, 30);
    let id = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    fake.push_update(json!({
        "update_id": 20001,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 1111111, "is_bot": false, "first_name": "Sam"},
            "message": {
                "message_id": 55,
                "from": {"id": 42, "is_bot": true, "first_name": "Bot"},
                "chat": {"id": 1111111, "type": "private"},
                "date": 1_764_000_000,
                "text": "Approve or deny request?"
            },
            "chat_instance": "-8401",
            "data": format!("oc:d:{id}")
        }
    }));
    let events = poller.next_batch().await.unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.content.text, format!("/deny {id}"));
    assert_eq!(event.user_id, "1111111");
    assert_eq!(event.thread_id, "1111111");
    assert_eq!(event.event_id, "20001");
    assert_eq!(
        event.metadata["telegram.callback_query_id"],
        "4382bfdwdsb323b2d9"
    );
    // getUpdates asked for button presses as well as messages.
    let calls = fake.calls("telegram");
    assert_eq!(
        calls[0].body["allowed_updates"],
        json!(["message", "callback_query"])
    );
}

#[tokio::test]
async fn attachments_go_out_natively_where_the_platform_fetches_them() {
    use opticlaw_core::Attachment;
    let (fake, g, sender) = fake_world().await;
    let attachment = |kind: &str, name: &str, reference: &str| Attachment {
        kind: kind.into(),
        name: Some(name.into()),
        mime_type: Some("image/png".into()),
        reference: reference.into(),
        size_bytes: Some(2048),
    };
    let cases = [
        (
            Platform::Telegram,
            "https://example.org/chart.png",
            "sendPhoto",
        ),
        (Platform::WhatsApp, "https://example.org/chart.png", "image"),
        (Platform::Matrix, "mxc://example.org/AbCdEf", "m.image"),
    ];
    for (seq, (platform, reference, native)) in cases.into_iter().enumerate() {
        let mut p = packet(
            platform,
            thread_of(platform),
            900 + seq as i64,
            "Here is the chart.",
        );
        p.attachments = vec![
            attachment("image", "chart.png", reference),
            // A file id of another platform: neither fetched nor uploaded.
            attachment("document", "notes.txt", "BQACAgIAAxkBAAIBnotes"),
        ];
        let parts = render(&g, &p, None);
        assert_eq!(parts.len(), 2, "{platform}: text, then the image");
        sender.deliver(&parts).await.unwrap();
        let calls = fake.delivered(platform.as_str());
        let (text_call, file_call) = (&calls[calls.len() - 2], &calls[calls.len() - 1]);
        // What cannot go out natively is named in the text.
        assert!(
            text_of(platform, &text_call.body).contains("notes"),
            "{platform}: {:?}",
            text_call.body
        );
        match platform {
            Platform::Telegram => {
                assert!(file_call.path.ends_with(native), "{}", file_call.path);
                assert_eq!(file_call.body["photo"], reference);
                assert_eq!(file_call.body["caption"], "chart.png");
            }
            Platform::WhatsApp => {
                assert_eq!(file_call.body["type"], native);
                assert_eq!(file_call.body["image"]["link"], reference);
            }
            _ => {
                assert_eq!(file_call.body["msgtype"], native);
                assert_eq!(file_call.body["url"], reference);
                assert_eq!(file_call.body["info"]["size"], 2048);
            }
        }
    }
}

#[tokio::test]
async fn fake_platforms_refuse_a_local_path_as_a_file() {
    let fake = FakePlatform::start().await;
    let sender = Sender::new(
        reqwest::Client::new(),
        config(&fake.base),
        Arc::new(MemoryLedger::new()),
    );
    let message = OutboundMessage {
        platform: Platform::Telegram,
        account: "default".into(),
        method: "POST".into(),
        path: "sendDocument".into(),
        body: json!({"chat_id": 1, "document": "/etc/passwd"}),
        idempotency_key: "oc1-local-path".into(),
        rate_key: "1".into(),
        part: 0,
        parts: 1,
        upload: None,
    };
    match sender.deliver(&[message]).await.unwrap_err() {
        SendError::Rejected { status, detail, .. } => {
            assert_eq!(status, 400);
            assert!(detail.contains("wrong remote file identifier"), "{detail}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn deferred_completion_leaves_the_mark_to_the_caller_and_never_sends_twice() {
    let fake = FakePlatform::start().await;
    let config = config(&fake.base);
    let g = gateway(config.clone());
    let ledger = Arc::new(MemoryLedger::new());
    let sender =
        Sender::new(reqwest::Client::new(), config, ledger.clone()).with_deferred_completion();
    let parts = render(&g, &packet(Platform::Telegram, "1111111", 61, "once"), None);
    let delivery = sender.deliver(&parts).await.unwrap();
    assert!(matches!(delivery.parts[0].1, PartOutcome::Sent { .. }));
    // The caller crashed before recording it: the part is in doubt, so a
    // redelivery skips it rather than sending it again.
    let again = sender.deliver(&parts).await.unwrap();
    assert_eq!(again.parts[0].1, PartOutcome::SkippedInDoubt);
    assert_eq!(fake.delivered("telegram").len(), 1);
    // Once the caller records it, a redelivery knows it was sent.
    ledger
        .complete(&parts[0].idempotency_key, Some("1".into()))
        .await;
    let recorded = sender.deliver(&parts).await.unwrap();
    assert!(matches!(
        recorded.parts[0].1,
        PartOutcome::AlreadySent { .. }
    ));
    assert_eq!(fake.delivered("telegram").len(), 1);
}

#[tokio::test]
async fn a_platform_outage_is_waited_out_once_then_the_reply_is_sent() {
    let (fake, g, sender) = fake_world().await;
    for platform in Platform::ALL {
        fake.outage(platform.as_str(), 1);
        let started = std::time::Instant::now();
        let parts = render(
            &g,
            &packet(platform, thread_of(platform), 70, "after the outage"),
            None,
        );
        let delivery = sender.deliver(&parts).await.unwrap();
        assert!(
            matches!(delivery.parts[0].1, PartOutcome::Sent { .. }),
            "{platform}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{platform}: waited"
        );
        let calls = fake.calls(platform.as_str());
        let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [503, 200],
            "{platform}: one refused call, one delivery"
        );
    }
}
