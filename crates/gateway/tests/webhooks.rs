//! Inbound webhooks, served by a real axum server on loopback and driven by
//! a reqwest client that signs each request exactly as the platform does.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use opticlaw_gateway::{AuditKind, PairingStore, Platform};
use serde_json::{Value, json};

fn refusals(h: &Harness) -> Vec<AuditKind> {
    h.audit
        .records()
        .into_iter()
        .map(|r| r.kind)
        .filter(|k| k.is_refusal())
        .collect()
}

// ---- Slack ----

#[tokio::test]
async fn slack_url_verification_challenge_is_echoed() {
    let h = Harness::start_default().await;
    let response = h
        .post_slack(&fixture("slack_url_verification.json"), now(), &[])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert!(h.sink.events().is_empty());
}

#[tokio::test]
async fn signed_slack_message_is_stored_before_the_200() {
    let h = Harness::start_default().await;
    let response = h
        .post_slack(&fixture("slack_message.json"), now(), &[])
        .await;
    assert_eq!(response.status(), 200);
    let events = h.sink.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.source, "slack");
    assert_eq!(event.event_id, "D024BE91L:1355517523.000005");
    assert_eq!(event.user_id, "U2147483697");
    assert_eq!(event.thread_id, "D024BE91L");
    assert_eq!(event.content.text, "Hello hello can you hear me?");
    assert!(event.security.signature_valid);
    assert_eq!(event.security.verified_by.as_deref(), Some("slack-hmac-v0"));
    assert_eq!(event.metadata["slack.event_id"], "Ev123ABC456");
}

#[tokio::test]
async fn forged_slack_signature_is_refused_and_audited() {
    let h = Harness::start_default().await;
    let body = fixture("slack_message.json");
    let ts = now().to_string();
    let forged = opticlaw_gateway::platforms::slack::sign("not-the-secret", &ts, &body);
    let response = h
        .client
        .post(h.url("/hooks/slack/default"))
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", forged)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "invalid_signature");
    assert!(h.sink.events().is_empty());
    let records = h.audit.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, AuditKind::ForgedRequest);
    assert_eq!(records[0].platform, Platform::Slack);
    assert_eq!(records[0].body_len, body.len());
    assert!(
        records[0]
            .remote_addr
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    // a body altered after signing is just as forged
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let signature = opticlaw_gateway::platforms::slack::sign(SLACK_SECRET, &ts, &body);
    let response = h
        .client
        .post(h.url("/hooks/slack/default"))
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // and so is a request with no signature at all
    let response = h
        .client
        .post(h.url("/hooks/slack/default"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        refusals(&h),
        [
            AuditKind::ForgedRequest,
            AuditKind::ForgedRequest,
            AuditKind::MissingCredential
        ]
    );
    assert!(h.sink.events().is_empty());
}

#[tokio::test]
async fn stale_slack_timestamp_is_refused() {
    let h = Harness::start_default().await;
    let six_minutes_ago = now() - 6 * 60;
    let response = h
        .post_slack(&fixture("slack_message.json"), six_minutes_ago, &[])
        .await;
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "stale_timestamp");
    assert!(h.sink.events().is_empty());
    assert_eq!(refusals(&h), [AuditKind::StaleRequest]);
    // four minutes is within Slack's window
    let response = h
        .post_slack(&fixture("slack_message.json"), now() - 4 * 60, &[])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn slack_retry_is_not_processed_twice() {
    let h = Harness::start_default().await;
    let body = fixture("slack_message.json");
    assert_eq!(h.post_slack(&body, now(), &[]).await.status(), 200);
    let retry = h
        .post_slack(
            &body,
            now(),
            &[
                ("x-slack-retry-num", "1"),
                ("x-slack-retry-reason", "http_timeout"),
            ],
        )
        .await;
    assert_eq!(
        retry.status(),
        200,
        "a retry is acknowledged so Slack stops retrying"
    );
    assert_eq!(h.sink.events().len(), 1);
    let kinds: Vec<_> = h.audit.records().into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [AuditKind::DuplicateDelivery]);
}

#[tokio::test]
async fn slack_message_and_app_mention_of_one_message_are_stored_once() {
    let h = Harness::start_default().await;
    assert_eq!(
        h.post_slack(&fixture("slack_app_mention.json"), now(), &[])
            .await
            .status(),
        200
    );
    assert_eq!(
        h.post_slack(&fixture("slack_message_same_mention.json"), now(), &[])
            .await
            .status(),
        200
    );
    assert_eq!(h.sink.events().len(), 1);
}

#[tokio::test]
async fn slack_bot_messages_are_ignored_so_the_assistant_never_answers_itself() {
    let h = Harness::start_default().await;
    assert_eq!(
        h.post_slack(&fixture("slack_bot_message.json"), now(), &[])
            .await
            .status(),
        200
    );
    assert!(h.sink.events().is_empty());
}

// ---- Telegram ----

#[tokio::test]
async fn telegram_update_with_the_secret_token_is_stored() {
    let h = Harness::start_default().await;
    let response = h
        .post_telegram(&fixture("telegram_message.json"), TELEGRAM_SECRET)
        .await;
    assert_eq!(response.status(), 200);
    let events = h.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, "10000");
    assert_eq!(events[0].user_id, "1111111");
    assert_eq!(events[0].thread_id, "1111111");
    assert_eq!(events[0].content.text, "/start");
    assert_eq!(events[0].timestamp.timestamp(), 1441645532);
}

#[tokio::test]
async fn telegram_wrong_secret_token_is_refused() {
    let h = Harness::start_default().await;
    let response = h
        .post_telegram(&fixture("telegram_message.json"), "guess")
        .await;
    assert_eq!(response.status(), 403);
    let response = h
        .client
        .post(h.url("/hooks/telegram/default"))
        .body(fixture("telegram_message.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(h.sink.events().is_empty());
    assert_eq!(
        refusals(&h),
        [AuditKind::ForgedRequest, AuditKind::MissingCredential]
    );
}

#[tokio::test]
async fn telegram_redelivery_is_deduplicated_on_update_id() {
    let h = Harness::start_default().await;
    for _ in 0..3 {
        let response = h
            .post_telegram(&fixture("telegram_message.json"), TELEGRAM_SECRET)
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(h.sink.events().len(), 1);
}

#[tokio::test]
async fn telegram_photo_becomes_an_attachment_with_its_caption() {
    let h = Harness::start_default().await;
    let response = h
        .post_telegram(&fixture("telegram_photo.json"), TELEGRAM_SECRET)
        .await;
    assert_eq!(response.status(), 200);
    let event = &h.sink.events()[0];
    assert_eq!(event.content.text, "what is this?");
    assert_eq!(event.content.attachments[0].reference, "AgAD-large");
    assert_eq!(event.metadata["telegram.message_thread_id"], 7);
}

// ---- Discord ----

#[tokio::test]
async fn discord_ping_is_answered() {
    let h = Harness::start_default().await;
    let response = h
        .post_discord(&fixture("discord_ping.json"), &discord_key(), now())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"type": 1}));
    assert!(h.sink.events().is_empty());
}

#[tokio::test]
async fn forged_discord_signature_is_refused_and_audited() {
    let h = Harness::start_default().await;
    let impostor = SigningKey::from_bytes(&[9u8; 32]);
    let response = h
        .post_discord(&fixture("discord_ping.json"), &impostor, now())
        .await;
    assert_eq!(response.status(), 401);
    let response = h
        .post_discord(&fixture("discord_command.json"), &impostor, now())
        .await;
    assert_eq!(response.status(), 401);
    let stale = h
        .post_discord(
            &fixture("discord_command.json"),
            &discord_key(),
            now() - 3600,
        )
        .await;
    assert_eq!(stale.status(), 401);
    assert!(h.sink.events().is_empty());
    assert_eq!(
        refusals(&h),
        [
            AuditKind::ForgedRequest,
            AuditKind::ForgedRequest,
            AuditKind::StaleRequest
        ]
    );
}

#[tokio::test]
async fn discord_command_is_deferred_and_stored() {
    let h = Harness::start_default().await;
    let response = h
        .post_discord(&fixture("discord_command.json"), &discord_key(), now())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"type": 5}));
    let events = h.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].content.text, "what's on my calendar today?");
    assert_eq!(events[0].user_id, "53908232506183680");
    assert_eq!(events[0].thread_id, "645027906669510667");
    assert_eq!(
        events[0].metadata["discord.interaction_token"],
        "A_UNIQUE_TOKEN"
    );
}

// ---- WhatsApp ----

#[tokio::test]
async fn whatsapp_subscription_check_echoes_challenge() {
    let h = Harness::start_default().await;
    let response = h
        .client
        .get(h.url(&format!(
            "/hooks/whatsapp/default?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={WHATSAPP_VERIFY_TOKEN}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "1158201444");

    let wrong = h
        .client
        .get(h.url(
            "/hooks/whatsapp/default?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=nope",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(refusals(&h), [AuditKind::ForgedRequest]);
}

#[tokio::test]
async fn whatsapp_signed_message_is_stored_and_statuses_are_not() {
    let h = Harness::start_default().await;
    let response = h
        .post_whatsapp(&fixture("whatsapp_text_message.json"), WHATSAPP_APP_SECRET)
        .await;
    assert_eq!(response.status(), 200);
    let response = h
        .post_whatsapp(&fixture("whatsapp_status.json"), WHATSAPP_APP_SECRET)
        .await;
    assert_eq!(response.status(), 200);
    let events = h.sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].content.text, "Does it come in another color?");
    assert_eq!(events[0].thread_id, "16505551234");
    assert_eq!(events[0].metadata["whatsapp.profile_name"], "Sheena Nelson");
}

#[tokio::test]
async fn forged_whatsapp_signature_is_refused_and_audited() {
    let h = Harness::start_default().await;
    let response = h
        .post_whatsapp(&fixture("whatsapp_text_message.json"), "wrong-secret")
        .await;
    assert_eq!(response.status(), 401);
    assert!(h.sink.events().is_empty());
    assert_eq!(refusals(&h), [AuditKind::ForgedRequest]);
}

// ---- Matrix ----

#[tokio::test]
async fn matrix_transaction_replay_is_deduplicated() {
    let h = Harness::start_default().await;
    let body = fixture("matrix_transaction.json");
    for _ in 0..2 {
        let response = h.put_matrix("txn-1", &body, Some(MATRIX_HS_TOKEN)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }
    let events = h.sink.events();
    assert_eq!(
        events.len(),
        1,
        "one user message; the bot's own and the join are ignored"
    );
    assert_eq!(events[0].event_id, "$143273582443PhrSn:example.org");
    assert_eq!(events[0].thread_id, "!jEsUZKDJdhlrceRyVU:example.org");
    assert_eq!(events[0].metadata["matrix.txn_id"], "txn-1");
}

#[tokio::test]
async fn matrix_wrong_or_missing_hs_token_is_refused() {
    let h = Harness::start_default().await;
    let body = fixture("matrix_transaction.json");
    let wrong = h.put_matrix("txn-2", &body, Some("guess")).await;
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["errcode"],
        "M_FORBIDDEN"
    );
    let missing = h.put_matrix("txn-3", &body, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["errcode"],
        "M_UNAUTHORIZED"
    );
    assert!(h.sink.events().is_empty());
    assert_eq!(
        refusals(&h),
        [AuditKind::ForgedRequest, AuditKind::MissingCredential]
    );
}

#[tokio::test]
async fn matrix_legacy_access_token_query_is_accepted() {
    let h = Harness::start_default().await;
    let response = h
        .client
        .put(h.url(&format!(
            "/webhooks/matrix/transactions/txn-9?access_token={MATRIX_HS_TOKEN}"
        )))
        .body(fixture("matrix_transaction.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.sink.events().len(), 1);
}

// ---- Shared HTTP behaviour ----

#[tokio::test]
async fn oversized_body_is_refused_with_413_naming_the_limit() {
    let mut config = config("http://127.0.0.1:9");
    config.max_body_bytes = 1024;
    let h = Harness::start(config).await;
    let body = vec![b' '; 4096];
    let response = h.post_telegram(&body, TELEGRAM_SECRET).await;
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "body_too_large");
    assert!(error["message"].as_str().unwrap().contains("1024"));
    assert!(h.sink.events().is_empty());
}

#[tokio::test]
async fn malformed_json_is_refused_with_400_naming_the_field() {
    let h = Harness::start_default().await;
    let response = h
        .post_telegram(br#"{"update_id": "ten"}"#, TELEGRAM_SECRET)
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "malformed_request");
    assert_eq!(error["field"], "update_id");

    let response = h.post_slack(b"{not json", now(), &[]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["field"], "body");
    assert!(
        h.audit.records().is_empty(),
        "bad input from a verified sender is not a security event"
    );
}

#[tokio::test]
async fn busy_store_answers_429_with_retry_after() {
    let h = Harness::start_default().await;
    h.sink.set_busy(Some(7));
    let response = h
        .post_telegram(&fixture("telegram_message.json"), TELEGRAM_SECRET)
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    h.sink.set_busy(None);
    let response = h
        .post_telegram(&fixture("telegram_message.json"), TELEGRAM_SECRET)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.sink.events().len(), 1);
}

#[tokio::test]
async fn unconfigured_platform_is_not_mounted() {
    let mut config = config("http://127.0.0.1:9");
    config.slack.clear();
    let h = Harness::start(config).await;
    let response = h
        .post_slack(&fixture("slack_message.json"), now(), &[])
        .await;
    assert_eq!(response.status(), 404);
}

// ---- Who may talk ----

#[tokio::test]
async fn unknown_sender_gets_a_pairing_code_and_nothing_else_until_approved() {
    let mut config = config("http://127.0.0.1:9");
    config.telegram[0].allow_from.clear();
    let h = Harness::start(config).await;
    let body = fixture("telegram_message.json");
    assert_eq!(h.post_telegram(&body, TELEGRAM_SECRET).await.status(), 200);
    assert!(
        h.sink.events().is_empty(),
        "nothing from an unknown sender is stored"
    );
    let notices = h.sink.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].thread_id, "1111111");
    assert!(notices[0].text.contains(&notices[0].code));

    // writing again does not re-send the code
    let again = String::from_utf8(body.clone())
        .unwrap()
        .replace("10000", "10001");
    assert_eq!(
        h.post_telegram(again.as_bytes(), TELEGRAM_SECRET)
            .await
            .status(),
        200
    );
    assert_eq!(h.sink.notices().len(), 1);
    assert!(h.sink.events().is_empty());

    let now = chrono::Utc::now();
    let pending = h.pairing.list(now).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].user_id, "1111111");
    h.pairing.approve(&notices[0].code, now).await.unwrap();

    let third = String::from_utf8(body).unwrap().replace("10000", "10002");
    assert_eq!(
        h.post_telegram(third.as_bytes(), TELEGRAM_SECRET)
            .await
            .status(),
        200
    );
    assert_eq!(h.sink.events().len(), 1);
}

#[tokio::test]
async fn denied_sender_is_ignored() {
    let mut config = config("http://127.0.0.1:9");
    config.whatsapp[0].allow_from.clear();
    let h = Harness::start(config).await;
    let body = fixture("whatsapp_text_message.json");
    h.post_whatsapp(&body, WHATSAPP_APP_SECRET).await;
    let code = h.sink.notices()[0].code.clone();
    h.pairing.deny(&code, chrono::Utc::now()).await.unwrap();
    let text = String::from_utf8(body)
        .unwrap()
        .replace("wamid.HBg", "wamid.XYZ");
    assert_eq!(
        h.post_whatsapp(text.as_bytes(), WHATSAPP_APP_SECRET)
            .await
            .status(),
        200
    );
    assert!(h.sink.events().is_empty());
    assert_eq!(h.sink.notices().len(), 1);
    assert!(
        h.audit
            .records()
            .iter()
            .any(|r| r.kind == AuditKind::DeniedSender)
    );
}

#[tokio::test]
async fn unknown_discord_sender_sees_the_pairing_code_inline_and_privately() {
    let mut config = config("http://127.0.0.1:9");
    config.discord[0].allow_from.clear();
    let h = Harness::start(config).await;
    let response = h
        .post_discord(&fixture("discord_command.json"), &discord_key(), now())
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    let code = &h.pairing.list(chrono::Utc::now()).await.unwrap()[0].code;
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains(code.as_str())
    );
    assert!(h.sink.events().is_empty());
    assert!(h.sink.notices().is_empty());
}
