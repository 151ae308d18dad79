use opticlaw_core::{EventEnvelope, ResponseKind};
use opticlaw_store::{
    Completion, EventStatus, NewDeferredTask, NewReply, Store, StoreHandle, Synchronous, ops,
};
use serde_json::json;

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opticlaw.db");
    (dir, path)
}

fn reply_to(event: &EventEnvelope, text: &str) -> NewReply {
    NewReply {
        in_reply_to: Some(event.event_id.clone()),
        source: event.source.clone(),
        user_id: event.user_id.clone(),
        thread_id: event.thread_id.clone(),
        kind: ResponseKind::Reply,
        text: text.to_owned(),
    }
}

#[test]
fn store_opens_in_wal_mode_at_latest_schema() {
    let (_dir, path) = temp_store();
    let store = Store::open(&path, Synchronous::Full).unwrap();
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(ops::stats(store.connection()).unwrap().schema_version, 4);
    drop(store);
    // Reopening applies nothing twice.
    let again = Store::open(&path, Synchronous::Full).unwrap();
    assert_eq!(ops::stats(again.connection()).unwrap().schema_version, 4);
}

/// A new store is made with 2 KiB pages (fewer log bytes a commit); a
/// store made before, at SQLite's 4 KiB, opens as it is and keeps them.
#[test]
fn a_new_store_has_small_pages_and_an_old_one_keeps_its_own() {
    let page_size = |conn: &opticlaw_store::rusqlite::Connection| -> i64 {
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let (_dir, path) = temp_store();
    let store = Store::open(&path, Synchronous::Normal).unwrap();
    assert_eq!(page_size(store.connection()), 2048);

    let (_old_dir, old_path) = temp_store();
    let old = opticlaw_store::rusqlite::Connection::open(&old_path).unwrap();
    old.execute_batch(
        "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE kept (a);
         INSERT INTO kept VALUES (1);",
    )
    .unwrap();
    drop(old);
    let mut reopened = Store::open(&old_path, Synchronous::Normal).unwrap();
    assert_eq!(page_size(reopened.connection()), 4096);
    let kept: i64 = reopened
        .connection()
        .query_row("SELECT a FROM kept", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1);
    let event = EventEnvelope::local_text("alice", "main", "/help");
    assert!(!reopened.accept_event(&event).unwrap().duplicate);
}

#[test]
fn newer_schema_is_refused_with_a_clear_error() {
    let (_dir, path) = temp_store();
    let store = Store::open(&path, Synchronous::Normal).unwrap();
    store
        .connection()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    drop(store);
    let err = Store::open(&path, Synchronous::Normal)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("99") && err.contains("upgrade"), "{err}");
}

#[test]
fn repeated_event_is_a_duplicate_that_returns_the_first_result() {
    let (_dir, path) = temp_store();
    let mut store = Store::open(&path, Synchronous::Normal).unwrap();
    let event = EventEnvelope::local_text("alice", "main", "/help");
    let first = store.accept_event(&event).unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.status, EventStatus::Pending);

    let written = store
        .complete_event(&Completion {
            event_seq: first.seq,
            status: EventStatus::Done,
            outcome: json!({"rule": "help"}),
            replies: vec![reply_to(&event, "help text")],
            schedule: vec![],
            cancel: vec![],
        })
        .unwrap();
    assert_eq!(written.len(), 1);

    let again = store.accept_event(&event).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    assert_eq!(again.status, EventStatus::Done);
    assert_eq!(again.replies, written);
    assert_eq!(ops::stats(store.connection()).unwrap().events_total, 1);
}

#[test]
fn an_event_accepted_already_answered_is_done_at_once_and_deduplicated() {
    let (_dir, path) = temp_store();
    let store = Store::open(&path, Synchronous::Normal).unwrap();
    let conn = store.connection();
    let event = EventEnvelope::local_text("alice", "main", "/time");
    let envelope = serde_json::to_string(&event).unwrap();
    let done = |text: &str| Completion {
        event_seq: 0,
        status: EventStatus::Done,
        outcome: json!({"rule": "time"}),
        replies: vec![reply_to(&event, text)],
        schedule: vec![],
        cancel: vec![],
    };
    let (first, written) =
        ops::accept_completed_event(conn, &event, &envelope, &done("12:00"), 1_000).unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.status, EventStatus::Done);
    assert_eq!(written.len(), 1);
    // Never pending, so never picked up again after a restart.
    assert!(ops::pending_events(conn, 0, 10).unwrap().is_empty());
    assert_eq!(
        ops::event_status(conn, &event.source, &event.event_id).unwrap(),
        Some((first.seq, EventStatus::Done))
    );
    let stored: String = conn
        .query_row(
            "SELECT outcome FROM events WHERE seq = ?1",
            [first.seq],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.contains("time"), "{stored}");

    // A redelivery answers with the first run's replies and writes nothing.
    let (again, none) =
        ops::accept_completed_event(conn, &event, &envelope, &done("12:01"), 2_000).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    assert!(none.is_empty());
    assert_eq!(again.replies, written);
    let stats = ops::stats(conn).unwrap();
    assert_eq!((stats.events_total, stats.replies_total), (1, 1));
}

/// An event's replies are read back (on a redelivery) forward from where
/// its completion recorded they start, by rowid, never by scanning the
/// outbox: replies of other events and notices around them are not in the
/// answer.
#[test]
fn a_redelivery_reads_exactly_its_events_replies_by_rowid() {
    let (_dir, path) = temp_store();
    let mut store = Store::open(&path, Synchronous::Normal).unwrap();
    let first = EventEnvelope::local_text("alice", "main", "first");
    let second = EventEnvelope::local_text("bob", "main", "second");
    let silent = EventEnvelope::local_text("carol", "main", "silent");
    let seqs: Vec<i64> = [&first, &second, &silent]
        .iter()
        .map(|event| store.accept_event(event).unwrap().seq)
        .collect();
    let complete = |store: &mut Store, seq: i64, replies: Vec<NewReply>| {
        store
            .complete_event(&Completion {
                event_seq: seq,
                status: EventStatus::Done,
                outcome: json!({}),
                replies,
                schedule: vec![],
                cancel: vec![],
            })
            .unwrap()
    };
    let notice = NewReply {
        kind: ResponseKind::Notice,
        ..reply_to(&second, "a notice between")
    };
    ops::add_reply(store.connection(), &notice, 1).unwrap();
    let second_written = complete(&mut store, seqs[1], vec![reply_to(&second, "b")]);
    ops::add_reply(store.connection(), &notice, 1).unwrap();
    let first_written = complete(
        &mut store,
        seqs[0],
        vec![reply_to(&first, "a1"), reply_to(&first, "a2")],
    );
    ops::add_reply(store.connection(), &notice, 1).unwrap();
    complete(&mut store, seqs[2], vec![]);

    let again = |store: &mut Store, event: &EventEnvelope| {
        let acceptance = store.accept_event(event).unwrap();
        assert!(acceptance.duplicate);
        acceptance.replies
    };
    assert_eq!(again(&mut store, &first), first_written);
    assert_eq!(first_written.len(), 2);
    assert_eq!(again(&mut store, &second), second_written);
    assert!(again(&mut store, &silent).is_empty());

    let conn = store.connection();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", ops::REPLIES_FOR_EVENT))
        .unwrap()
        .query_map([seqs[0]], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|step| step.contains("SEARCH replies USING INTEGER PRIMARY KEY (rowid>?)")),
        "plan: {plan:?}"
    );
    assert!(
        plan.iter().all(|step| !step.contains("SCAN")),
        "plan: {plan:?}"
    );
}

#[test]
fn completing_twice_writes_replies_once() {
    let (_dir, path) = temp_store();
    let mut store = Store::open(&path, Synchronous::Normal).unwrap();
    let event = EventEnvelope::local_text("alice", "main", "hi");
    let seq = store.accept_event(&event).unwrap().seq;
    let done = Completion {
        event_seq: seq,
        status: EventStatus::Done,
        outcome: json!({}),
        replies: vec![reply_to(&event, "hello")],
        schedule: vec![],
        cancel: vec![],
    };
    store.complete_event(&done).unwrap();
    store.complete_event(&done).unwrap();
    assert_eq!(ops::stats(store.connection()).unwrap().replies_total, 1);
}

#[test]
fn due_tasks_fire_once_in_wake_order() {
    let (_dir, path) = temp_store();
    let mut store = Store::open(&path, Synchronous::Normal).unwrap();
    for (id, wake) in [
        ("late", 3_000),
        ("early", 1_000),
        ("future", 99_000),
        ("mid", 2_000),
    ] {
        store
            .transaction(|conn| {
                ops::add_deferred(
                    conn,
                    &NewDeferredTask {
                        task_id: id.into(),
                        wake_at_ms: wake,
                        condition: None,
                        payload: json!({"text": id}),
                        owner_source: "local".into(),
                        owner_user: "alice".into(),
                    },
                    0,
                )
            })
            .unwrap();
    }
    assert_eq!(ops::next_wake_at(store.connection()).unwrap(), Some(1_000));
    let render = |task: &opticlaw_store::DeferredTask| {
        vec![NewReply {
            in_reply_to: None,
            source: "local".into(),
            user_id: "alice".into(),
            thread_id: "main".into(),
            kind: ResponseKind::Reminder,
            text: task.payload["text"].as_str().unwrap().to_owned(),
        }]
    };
    let fired = store.fire_due(5_000, render).unwrap();
    let texts: Vec<&str> = fired.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, ["early", "mid", "late"]);
    assert!(
        store.fire_due(5_000, render).unwrap().is_empty(),
        "fired twice"
    );
    assert_eq!(ops::next_wake_at(store.connection()).unwrap(), Some(99_000));
}

#[test]
fn cancelled_task_never_fires() {
    let (_dir, path) = temp_store();
    let mut store = Store::open(&path, Synchronous::Normal).unwrap();
    store
        .transaction(|conn| {
            ops::add_deferred(
                conn,
                &NewDeferredTask {
                    task_id: "t".into(),
                    wake_at_ms: 10,
                    condition: None,
                    payload: json!({}),
                    owner_source: "local".into(),
                    owner_user: "u".into(),
                },
                0,
            )?;
            ops::cancel_deferred(conn, "t")
        })
        .unwrap();
    assert_eq!(ops::next_wake_at(store.connection()).unwrap(), None);
    assert!(store.fire_due(100, |_| vec![]).unwrap().is_empty());
}

#[tokio::test]
async fn group_commit_answers_concurrent_callers_after_commit() {
    let (_dir, path) = temp_store();
    let handle = StoreHandle::open(&path, Synchronous::Full).unwrap();
    let mut waiting = Vec::new();
    for i in 0..200 {
        let handle = handle.clone();
        waiting.push(tokio::spawn(async move {
            let event = EventEnvelope::local_text("u", "t", &format!("m{i}"));
            handle
                .call(move |conn| ops::accept_event(conn, &event, 0))
                .await
        }));
    }
    for task in waiting {
        assert!(!task.await.unwrap().unwrap().duplicate);
    }
    // A separate connection sees every acknowledged event: they are committed.
    let reader = Store::open(&path, Synchronous::Full).unwrap();
    assert_eq!(ops::stats(reader.connection()).unwrap().events_total, 200);
}

#[tokio::test]
async fn a_failing_request_does_not_undo_its_batch_neighbours() {
    let (_dir, path) = temp_store();
    let handle = StoreHandle::open(&path, Synchronous::Normal).unwrap();
    let good = EventEnvelope::local_text("u", "t", "ok");
    let (a, b) = tokio::join!(
        handle.call(move |conn| ops::accept_event(conn, &good, 0)),
        handle.call(|conn| {
            conn.execute("INSERT INTO events (seq) VALUES (NULL)", [])?;
            Ok(())
        }),
    );
    assert!(a.is_ok());
    assert!(b.is_err());
    let stats = handle.call(ops::stats).await.unwrap();
    assert_eq!(stats.events_total, 1);
}

#[tokio::test]
async fn a_lone_failing_request_leaves_no_partial_write() {
    let (_dir, path) = temp_store();
    let handle = StoreHandle::open(&path, Synchronous::Normal).unwrap();
    let event = EventEnvelope::local_text("u", "t", "half");
    let result: Result<(), _> = handle
        .call(move |conn| {
            ops::accept_event(conn, &event, 0)?;
            conn.execute("INSERT INTO events (seq) VALUES (NULL)", [])?;
            Ok(())
        })
        .await;
    assert!(result.is_err());
    let stats = handle.call(ops::stats).await.unwrap();
    assert_eq!(
        stats.events_total, 0,
        "the first insert was rolled back too"
    );
}

#[tokio::test]
async fn commit_hooks_run_in_commit_order_and_only_for_committed_work() {
    let (_dir, path) = temp_store();
    let handle = StoreHandle::open(&path, Synchronous::Normal).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiting = Vec::new();
    for i in 0..50 {
        let (handle, seen) = (handle.clone(), seen.clone());
        waiting.push(tokio::spawn(async move {
            let event = EventEnvelope::local_text("u", "t", &format!("m{i}"));
            handle
                .call_then(
                    move |conn| Ok(ops::accept_event(conn, &event, 0)?.seq),
                    move |seq| seen.lock().unwrap().push(*seq),
                )
                .await
        }));
    }
    // A request whose work fails is rolled back, and its hook never runs.
    let failed = handle
        .call_then(
            |conn| {
                conn.execute("INSERT INTO events (seq) VALUES (NULL)", [])?;
                Ok(-1)
            },
            {
                let seen = seen.clone();
                move |seq| seen.lock().unwrap().push(*seq)
            },
        )
        .await;
    assert!(failed.is_err());
    for task in waiting {
        task.await.unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 50, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not in commit order: {seen:?}"
    );
}

#[test]
fn components_migrate_independently_and_once() {
    let (_dir, path) = temp_store();
    const V1: &[&str] = &["CREATE TABLE extra_a (x INTEGER)"];
    const V2: &[&str] = &[
        "CREATE TABLE extra_a (x INTEGER)",
        "ALTER TABLE extra_a ADD COLUMN y TEXT",
    ];
    let component = |migrations| opticlaw_store::Component {
        name: "extra",
        migrations,
    };
    Store::open_with(&path, Synchronous::Normal, &[component(V1)]).unwrap();
    let store = Store::open_with(&path, Synchronous::Normal, &[component(V2)]).unwrap();
    store
        .connection()
        .execute("INSERT INTO extra_a (x, y) VALUES (1, 'two')", [])
        .unwrap();
    let version: i64 = store
        .connection()
        .query_row(
            "SELECT version FROM schema_components WHERE name = 'extra'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
    drop(store);
    // A build that knows fewer migrations refuses the newer file.
    let err = Store::open_with(&path, Synchronous::Normal, &[component(V1)])
        .err()
        .unwrap();
    assert!(err.to_string().contains("extra"), "{err}");
}

#[test]
fn redacting_erases_text_from_events_and_replies_but_keeps_dedupe() {
    let (_dir, path) = temp_store();
    let mut store = Store::open(&path, Synchronous::Normal).unwrap();
    let secret = "door code is 4711";
    let event = EventEnvelope::local_text("alice", "main", &format!("my {secret}, ok?"));
    let seq = store.accept_event(&event).unwrap().seq;
    store
        .complete_event(&Completion {
            event_seq: seq,
            status: EventStatus::Done,
            outcome: json!({}),
            replies: vec![reply_to(&event, &format!("noted: {secret}"))],
            schedule: vec![],
            cancel: vec![],
        })
        .unwrap();
    // Another conversation saying the same is not touched.
    let other = EventEnvelope::local_text("bob", "main", &format!("bob's {secret}"));
    store.accept_event(&other).unwrap();

    let changed = ops::redact_text(store.connection(), "local/alice/main", secret).unwrap();
    assert_eq!(changed, 2);
    let count = |sql: &str| -> i64 { store.connection().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM events WHERE instr(envelope, '4711') > 0"),
        1,
        "only bob's event still says it"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM replies WHERE instr(body, '4711') > 0"),
        0
    );
    let text: String = store
        .connection()
        .query_row(
            "SELECT json_extract(envelope, '$.content.text') FROM events WHERE seq = ?1",
            [seq],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text, format!("my {}, ok?", opticlaw_store::FORGOTTEN));
    // The redelivered event is still a duplicate: processed once.
    let again = store.accept_event(&event).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, seq);
    assert_eq!(ops::stats(store.connection()).unwrap().events_total, 2);
}

/// Why every `LIMIT` with a parameter is written `LIMIT CAST(?N AS
/// INTEGER)`: with a bare `LIMIT ?N` SQLite lets the bound value steer the
/// plan, so each new binding expires the statement and the next run parses
/// and plans it again (it showed as a third of the memory feed's CPU).
#[test]
fn a_cast_limit_keeps_its_prepared_statement_and_a_bare_one_does_not() {
    use opticlaw_store::rusqlite::{Connection, StatementStatus};
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )
    .unwrap();
    let reprepares = |sql: &str| {
        let mut rows = 0;
        for after in 0..5i64 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            rows += stmt
                .query_map([after % 3, 2], |r| r.get::<_, i64>(0))
                .unwrap()
                .count();
        }
        assert!(rows > 0);
        let stmt = conn.prepare_cached(sql).unwrap();
        stmt.get_status(StatementStatus::RePrepare)
    };
    assert_eq!(
        reprepares("SELECT seq FROM t WHERE seq > ?1 ORDER BY seq LIMIT CAST(?2 AS INTEGER)"),
        0
    );
    assert!(reprepares("SELECT seq FROM t WHERE seq > ?1 ORDER BY seq LIMIT ?2") > 0);
}

/// The web chat reads a thread's replies through an index that holds only
/// local replies; a platform reply, whose thread is its own conversation,
/// is never written to it.
#[test]
fn only_local_replies_are_indexed_by_thread() {
    let (_dir, path) = temp_store();
    let store = Store::open(&path, Synchronous::Normal).unwrap();
    let conn = store.connection();
    let reply = |source: &str, thread: &str, text: &str| NewReply {
        in_reply_to: None,
        source: source.to_owned(),
        user_id: "u1".to_owned(),
        thread_id: thread.to_owned(),
        kind: ResponseKind::Notice,
        text: text.to_owned(),
    };
    for (source, thread, text) in [
        ("local", "main", "first"),
        ("telegram", "main", "elsewhere"),
        ("local", "other", "other thread"),
        ("local", "main", "second"),
    ] {
        ops::add_reply(conn, &reply(source, thread, text), 1).unwrap();
    }
    let texts: Vec<String> = ops::local_replies_after(conn, "main", 0, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(texts, ["first", "second"]);
    let after_first = ops::local_replies_after(conn, "main", 1, 10).unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].text, "second");

    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT seq FROM replies
             WHERE source = 'local' AND thread_id = 'main' AND seq > 0 ORDER BY seq",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("replies_local_by_thread"), "plan: {plan}");
}
