//! The daemon's memory, driven as a user would: messages are remembered,
//! found with `/memory` and `opticlaw memory search`, truly forgotten with
//! `/forget`, ingested exactly once across a kill -9, and moved between
//! homes with export/import (a corrupt file changes nothing).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

fn memory_db(home: &common::Home) -> PathBuf {
    home.path().join("data").join("memory.db")
}

/// A value read from the memory file (retried while it does not exist yet).
fn query_i64(db: &Path, sql: &str, param: &str) -> i64 {
    let Ok(conn) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return -1;
    };
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [param], |r| r.get(0)).unwrap_or(-1)
}

/// Polls (in the test only) until `f` holds.
fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn records_containing(home: &common::Home, needle: &str) -> i64 {
    query_i64(
        &memory_db(home),
        "SELECT COUNT(*) FROM memory_records WHERE instr(content, ?1) > 0",
        needle,
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn reply_texts(daemon: &common::Daemon, thread: &str) -> Vec<String> {
    daemon
        .replies(thread)
        .iter()
        .filter_map(|r| r["text"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_message_is_remembered_searchable_and_forget_removes_it_everywhere() {
    let home = common::Home::init();
    let daemon = home.serve();
    let secret = "door code is 4711";
    daemon.send(
        "main",
        &format!("My sister Alice moved to Lisbon in May; her {secret}"),
    );
    wait_until(Duration::from_secs(60), "the message in memory", || {
        records_containing(&home, secret) == 1
    });

    // With the model fetched (scripts/test does), the daemon embeds what it
    // remembers: every record gets its vector.
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/models/all-MiniLM-L6-v2/model.safetensors");
    if model.is_file() {
        let count = |table: &str| {
            query_i64(
                &memory_db(&home),
                &format!("SELECT COUNT(*) FROM {table} WHERE ?1 = ?1"),
                "",
            )
        };
        wait_until(Duration::from_secs(30), "vectors for every record", || {
            count("memory_records") >= 1 && count("memory_vectors") == count("memory_records")
        });
    } else {
        eprintln!("embedding model not fetched: this run checks full text + graph only");
    }

    // The CLI finds it while the daemon runs.
    let out = home.run(&["memory", "search", "Where did Alice move?"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(secret), "{}", stdout(&out));

    // So does /memory in the chat, without any model configured.
    daemon.send("main", "/memory Alice Lisbon");
    wait_until(Duration::from_secs(30), "the /memory reply", || {
        reply_texts(&daemon, "main")
            .iter()
            .any(|t| t.starts_with("What I remember about") && t.contains(secret))
    });
    let seq = query_i64(
        &memory_db(&home),
        "SELECT seq FROM memory_records WHERE instr(content, ?1) > 0",
        secret,
    );
    assert!(seq > 0);

    daemon.send("main", &format!("/forget {secret}"));
    wait_until(Duration::from_secs(30), "the /forget reply", || {
        reply_texts(&daemon, "main")
            .iter()
            .any(|t| t.starts_with("Forgot 1 memory"))
    });
    let texts = reply_texts(&daemon, "main");
    let forgot = texts.iter().find(|t| t.starts_with("Forgot")).unwrap();
    assert!(
        !forgot.contains("4711"),
        "the reply repeats what was forgotten: {forgot}"
    );

    // Gone from the rows, the full-text index (its own row and the
    // neighbours' context) and the vectors.
    let db = memory_db(&home);
    assert_eq!(records_containing(&home, "4711"), 0);
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) FROM memory_fts WHERE memory_fts MATCH ?1",
            "4711"
        ),
        0
    );
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) FROM memory_vectors WHERE seq = CAST(?1 AS INTEGER)",
            &seq.to_string()
        ),
        0
    );
    let out = home.run(&["memory", "search", "Alice door code"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("4711"), "{}", stdout(&out));

    // Nor does the daemon's event log (the message, and the /forget naming
    // it) or its outbox (the /memory reply that quoted it); the events stay,
    // with their dedupe keys.
    let store = home.path().join("data").join("opticlaw.db");
    let in_store = |sql: &str| query_i64(&store, sql, "4711");
    assert_eq!(
        in_store(
            "SELECT COUNT(*) FROM events WHERE instr(envelope || COALESCE(outcome, ''), ?1) > 0"
        ),
        0
    );
    assert_eq!(
        in_store("SELECT COUNT(*) FROM replies WHERE instr(body, ?1) > 0"),
        0
    );
    assert_eq!(
        query_i64(
            &store,
            "SELECT COUNT(*) FROM events WHERE instr(json_extract(envelope, '$.content.text'), ?1) > 0",
            "[forgotten]"
        ),
        2
    );
    assert!(
        !reply_texts(&daemon, "main")
            .iter()
            .any(|t| t.contains("4711")),
        "the outbox still quotes it"
    );
    // The notice that no model is configured was not remembered as the
    // assistant's turn.
    assert_eq!(records_containing(&home, "none is configured"), 0);

    // /remember keeps a fact the next search finds.
    daemon.send(
        "main",
        "/remember the spare key is under the blue flowerpot",
    );
    wait_until(Duration::from_secs(30), "the /remember reply", || {
        reply_texts(&daemon, "main")
            .iter()
            .any(|t| t.starts_with("Remembered"))
    });
    let out = home.run(&["memory", "search", "where is the spare key"]);
    assert!(stdout(&out).contains("blue flowerpot"), "{}", stdout(&out));
}

#[test]
fn ingestion_survives_kill_9_with_nothing_lost_or_duplicated() {
    let home = common::Home::init();
    let daemon = home.serve();
    let messages: Vec<String> = (1..=12)
        .map(|i| format!("parcel {i} went to warehouse {}", i * 7))
        .collect();
    for m in &messages {
        daemon.send("main", m);
    }
    daemon.kill9();

    let daemon = home.serve();
    // Every message answered (the no-model notice), and then every message
    // remembered, once; the notices are the daemon's boilerplate, not the
    // assistant's turns, and are not remembered.
    let replies = daemon.wait_for_replies("main", messages.len(), Duration::from_secs(60));
    assert_eq!(replies.len(), messages.len());
    let db = memory_db(&home);
    let total = || query_i64(&db, "SELECT COUNT(*) FROM memory_records WHERE ?1 = ?1", "");
    let expected = messages.len() as i64;
    wait_until(Duration::from_secs(60), "every message in memory", || {
        total() >= expected
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(total(), expected, "records were duplicated");
    for m in &messages {
        assert_eq!(
            query_i64(
                &db,
                "SELECT COUNT(*) FROM memory_records WHERE content = ?1",
                m
            ),
            1,
            "{m}"
        );
    }
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) FROM memory_records WHERE speaker = ?1",
            "assistant"
        ),
        0
    );

    // A restart after everything was ingested adds nothing.
    drop(daemon);
    let daemon = home.serve();
    daemon.send("other", "/help");
    daemon.wait_for_replies("other", 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(total(), expected);
}

#[test]
fn export_import_round_trip_and_bad_input_is_refused_cleanly() {
    let a = common::Home::init();
    let out = a.run(&["memory", "add", "Sam is allergic to peanuts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fact_id = stdout(&out).trim().to_owned();
    let out = a.run(&[
        "memory",
        "add",
        "--kind",
        "episodic",
        "--thread",
        "t1",
        "--speaker",
        "Sam",
        "I moved to Porto last spring",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(a.run(&["memory", "pin", &fact_id]).status.success());
    let shown = stdout(&a.run(&["memory", "show", &fact_id]));
    assert!(shown.contains("\"pinned\": true"), "{shown}");

    let file = a.path().join("export.jsonl");
    let out = a.run(&["memory", "export", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 2);

    let b = common::Home::init();
    let out = b.run(&["memory", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("imported 2 records"));
    let again = stdout(&b.run(&["memory", "export"]));
    let parse = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(parse(&again), parse(&exported));
    let out = b.run(&["memory", "search", "what is Sam allergic to"]);
    assert!(stdout(&out).contains("peanuts"), "{}", stdout(&out));

    // A corrupt file: a good line, then a broken one. Nothing is imported.
    let stats = || stdout(&b.run(&["memory", "stats"]));
    let before = stats();
    let corrupt = b.path().join("corrupt.jsonl");
    let good = exported
        .lines()
        .next()
        .unwrap()
        .replace(&fact_id, "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee");
    std::fs::write(&corrupt, format!("{good}\n{{\"memory_id\": \"oops\n")).unwrap();
    let out = b.run(&["memory", "import", corrupt.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stats(), before);
    // Invalid UTF-8 names its line too.
    std::fs::write(&corrupt, b"\xff\xfe{}\n").unwrap();
    let out = b.run(&["memory", "import", corrupt.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("line 1") && stderr(&out).contains("UTF-8"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stats(), before);

    // Oversized and non-UTF-8 records: clear errors, nothing stored.
    let big = b.path().join("big.txt");
    std::fs::write(&big, "x".repeat(70_000)).unwrap();
    let out = b.run(&["memory", "add", "--file", big.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("over the limit"), "{}", stderr(&out));
    let bad = b.path().join("bad.txt");
    std::fs::write(&bad, b"caf\xe9 au lait").unwrap();
    let out = b.run(&["memory", "add", "--file", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not valid UTF-8") && stderr(&out).contains("offset 3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stats(), before);

    // forget by id truly deletes.
    let out = b.run(&["memory", "forget", &fact_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!b.run(&["memory", "show", &fact_id]).status.success());
}

/// A replayed Ollama-protocol model on loopback, recording what it is sent.
fn start_model(
    trace: &Path,
) -> (
    std::sync::Arc<opticlaw_models::replay::ReplayServer>,
    tokio::sync::oneshot::Sender<()>,
) {
    start_model_with(opticlaw_models::replay::Trace::load(trace).unwrap())
}

fn start_model_with(
    trace: opticlaw_models::replay::Trace,
) -> (
    std::sync::Arc<opticlaw_models::replay::ReplayServer>,
    tokio::sync::oneshot::Sender<()>,
) {
    use opticlaw_models::replay::ReplayServer;
    let (ready, server) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = std::sync::Arc::new(ReplayServer::start(trace).await.unwrap());
            ready.send(server.clone()).unwrap();
            let _ = stopped.await;
        });
    });
    (server.recv().unwrap(), stop)
}

#[test]
fn the_model_gets_what_was_said_before_as_context() {
    let trace =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/hello_ollama.json");
    let (model, _stop) = start_model(&trace);
    let home = common::Home::init();
    add_local_model(&home, &model.base_url());
    let daemon = home.serve();
    daemon.send("main", "My sister Alice moved to Lisbon in May");
    daemon.wait_for_replies("main", 1, Duration::from_secs(30));
    wait_until(Duration::from_secs(30), "the message in memory", || {
        records_containing(&home, "Alice moved to Lisbon") == 1
    });
    daemon.send("main", "Where did Alice move to?");
    daemon.wait_for_replies("main", 2, Duration::from_secs(30));

    let requests = model.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let system = |i: usize| -> Vec<String> {
        requests[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "system")
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    // Nothing to remember before the first message; the second gets it.
    assert_eq!(system(0).len(), 1, "{:?}", system(0));
    let context = system(1);
    assert_eq!(context.len(), 2, "{context:?}");
    assert!(
        context[1].contains("Alice moved to Lisbon in May"),
        "{context:?}"
    );
    assert!(
        !context[1].contains("Where did Alice move to?"),
        "{context:?}"
    );
}

fn add_local_model(home: &common::Home, base_url: &str) {
    let out = home.run(&[
        "models",
        "add",
        "--tier",
        "local_small",
        "--provider",
        "local",
        "--protocol",
        "ollama",
        "--base-url",
        base_url,
        "--model",
        "qwen2.5:1.5b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Summaries of one level in the memory file: (method, content) rows.
fn summaries(home: &common::Home, level: &str) -> Vec<(String, String)> {
    let Ok(conn) = Connection::open_with_flags(memory_db(home), OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let Ok(mut stmt) = conn.prepare(
        "SELECT method, content FROM memory_summaries WHERE level = ?1 ORDER BY summary_id",
    ) else {
        return Vec::new();
    };
    stmt.query_map([level], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_long_conversation_gets_rolling_summaries_and_the_model_rewrites_the_thread_summary() {
    const REWRITE: &str = "They planned the trip to Lisbon in detail.";
    let (model, _stop) = start_model_with(opticlaw_models::replay::Trace::repeating(REWRITE));
    let home = common::Home::init();
    add_local_model(&home, &model.base_url());
    let daemon = home.serve();
    // 32 messages and their 32 model answers: 64 turns, one compaction step.
    for i in 0..32 {
        daemon.send(
            "trip",
            &format!("Day {i} of the trip: we visit place number {i}"),
        );
        daemon.wait_for_replies("trip", i + 1, Duration::from_secs(30));
    }
    wait_until(Duration::from_secs(30), "the thread's summaries", || {
        summaries(&home, "macro")
            .first()
            .is_some_and(|(method, _)| method.starts_with("model:"))
    });
    let micro = summaries(&home, "micro");
    assert_eq!(micro.len(), 8, "{micro:?}");
    assert!(
        micro.iter().all(|(method, _)| method == "extractive"),
        "{micro:?}"
    );
    assert!(
        micro[0].1.contains("Day 0 of the trip"),
        "a micro summary quotes its turns: {micro:?}"
    );
    let thread = summaries(&home, "macro");
    assert_eq!(
        thread,
        vec![("model:qwen2.5:1.5b".to_owned(), REWRITE.to_owned())]
    );
    // The session is still open: no meso summary yet.
    assert!(summaries(&home, "meso").is_empty());
    // The model was asked for the summary with the turns' digest, once.
    let asked: Vec<String> = model
        .requests()
        .iter()
        .filter_map(|r| {
            let messages = r.body["messages"].as_array()?;
            let user = messages.iter().rev().find(|m| m["role"] == "user")?;
            Some(user["content"].as_str()?.to_owned())
        })
        .filter(|text| text.starts_with("Summarise everything"))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].contains("Day 31 of the trip"), "{}", asked[0]);
}
