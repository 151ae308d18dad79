use std::time::Duration;

use opticlaw_core::{EventEnvelope, Priority, ResponseKind, RuntimeState};
use opticlaw_runtime::{Runtime, RuntimeConfig, SubmitError};
use opticlaw_store::{StoreHandle, Synchronous, ops};
use opticlaw_triage::rules::RuleEngine;

async fn start(path: &std::path::Path, config: RuntimeConfig) -> Runtime {
    let store = StoreHandle::open(path, Synchronous::Normal).unwrap();
    Runtime::start(store, RuleEngine::default(), config)
        .await
        .unwrap()
}

/// A runtime whose model answerer echoes the message.
async fn start_with_echo(path: &std::path::Path) -> Runtime {
    let store = StoreHandle::open(path, Synchronous::Normal).unwrap();
    Runtime::start_with(
        store,
        RuleEngine::default(),
        RuntimeConfig::default(),
        Some(std::sync::Arc::new(EchoAnswerer)),
    )
    .await
    .unwrap()
}

async fn next_reply(
    replies: &mut tokio::sync::broadcast::Receiver<opticlaw_core::ResponsePacket>,
) -> opticlaw_core::ResponsePacket {
    tokio::time::timeout(Duration::from_secs(5), replies.recv())
        .await
        .expect("a reply within 5s")
        .unwrap()
}

#[tokio::test]
async fn help_is_answered_by_the_rule_layer() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let mut replies = runtime.subscribe();
    runtime
        .submit(EventEnvelope::local_text("alice", "main", "/help"))
        .await
        .unwrap();
    let reply = next_reply(&mut replies).await;
    assert_eq!(reply.kind, ResponseKind::Reply);
    assert!(reply.text.contains("remind me"), "{}", reply.text);
    assert_eq!(reply.thread_id, "main");
}

#[tokio::test]
async fn a_repeated_event_is_processed_once_and_returns_the_first_replies() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let mut replies = runtime.subscribe();
    let event = EventEnvelope::local_text("alice", "main", "/help");
    let first = runtime.submit(event.clone()).await.unwrap();
    assert!(!first.duplicate);
    next_reply(&mut replies).await;
    let again = runtime.submit(event).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    assert_eq!(again.replies.len(), 1);
    let stats = runtime.store().call(ops::stats).await.unwrap();
    assert_eq!((stats.events_total, stats.replies_total), (1, 1));
}

#[tokio::test]
async fn a_message_needing_a_model_says_what_to_configure() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let mut replies = runtime.subscribe();
    runtime
        .submit(EventEnvelope::local_text(
            "alice",
            "main",
            "plan my trip to Lisbon",
        ))
        .await
        .unwrap();
    let reply = next_reply(&mut replies).await;
    assert!(reply.text.contains("config.toml"), "{}", reply.text);
    assert!(reply.text.contains("language model"), "{}", reply.text);
}

#[tokio::test]
async fn reminder_is_delivered_to_the_same_thread_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let mut replies = runtime.subscribe();
    runtime
        .submit(EventEnvelope::local_text(
            "alice",
            "kitchen",
            "remind me in 1 second to stir the soup",
        ))
        .await
        .unwrap();
    let confirmation = next_reply(&mut replies).await;
    assert!(
        confirmation.text.contains("stir the soup"),
        "{}",
        confirmation.text
    );
    let reminder = next_reply(&mut replies).await;
    assert_eq!(reminder.kind, ResponseKind::Reminder);
    assert_eq!(reminder.thread_id, "kitchen");
    assert_eq!(reminder.text, "⏰ Reminder: stir the soup");
    let status = runtime.status().await.unwrap();
    assert_eq!(status.store.deferred_pending, 0);
    assert_eq!(status.state, RuntimeState::Sleeping);
}

#[tokio::test]
async fn cancelled_reminder_does_not_fire_and_the_timer_rearms_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let mut replies = runtime.subscribe();
    let say = |text: &str| EventEnvelope::local_text("bob", "t", text);
    runtime
        .submit(say("remind me in 1 second to A"))
        .await
        .unwrap();
    let confirm_a = next_reply(&mut replies).await.text;
    runtime
        .submit(say("remind me in 2 seconds to B"))
        .await
        .unwrap();
    next_reply(&mut replies).await;
    let id = confirm_a
        .rsplit("id ")
        .next()
        .unwrap()
        .trim_end_matches(").");
    runtime.submit(say(&format!("/cancel {id}"))).await.unwrap();
    assert!(next_reply(&mut replies).await.text.starts_with("Cancelled"));
    let fired = next_reply(&mut replies).await;
    assert_eq!(fired.text, "⏰ Reminder: B");
}

#[tokio::test]
async fn full_queue_sheds_lower_classes_refuses_with_busy_and_loses_nothing_it_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let with_priority = |text: &str, priority| {
        let mut event = EventEnvelope::local_text("u", "t", text);
        event.hints.priority = priority;
        event
    };
    // Phase 1: nothing is processed, so the queue of 2 fills up.
    let holding = RuntimeConfig {
        queue_capacity: 2,
        process_events: false,
        ..RuntimeConfig::default()
    };
    let runtime = start(&path, holding).await;
    runtime
        .submit(with_priority("plan A", Priority::Background))
        .await
        .unwrap();
    runtime
        .submit(with_priority("plan B", Priority::Background))
        .await
        .unwrap();
    let refused = runtime
        .submit(with_priority("plan C", Priority::Background))
        .await;
    assert!(
        matches!(
            refused,
            Err(SubmitError::Busy {
                retry_after_secs: 1
            })
        ),
        "{refused:?}"
    );
    // More urgent work sheds the newest least urgent queued event to the store.
    runtime
        .submit(with_priority("plan D", Priority::Interactive))
        .await
        .unwrap();
    runtime
        .submit(with_priority("plan E", Priority::UserBlocking))
        .await
        .unwrap();
    let status = runtime.status().await.unwrap();
    assert_eq!(status.shed, 2);
    assert_eq!(status.refused_busy, 1);
    assert_eq!(
        (status.queue.user_blocking, status.queue.interactive),
        (1, 1)
    );
    assert_eq!(
        status.store.events_total, 4,
        "A, B, D, E were accepted; C was not"
    );
    runtime.shutdown(Duration::from_millis(10)).await;
    drop(runtime);

    // Phase 2: a processing runtime on the same store answers all four,
    // the shed ones included, most urgent first.
    let runtime = start(
        &path,
        RuntimeConfig {
            workers: 1,
            ..RuntimeConfig::default()
        },
    )
    .await;
    let mut replies = runtime.subscribe();
    for _ in 0..4 {
        next_reply(&mut replies).await;
    }
    let status = runtime.status().await.unwrap();
    assert_eq!(status.store.events_pending, 0);
    assert_eq!(status.store.replies_total, 4);
}

#[tokio::test]
async fn rule_answers_come_back_with_the_submission() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let submission = runtime
        .submit(EventEnvelope::local_text("u", "t", "/time"))
        .await
        .unwrap();
    assert_eq!(submission.status, opticlaw_store::EventStatus::Done);
    assert_eq!(submission.replies.len(), 1);
    assert!(submission.replies[0].text.starts_with("It's "));
}

#[tokio::test]
async fn events_accepted_before_a_restart_are_processed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        // Accept without processing: write straight into the store.
        let store = StoreHandle::open(&path, Synchronous::Normal).unwrap();
        for i in 0..5 {
            let event = EventEnvelope::local_text("u", "t", &format!("/help {i}"));
            store
                .call(move |c| ops::accept_event(c, &event, 0))
                .await
                .unwrap();
        }
    }
    let runtime = start(&path, RuntimeConfig::default()).await;
    let mut replies = runtime.subscribe();
    for _ in 0..5 {
        next_reply(&mut replies).await;
    }
    let stats = runtime.store().call(ops::stats).await.unwrap();
    assert_eq!((stats.events_pending, stats.replies_total), (0, 5));
}

#[tokio::test]
async fn shutdown_drains_and_then_refuses_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    for i in 0..20 {
        runtime
            .submit(EventEnvelope::local_text("u", "t", &format!("/help {i}")))
            .await
            .unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    let stats = runtime.store().call(ops::stats).await.unwrap();
    assert_eq!(stats.events_pending, 0);
    let refused = runtime
        .submit(EventEnvelope::local_text("u", "t", "/help"))
        .await;
    assert!(matches!(refused, Err(SubmitError::ShuttingDown)));
}

struct EchoAnswerer;

impl opticlaw_runtime::Answerer for EchoAnswerer {
    fn answer(&self, request: opticlaw_runtime::AnswerRequest) -> opticlaw_runtime::AnswerFuture {
        Box::pin(async move {
            if request.event.content.text.contains("fail") {
                return Err("the model timed out".to_owned());
            }
            Ok(opticlaw_runtime::Answer {
                text: format!("echo: {}", request.event.content.text),
                outcome: serde_json::json!({ "model": "echo", "tokens": 3 }),
            })
        })
    }
}

#[tokio::test]
async fn messages_no_rule_answers_go_to_the_answerer_and_its_outcome_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start_with_echo(&dir.path().join("db")).await;
    let mut replies = runtime.subscribe();
    runtime
        .submit(EventEnvelope::local_text("u", "t", "plan my week"))
        .await
        .unwrap();
    assert_eq!(next_reply(&mut replies).await.text, "echo: plan my week");
    runtime
        .submit(EventEnvelope::local_text("u", "t", "please fail"))
        .await
        .unwrap();
    let failed = next_reply(&mut replies).await.text;
    assert!(failed.contains("the model timed out"), "{failed}");
    // Rules still answer first, without the answerer.
    runtime
        .submit(EventEnvelope::local_text("u", "t", "/time"))
        .await
        .unwrap();
    assert!(next_reply(&mut replies).await.text.starts_with("It's "));
    let outcome: String = runtime
        .store()
        .call(|c| Ok(c.query_row("SELECT outcome FROM events WHERE seq = 1", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert!(outcome.contains("\"model\":\"echo\""), "{outcome}");
}

#[tokio::test]
async fn a_greeting_is_answered_by_the_classifier_and_the_reason_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(&dir.path().join("db"), RuntimeConfig::default()).await;
    let submission = runtime
        .submit(EventEnvelope::local_text("u", "t", "hello there"))
        .await
        .unwrap();
    assert_eq!(
        submission.status,
        opticlaw_store::EventStatus::Done,
        "fast path, no queue"
    );
    assert!(
        submission.replies[0].text.contains("OptiClaw"),
        "{}",
        submission.replies[0].text
    );
    let outcome: String = runtime
        .store()
        .call(|c| Ok(c.query_row("SELECT outcome FROM events WHERE seq = 1", [], |r| r.get(0))?))
        .await
        .unwrap();
    let outcome: serde_json::Value = serde_json::from_str(&outcome).unwrap();
    assert_eq!(outcome["rule"], "intent:greeting");
    assert_eq!(outcome["triage"]["route"], "FAST_REPLY");
    assert!(
        outcome["triage"]["intent"]["confidence"].as_f64().unwrap() > 0.0,
        "{outcome}"
    );
}

#[tokio::test]
async fn memory_is_woken_for_conversation_but_not_for_commands_or_notices() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start_with_echo(&dir.path().join("db")).await;
    let mut memorable = runtime.subscribe_memorable();
    let mut replies = runtime.subscribe();
    for text in ["/time", "  /help", "/time"] {
        runtime
            .submit(EventEnvelope::local_text("u", "t", text))
            .await
            .unwrap();
        next_reply(&mut replies).await;
    }
    let notice = opticlaw_store::NewReply {
        in_reply_to: None,
        source: "local".into(),
        user_id: "u".into(),
        thread_id: "t".into(),
        kind: ResponseKind::Notice,
        text: "pairing code 123456".into(),
    };
    runtime.notify(notice).await.unwrap();
    assert!(
        !memorable.has_changed().unwrap(),
        "commands, their answers and notices are not remembered: memory stays asleep"
    );
    // A rule's answer to conversation, then a model's.
    runtime
        .submit(EventEnvelope::local_text("u", "t", "hello there"))
        .await
        .unwrap();
    assert!(memorable.has_changed().unwrap());
    assert_eq!(*memorable.borrow_and_update(), 1);
    runtime
        .submit(EventEnvelope::local_text("u", "t", "plan my week"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), memorable.changed())
        .await
        .expect("the model's reply wakes memory")
        .unwrap();
    assert_eq!(*memorable.borrow_and_update(), 2);
}
