//! The model path end to end: a real daemon, a scripted provider on
//! loopback (`opticlaw_models::replay::ReplayServer`), and the user's view.
//!
//! - a message no rule answers gets the model's reply, and the provider saw
//!   exactly the request the golden trace records;
//! - `opticlaw serve --model replay:FILE` answers offline from a trace;
//! - a daemon with a model configured and a reminder firing makes zero
//!   provider calls;
//! - a provider 500, a timeout and a 401 each give the user a clear reply,
//!   complete the event (nothing is lost or redone after a restart), and
//!   never show the API key.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Daemon, Home};
use opticlaw_models::replay::{RecordedRequest, ReplayServer, Trace};
use opticlaw_store::rusqlite;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

/// A scripted provider on loopback, served by a tokio runtime on its own
/// thread for as long as this value lives.
struct ScriptedProvider {
    server: Arc<ReplayServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedProvider {
    fn start(trace: Trace) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Arc::new(ReplayServer::start(trace).await.unwrap());
                ready_tx.send(server.clone()).unwrap();
                let _ = stopped.await;
            });
        });
        Self {
            server: ready_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn base_url(&self) -> String {
        self.server.base_url()
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }
}

impl Drop for ScriptedProvider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `opticlaw models add ...` in `home`; panics with its output on failure.
fn models_add(home: &Home, args: &[&str]) -> String {
    let mut argv = vec!["models", "add"];
    argv.extend_from_slice(args);
    let out = home.run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "models add failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Configures `local_small` on an Ollama-protocol provider at `url`.
fn configure_model(home: &Home, url: &str, extra: &[&str]) {
    let mut args = vec![
        "--tier",
        "local_small",
        "--provider",
        "local",
        "--protocol",
        "ollama",
        "--base-url",
        url,
        "--model",
        "qwen2.5:1.5b",
        "--max-tokens",
        "256",
        "--temperature",
        "0.2",
    ];
    args.extend_from_slice(extra);
    models_add(home, &args);
}

/// `opticlaw serve ARGS...` with `env`, stderr to `log` when given; waits
/// for the ready line.
fn serve(home: &Home, args: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> Daemon {
    let mut argv = vec!["serve"];
    argv.extend_from_slice(args);
    let mut command: Command = home.command(&argv);
    command
        .env("OPTICLAW_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        });
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("ready on"), "no ready line: {line:?}");
    Daemon {
        child,
        base: format!("http://127.0.0.1:{}", home.port),
        token: home.token(),
    }
}

/// Reads the store file with a plain connection (the daemon may run).
fn query(home: &Home, sql: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(home.path().join("data/opticlaw.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = conn.prepare(sql).unwrap();
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(n) => Value::from(n),
                        rusqlite::types::ValueRef::Real(x) => Value::from(x),
                        rusqlite::types::ValueRef::Text(t) => {
                            Value::from(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(_) => Value::from("<blob>"),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Fails if any byte run of the store file or its WAL is `secret`.
fn assert_not_in_store(home: &Home, secret: &str) {
    let db = std::fs::read(home.path().join("data/opticlaw.db")).unwrap();
    let wal = std::fs::read(home.path().join("data/opticlaw.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "key in the store"
        );
    }
}

fn texts(replies: &[Value]) -> Vec<String> {
    replies
        .iter()
        .map(|r| r["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn unanswered_message_gets_the_model_reply_and_the_exact_request_is_sent() {
    let trace = Trace::load(&fixture("hello_ollama.json")).unwrap();
    let expected = trace.turns[0].request.clone().unwrap();
    let provider = ScriptedProvider::start(trace);
    let home = Home::init();
    configure_model(&home, &provider.base_url(), &[]);
    let daemon = serve(&home, &[], &[], None);

    daemon.send("q", "What is the capital of Australia?");
    let replies = daemon.wait_for_replies("q", 1, Duration::from_secs(30));
    assert_eq!(
        texts(&replies),
        ["Canberra is the capital of Australia."],
        "{replies:?}"
    );
    let requests = provider.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/api/chat");
    assert_eq!(requests[0].body, expected, "the request the model got");

    // A rule still answers without the model.
    daemon.send("q", "/time");
    daemon.wait_for_replies("q", 2, Duration::from_secs(30));
    assert_eq!(provider.requests().len(), 1);

    // The call is accounted, with the gate decision that allowed it.
    let usage = query(
        &home,
        "SELECT provider, model, tier, reason, outcome, input_tokens, output_tokens FROM model_usage",
    );
    assert_eq!(
        usage,
        [vec![
            json!("local"),
            json!("qwen2.5:1.5b"),
            json!("local_small"),
            json!("selected"),
            json!("ok"),
            json!(31),
            json!(9),
        ]]
    );
    let allowed = query(
        &home,
        "SELECT COUNT(*) FROM model_gate_decisions WHERE allowed = 1",
    );
    assert_eq!(allowed[0][0], 1);
    let out = home.run(&["models", "usage", "--json"]);
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["calls"], 1);
    assert_eq!(line["input_tokens"], 31);
    assert_eq!(line["reason"], "selected");
}

#[test]
fn serve_with_a_replayed_model_answers_offline() {
    let home = Home::init();
    let file = fixture("hello_ollama.json");
    let spec = format!("replay:{}", file.display());
    let daemon = serve(&home, &["--model", &spec], &[], None);
    daemon.send("r", "What is the capital of Australia?");
    let replies = daemon.wait_for_replies("r", 1, Duration::from_secs(30));
    assert_eq!(texts(&replies), ["Canberra is the capital of Australia."]);
    let outcome = query(
        &home,
        "SELECT json_extract(outcome, '$.path'), json_extract(outcome, '$.answer.provider') FROM events",
    );
    assert_eq!(outcome, [vec![Value::from("model"), Value::from("replay")]]);

    // A bad spec is refused with a clear error before anything starts.
    let out = home.run(&["serve", "--model", "gpt-4o"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replay:FILE"), "{err}");
}

#[test]
#[cfg(target_os = "linux")]
fn idle_daemon_with_a_model_makes_zero_provider_calls_through_a_reminder() {
    let provider = ScriptedProvider::start(Trace::load(&fixture("hello_ollama.json")).unwrap());
    let home = Home::init();
    configure_model(&home, &provider.base_url(), &[]);
    let daemon = serve(&home, &[], &[], None);

    daemon.send("idle", "remind me in 3 seconds to stretch");
    let replies = daemon.wait_for_replies("idle", 2, Duration::from_secs(30));
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1]["kind"], "reminder");
    assert_eq!(replies[1]["text"], "⏰ Reminder: stretch");
    // Idle on after the reminder: still nothing.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(provider.requests().len(), 0, "idle provider calls");
    assert_eq!(
        query(&home, "SELECT COUNT(*) FROM model_usage")[0][0],
        0,
        "no usage recorded"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn provider_faults_give_clear_replies_and_complete_the_event() {
    const KEY: &str = "sk-test-9f8e7d6c5b4a-do-not-leak";
    let provider = ScriptedProvider::start(Trace::load(&fixture("faults_ollama.json")).unwrap());
    let home = Home::init();
    configure_model(
        &home,
        &provider.base_url(),
        &[
            "--timeout-ms",
            "500",
            "--api-key-env",
            "OPTICLAW_TEST_MODEL_KEY",
        ],
    );
    let log = home.path().join("daemon.log");
    let env = [("OPTICLAW_TEST_MODEL_KEY", KEY)];
    let daemon = serve(&home, &[], &env, Some(&log));

    let questions = [
        "What's a good name for a cat?",
        "Summarize the French revolution",
        "What is the capital of Australia?",
        "Tell me a joke about owls",
    ];
    for (i, question) in questions.iter().enumerate() {
        daemon.send("f", question);
        let replies = daemon.wait_for_replies("f", i + 1, Duration::from_secs(30));
        assert_eq!(
            replies.len(),
            i + 1,
            "no reply to {question:?}: {replies:?}"
        );
    }
    let replies = texts(&daemon.replies("f"));
    assert!(
        replies[0].starts_with("Sorry, I could not answer that: the model provider failed")
            && replies[0].contains("HTTP 500")
            && replies[0].contains("opticlaw models test"),
        "{}",
        replies[0]
    );
    assert!(
        replies[1].contains("no reply within 500 ms"),
        "{}",
        replies[1]
    );
    assert_eq!(replies[2], "Back again: Canberra.");
    assert!(
        replies[3].contains("HTTP 401") && replies[3].contains("invalid credentials"),
        "{}",
        replies[3]
    );
    // The key was sent, and shows nowhere.
    let sent = provider.requests();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].headers["authorization"], format!("Bearer {KEY}"));
    for reply in &replies {
        assert!(!reply.contains(KEY), "key in a reply: {reply}");
    }

    // Every event is done, with the error as its outcome.
    let events = query(
        &home,
        "SELECT status, json_extract(outcome, '$.path'), json_extract(outcome, '$.error') IS NOT NULL FROM events ORDER BY seq",
    );
    assert_eq!(events.len(), 4);
    for (i, row) in events.iter().enumerate() {
        assert_eq!(row[0], "done", "event {i}: {row:?}");
        assert_eq!(row[1], "model", "event {i}: {row:?}");
        assert_eq!(row[2], i64::from(i != 2), "event {i}: {row:?}");
    }
    let outcomes = query(&home, "SELECT outcome FROM model_usage ORDER BY id");
    assert_eq!(
        outcomes.concat(),
        ["http_error", "timeout", "ok", "http_error"].map(Value::from)
    );
    assert!(daemon.terminate().success());

    // Nothing is redone after a restart, and nothing anywhere holds the key.
    let daemon = serve(&home, &[], &env, None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.replies("f").len(), 4);
    assert_eq!(provider.requests().len(), 4);
    drop(daemon);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("model call failed"), "{log_text}");
    assert!(!log_text.contains(KEY), "key in the daemon's log");
    assert_not_in_store(&home, KEY);
}

#[test]
fn a_spent_budget_is_said_plainly_and_no_model_is_called() {
    let provider = ScriptedProvider::start(Trace::load(&fixture("hello_ollama.json")).unwrap());
    let home = Home::init();
    configure_model(
        &home,
        &provider.base_url(),
        &["--price-in", "2.5", "--price-out", "10"],
    );
    let mut config = std::fs::read_to_string(home.config_file()).unwrap();
    config.push_str("\n[models.budget]\ndaily_usd = 0.000001\n");
    std::fs::write(home.config_file(), config).unwrap();
    let daemon = serve(&home, &[], &[], None);

    daemon.send("b", "What is the capital of Australia?");
    let replies = texts(&daemon.wait_for_replies("b", 1, Duration::from_secs(30)));
    assert!(
        replies[0].contains("daily budget reached")
            && replies[0].contains("Raise `models.budget.daily_usd`"),
        "{replies:?}"
    );
    assert_eq!(provider.requests().len(), 0);
    // The refusal is on record: a gate decision that did not allow the call.
    let refused = query(
        &home,
        "SELECT COUNT(*) FROM model_gate_decisions WHERE allowed = 0",
    );
    assert_eq!(refused[0][0], 1);
}

#[test]
fn models_cli_lists_adds_and_tests() {
    let provider = ScriptedProvider::start(Trace::load(&fixture("hello_ollama.json")).unwrap());
    let home = Home::init();
    let out = home.run(&["models", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No models are configured"));

    let before = std::fs::read_to_string(home.config_file()).unwrap();
    configure_model(&home, &provider.base_url(), &[]);
    let after = std::fs::read_to_string(home.config_file()).unwrap();
    // Every line of the file, comments included, is still there, in order.
    let mut kept = before.lines().peekable();
    for line in after.lines() {
        if kept.peek() == Some(&line) {
            kept.next();
        }
    }
    assert_eq!(kept.next(), None, "a line was lost:\n{after}");
    assert!(after.contains("[[models.tiers]]"), "{after}");

    let out = home.run(&["models", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("local_small") && text.contains("local/qwen2.5:1.5b"),
        "{text}"
    );

    // A duplicate tier is refused and the file is left alone.
    let out = home.run(&[
        "models",
        "add",
        "--tier",
        "local_small",
        "--provider",
        "local",
        "--model",
        "other",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"));
    assert_eq!(std::fs::read_to_string(home.config_file()).unwrap(), after);

    let out = home.run(&["models", "test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("local_small local/qwen2.5:1.5b: ok") && text.contains("tokens in"),
        "{text}"
    );
    assert_eq!(provider.requests().len(), 1);

    // The test call is accounted: tokens, latency and its reason.
    let rows = query(
        &home,
        "SELECT reason, outcome, model, input_tokens, output_tokens, cost_usd, latency_ms FROM model_usage",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..3],
        ["models test", "ok", "qwen2.5:1.5b"].map(Value::from)
    );
    assert!(rows[0][3].as_i64().unwrap() > 0 && rows[0][4].as_i64().unwrap() > 0);
    assert!(rows[0][6].as_i64().unwrap() >= 0);
    let out = home.run(&["models", "usage"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("models test") && text.contains("qwen2.5:1.5b"),
        "{text}"
    );
}

/// An entry in the real kernel keyring, removed when dropped.
struct KeyringEntry(String);

impl Drop for KeyringEntry {
    fn drop(&mut self) {
        let _ = opticlaw_models::secret::delete_from_keyring(&self.0);
    }
}

#[test]
#[cfg(target_os = "linux")]
fn keyring_key_stored_by_models_add_reaches_the_provider_and_shows_nowhere() {
    use std::io::Write;
    const KEY: &str = "sk-keyring-71c3e0d9-never-print";
    let entry = KeyringEntry(format!("opticlaw-test-cli-{}", std::process::id()));
    let provider = ScriptedProvider::start(Trace::load(&fixture("hello_ollama.json")).unwrap());
    let home = Home::init();
    let mut outputs = String::new();

    // `models add` reads the key from stdin and stores it in the keyring.
    let mut add = home.command(&[
        "models",
        "add",
        "--tier",
        "local_small",
        "--provider",
        "local",
        "--protocol",
        "ollama",
        "--base-url",
        &provider.base_url(),
        "--model",
        "qwen2.5:1.5b",
        "--max-tokens",
        "256",
        "--temperature",
        "0.2",
        "--api-key-keyring",
        &entry.0,
        "--key-from-stdin",
    ]);
    let mut child = add
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{KEY}").unwrap();
    let out = child.wait_with_output().unwrap();
    outputs += &String::from_utf8_lossy(&out.stdout);
    outputs += &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{outputs}");
    assert!(outputs.contains(&format!(
        "stored the key in the OS keyring as entry {}",
        entry.0
    )));
    let config = std::fs::read_to_string(home.config_file()).unwrap();
    assert!(
        config.contains(&format!("api_key_keyring = \"{}\"", entry.0)),
        "{config}"
    );
    assert!(opticlaw_models::secret::keyring_has(&entry.0).unwrap());

    for args in [
        &["models", "list"][..],
        &["models", "test"],
        &["models", "usage"],
    ] {
        let out = home.run(args);
        outputs += &String::from_utf8_lossy(&out.stdout);
        outputs += &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {outputs}");
    }
    assert!(
        outputs.contains(&format!("key from keyring entry {} (present)", entry.0)),
        "{outputs}"
    );

    let log = home.path().join("daemon.log");
    let daemon = serve(&home, &[], &[], Some(&log));
    daemon.send("k", "What is the capital of Australia?");
    let replies = texts(&daemon.wait_for_replies("k", 1, Duration::from_secs(30)));
    assert_eq!(replies.len(), 1);
    outputs += &replies.join("\n");
    assert!(daemon.terminate().success());

    // The provider got the key, from `models test` and from the daemon...
    let sent = provider.requests();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        assert_eq!(request.headers["authorization"], format!("Bearer {KEY}"));
        assert!(!request.body.to_string().contains(KEY), "key in a prompt");
    }
    // ...and no output, log, config or store byte holds it.
    outputs += &std::fs::read_to_string(&log).unwrap();
    outputs += &std::fs::read_to_string(home.config_file()).unwrap();
    assert!(!outputs.contains(KEY), "key in an output");
    assert_not_in_store(&home, KEY);
}

#[test]
fn triage_signals_route_private_data_locally_and_track_success_by_domain() {
    let provider = ScriptedProvider::start(Trace::load(&fixture("any_protocol.json")).unwrap());
    let home = Home::init();
    // A weak free local model and a strong cloud one on the same server.
    models_add(
        &home,
        &[
            "--tier",
            "local_small",
            "--provider",
            "local",
            "--protocol",
            "ollama",
            "--base-url",
            &provider.base_url(),
            "--model",
            "tiny",
            "--capability",
            "0.1",
        ],
    );
    models_add(
        &home,
        &[
            "--tier",
            "cloud_primary",
            "--provider",
            "cloud",
            "--protocol",
            "openai_compatible",
            "--locality",
            "cloud",
            "--base-url",
            &provider.base_url(),
            "--model",
            "big",
            "--capability",
            "0.95",
        ],
    );
    let daemon = serve(&home, &[], &[], None);
    let questions = [
        // Out of scope, open-ended: too hard for the weak model, to the cloud.
        "Explain why the sky looks blue at noon but red at sunset",
        // Banking: private, so it stays local although the model is weak.
        "How much money is in my checking account?",
        // An email address is private too.
        "Draft a note to sam.lee@example.com about the budget",
    ];
    for (i, question) in questions.iter().enumerate() {
        daemon.send("p", question);
        let replies = daemon.wait_for_replies("p", i + 1, Duration::from_secs(30));
        assert_eq!(replies.len(), i + 1, "{replies:?}");
    }
    assert!(daemon.terminate().success());
    let paths: Vec<String> = provider.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/v1/chat/completions", "/api/chat", "/api/chat"],
        "{paths:?}"
    );

    let outcomes = query(
        &home,
        "SELECT json_extract(outcome, '$.answer.model'), json_extract(outcome, '$.answer.domain'), json_extract(outcome, '$.answer.private') FROM events ORDER BY seq",
    );
    assert_eq!(
        outcomes[0][..],
        [json!("big"), json!("chat"), json!(0)],
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1][..],
        [json!("tiny"), json!("banking"), json!(1)],
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2][0], "tiny", "{outcomes:?}");
    assert_eq!(outcomes[2][2], 1, "{outcomes:?}");
    // The cloud rung was refused for privacy, with that reason recorded.
    let refused = query(
        &home,
        "SELECT COUNT(*) FROM model_gate_decisions WHERE domain = 'banking' AND tier = 'cloud_primary' AND allowed = 0 AND reason = 'private data stays on local models'",
    );
    assert_eq!(refused[0][0], 1);
    // Success is tracked per model and the classifier's domain.
    let stats = query(
        &home,
        "SELECT model, domain, attempts, successes FROM model_success ORDER BY model, domain",
    );
    assert!(
        stats.contains(&vec![json!("tiny"), json!("banking"), json!(1), json!(1)]),
        "{stats:?}"
    );
}
