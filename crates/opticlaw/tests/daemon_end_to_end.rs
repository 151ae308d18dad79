mod common;

use std::time::Duration;

use common::Home;
use serde_json::json;

#[test]
fn help_round_trips_through_the_chat_command() {
    let home = Home::init();
    let _daemon = home.serve();
    let out = home.run(&["chat", "--message", "/help"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("remind me in 10 minutes"), "{text}");
}

#[test]
fn piped_chat_answers_every_line_then_exits() {
    let home = Home::init();
    let _daemon = home.serve();
    let mut chat = home
        .command(&["chat", "--thread", "pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chat.stdin
        .take()
        .unwrap()
        .write_all(b"/time\nwrite me a sonnet\n")
        .unwrap();
    let out = chat.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("It's "), "{text}");
    assert!(text.contains("language model"), "{text}");
}

#[test]
fn acknowledged_event_survives_sigkill_and_is_processed_exactly_once() {
    let home = Home::init();
    // The first daemon accepts and stores but never processes: the kill
    // lands between the acknowledgement and the processing.
    let daemon = home.serve_with(&[("OPTICLAW_FAULT_HOLD_EVENTS", "1")]);
    let (status, body) =
        daemon.post(json!({ "text": "/help", "event_id": "evt-1", "thread_id": "k" }));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["duplicate"], false);
    daemon.kill9();

    let daemon = home.serve();
    let replies = daemon.wait_for_replies("k", 1, Duration::from_secs(30));
    assert_eq!(
        replies.len(),
        1,
        "processed once after restart: {replies:?}"
    );
    assert_eq!(replies[0]["in_reply_to"], "evt-1");
    // A retry of the same event is a duplicate returning the first reply.
    let (status, again) =
        daemon.post(json!({ "text": "/help", "event_id": "evt-1", "thread_id": "k" }));
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["replies"].as_array().unwrap().len(), 1);
    daemon.kill9();

    // And a third start processes nothing again.
    let daemon = home.serve();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(daemon.replies("k").len(), 1);
}

#[test]
fn sigkill_right_after_each_acknowledgement_never_loses_or_doubles_an_event() {
    let home = Home::init();
    for round in 0..5 {
        let daemon = home.serve();
        let (status, _) = daemon.post(
            json!({ "text": "/time", "event_id": format!("race-{round}"), "thread_id": "race" }),
        );
        assert_eq!(status, 202);
        daemon.kill9();
    }
    let daemon = home.serve();
    let replies = daemon.wait_for_replies("race", 5, Duration::from_secs(30));
    let mut answered: Vec<String> = replies
        .iter()
        .map(|r| r["in_reply_to"].as_str().unwrap().to_owned())
        .collect();
    answered.sort();
    assert_eq!(
        answered,
        (0..5).map(|r| format!("race-{r}")).collect::<Vec<_>>()
    );
}

#[test]
fn reminder_fires_once_after_restart() {
    let home = Home::init();
    let daemon = home.serve();
    daemon.send("r", "remind me in 2 seconds to water the plants");
    assert_eq!(
        daemon
            .wait_for_replies("r", 1, Duration::from_secs(30))
            .len(),
        1
    );
    assert!(daemon.terminate().success());
    std::thread::sleep(Duration::from_millis(2500));

    let daemon = home.serve();
    let replies = daemon.wait_for_replies("r", 2, Duration::from_secs(30));
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1]["kind"], "reminder");
    assert_eq!(replies[1]["text"], "⏰ Reminder: water the plants");
    daemon.kill9();
    let daemon = home.serve();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(daemon.replies("r").len(), 2, "fired twice");
}

#[test]
fn overdue_reminders_fire_in_wake_order_after_restart() {
    let home = Home::init();
    let daemon = home.serve();
    daemon.send("o", "remind me in 3 seconds to C");
    daemon.send("o", "remind me in 1 second to A");
    daemon.send("o", "remind me in 2 seconds to B");
    daemon.wait_for_replies("o", 3, Duration::from_secs(30));
    daemon.kill9();
    std::thread::sleep(Duration::from_millis(3500));
    let daemon = home.serve();
    let replies = daemon.wait_for_replies("o", 6, Duration::from_secs(30));
    let fired: Vec<&str> = replies
        .iter()
        .filter(|r| r["kind"] == "reminder")
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fired,
        ["⏰ Reminder: A", "⏰ Reminder: B", "⏰ Reminder: C"]
    );
}

#[test]
fn malformed_oversized_and_unauthorized_requests_get_json_errors() {
    let home = Home::init();
    let daemon = home.serve();
    let (status, body) = daemon.post_raw("{\"text\": ");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, body) = daemon.post(json!({ "thread_id": "x" }));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "text");
    let (status, body) = daemon.post(json!({ "text": "hi", "priority": "urgent!!" }));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "priority");
    let huge = json!({ "text": "a".repeat(70_000) }).to_string();
    let (status, body) = daemon.post_raw(&huge);
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("65536"));
    let (status, _) =
        common::ureq_like::post(&format!("{}/v1/local/messages", daemon.base), "wrong", "{}");
    assert_eq!(status, 401);
    // None of it was accepted.
    assert_eq!(daemon.get("/v1/status")["store"]["events_total"], 0);
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let home = Home::init();
    let daemon = home.serve();
    for i in 0..20 {
        daemon.send("d", &format!("/time {i}"));
    }
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    let out = home.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not running"), "{text}");
    assert!(text.contains("20 events (0 pending)"), "{text}");
}

#[test]
fn status_shows_the_runtime_state() {
    let home = Home::init();
    let _daemon = home.serve();
    let out = home.run(&["status"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state:      SLEEPING"), "{text}");
}
