//! The orchestrator inside the real daemon: chat commands, approvals from
//! the right and the wrong chat, the audit log against an edited file, and
//! plans that survive kill -9 without repeating or losing a step.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Home, configure, granted_dir, reply_containing, ureq_like};
use serde_json::{Value, json};

fn sandbox_available() -> bool {
    opticlaw_sandbox_probe()
}

fn opticlaw_sandbox_probe() -> bool {
    // The daemon logs and disables /run without a sandbox; mirror its check.
    std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "--pid",
            "--fork",
            "--net",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

fn send_as(daemon: &Daemon, user: &str, thread: &str, text: &str) {
    let (status, body) = daemon.post(json!({ "text": text, "thread_id": thread, "user_id": user }));
    assert_eq!(status, 202, "{body}");
}

#[test]
fn run_waits_for_approval_in_the_same_chat_and_audit_verify_catches_edits() {
    if !sandbox_available() {
        eprintln!("skipped: no user namespaces here");
        return;
    }
    let (_keep, grant) = granted_dir();
    let home = Home::init();
    configure(
        &home,
        &grant,
        &[("shell", "exec", 2), ("file.read", "read", 1)],
    );
    let daemon = home.serve();

    send_as(
        &daemon,
        "owner",
        "t1",
        "/run echo hello > out.txt && cat out.txt",
    );
    let prompt = reply_containing(&daemon, "t1", "Approval needed");
    assert!(
        prompt.contains("echo hello > out.txt"),
        "the exact action is shown: {prompt}"
    );
    let id = prompt
        .split("/approve ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(!grant.join("out.txt").exists());

    // The CLI lists it.
    let listed = home.run(&["approvals", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));

    // Another chat, then another user: refused, nothing runs.
    send_as(&daemon, "owner", "t2", &format!("/approve {id}"));
    let refused = reply_containing(&daemon, "t2", "refused");
    assert!(refused.contains("another user or chat"), "{refused}");
    send_as(&daemon, "mallory", "t1", &format!("/approve {id}"));
    reply_containing(&daemon, "t1", "belongs to another user or chat");
    assert!(!grant.join("out.txt").exists());

    send_as(&daemon, "owner", "t1", &format!("/approve {id}"));
    let done = reply_containing(&daemon, "t1", "Done:");
    assert!(done.contains("hello"), "{done}");
    assert_eq!(
        std::fs::read_to_string(grant.join("out.txt")).unwrap(),
        "hello\n"
    );

    // /read of a file outside the grant is refused.
    // (not /etc/passwd: the planner holds reads of secret-looking paths for approval)
    send_as(&daemon, "owner", "t3", "/read /etc/hostname");
    reply_containing(&daemon, "t3", "outside every granted directory");
    drop(daemon);

    let verify = home.run(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{out}");
    assert!(out.contains("intact"), "{out}");

    // The signing key is in its own 0600 file and nowhere in the database.
    let key = std::fs::read_to_string(home.path().join("data").join("token_signing.key")).unwrap();
    let data = home.path().join("data");
    let mut db_bytes = std::fs::read(data.join("opticlaw.db")).unwrap();
    db_bytes.extend(std::fs::read(data.join("opticlaw.db-wal")).unwrap_or_default());
    let db_text = String::from_utf8_lossy(&db_bytes);
    assert!(
        !db_text.contains(key.trim()),
        "the signing key leaked into the store"
    );

    // Edit one record behind the log's back (dropping the guard first).
    let db = home.path().join("data").join("opticlaw.db");
    let conn = rusqlite_conn(&db);
    conn.execute_batch(
        "DROP TRIGGER security_audit_no_update; DROP TRIGGER security_audit_no_delete;
         UPDATE security_audit SET actor = 'someone-else' WHERE seq = 2;",
    )
    .unwrap();
    drop(conn);
    let verify = home.run(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(verify.status.code(), Some(1), "{out}");
    assert!(out.contains("record 2") && out.contains("Edited"), "{out}");
}

#[test]
fn sandboxed_commands_cannot_read_the_daemons_home() {
    if !sandbox_available() {
        eprintln!("skipped: no user namespaces here");
        return;
    }
    let (_keep, grant) = granted_dir();
    // Outside /tmp, so only the hiding (not the sandbox's private /tmp)
    // keeps the token from the command.
    let home = Home::init_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    configure(&home, &grant, &[("shell", "exec", 1)]);
    let token = std::fs::read_to_string(home.path().join("api_token")).unwrap();
    let daemon = home.serve();
    let root = home.path().canonicalize().unwrap();
    send_as(
        &daemon,
        "owner",
        "h1",
        &format!(
            "/run ls -a {root}; cat {root}/api_token {root}/data/token_signing.key; echo end-of-probe",
            root = root.display()
        ),
    );
    let reply = reply_containing(&daemon, "h1", "end-of-probe");
    assert!(
        !reply.contains(token.trim()),
        "the API token reached a sandboxed command: {reply}"
    );
    assert!(
        !reply.contains("config.toml"),
        "the daemon's home is visible to the command: {reply}"
    );
}

#[test]
fn audit_verify_catches_a_deleted_record() {
    let (_keep, grant) = granted_dir();
    std::fs::write(grant.join("a.txt"), "a").unwrap();
    let home = Home::init();
    configure(&home, &grant, &[("file.read", "read", 1)]);
    let daemon = home.serve();
    for thread in ["r1", "r2"] {
        send_as(&daemon, "owner", thread, "/read a.txt");
        reply_containing(&daemon, thread, "Done:");
    }
    drop(daemon);
    assert!(home.run(&["audit", "verify"]).status.success());
    let conn = rusqlite_conn(&home.path().join("data").join("opticlaw.db"));
    conn.execute_batch(
        "DROP TRIGGER security_audit_no_delete; DELETE FROM security_audit WHERE seq = 3;",
    )
    .unwrap();
    drop(conn);
    let verify = home.run(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(verify.status.code(), Some(1), "{out}");
    assert!(out.contains("record 3") && out.contains("Missing"), "{out}");
}

fn rusqlite_conn(db: &Path) -> opticlaw_store::rusqlite::Connection {
    opticlaw_store::rusqlite::Connection::open(db).unwrap()
}

fn submit_plan(daemon: &Daemon, graph: &Value) -> String {
    let (status, body) = ureq_like::post(
        &format!("{}/v1/tasks", daemon.base),
        &daemon.token,
        &json!({ "graph": graph, "thread_id": "plan" }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn task_state(daemon: &Daemon, task: &str) -> Value {
    daemon.get(&format!("/v1/tasks/{task}"))
}

fn append_plan(task_id: &str, steps: usize) -> Value {
    let nodes: Vec<Value> = (1..=steps)
        .map(|i| {
            let deps: Vec<String> = if i == 1 { vec![] } else { vec![format!("s{}", i - 1)] };
            json!({
                "id": format!("s{i}"),
                "kind": "tool",
                "deps": deps,
                "policy": { "requires_approval": false },
                "budget": { "max_ms": 5000, "max_cost": 0.0 },
                "params": { "tool": "file.write", "args": { "path": "journal.txt", "content": format!("step {i}\n"), "mode": "append" } },
            })
        })
        .collect();
    json!({ "task_id": task_id, "goal": "append steps", "nodes": nodes })
}

/// A small xorshift: the kill points differ per run and the seed is printed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_at_random_points_never_repeats_or_loses_a_step() {
    const RUNS: usize = 20;
    const STEPS: usize = 8;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill-point seed {seed}");
    let mut rng = Rng(seed);
    let (_keep, grant) = granted_dir();
    let home = Home::init();
    configure(&home, &grant, &[("file.write", "write", 1)]);
    let expected: String = (1..=STEPS).map(|i| format!("step {i}\n")).collect();
    let mut interrupted = 0;
    for run in 0..RUNS {
        let file = grant.join("journal.txt");
        let _ = std::fs::remove_file(&file);
        let task_id = uuid::Uuid::now_v7().to_string();
        let daemon = home.serve();
        submit_plan(&daemon, &append_plan(&task_id, STEPS));
        // Kill somewhere in the plan, and a second time on some runs while
        // the restarted daemon recovers. A step takes well under a
        // millisecond on a quiet machine, so a blind sleep may wait out the
        // whole plan: wait until a random number of steps is written, then
        // kill at once (more steps may land before the signal does).
        let kill_after = 1 + rng.below(STEPS as u64 - 1) as usize;
        let wait_until = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&file).map_or(0, |t| t.lines().count()) < kill_after
            && Instant::now() < wait_until
        {
            std::thread::sleep(Duration::from_micros(100));
        }
        daemon.kill9();
        let lines_at_kill = std::fs::read_to_string(&file).map_or(0, |t| t.lines().count());
        eprintln!("run {run}: {lines_at_kill} of {STEPS} steps written at the kill");
        if (1..STEPS).contains(&lines_at_kill) {
            interrupted += 1;
        }
        let mut daemon = home.serve();
        if rng.below(3) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(5_000)));
            daemon.kill9();
            daemon = home.serve();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let view = loop {
            let view = task_state(&daemon, &task_id);
            if view["state"] == "completed" || Instant::now() > deadline {
                break view;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            view["state"], "completed",
            "run {run} (seed {seed}): {view:#}"
        );
        let written = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            written, expected,
            "run {run} (seed {seed}): duplicated or lost step"
        );
        drop(daemon);
    }
    eprintln!("{interrupted} of {RUNS} kills landed between two steps of a plan");
    assert!(
        interrupted > 0,
        "no kill landed mid-plan: the test proved nothing"
    );
}

fn wait_state(daemon: &Daemon, task: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = task_state(daemon, task);
        if view["state"] == state || Instant::now() > deadline {
            assert_eq!(view["state"], state, "{view:#}");
            return view;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout_of(home: &Home, args: &[&str]) -> String {
    let out = home.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_approves_lists_and_replays_through_the_daemon() {
    if !sandbox_available() {
        eprintln!("skipped: no user namespaces here");
        return;
    }
    let (_keep, grant) = granted_dir();
    let home = Home::init();
    configure(
        &home,
        &grant,
        &[("file.write", "write", 2), ("shell", "exec", 1)],
    );
    let daemon = home.serve();

    let write = uuid::Uuid::now_v7().to_string();
    let mut plan = append_plan(&write, 1);
    plan["nodes"][0]["params"]["args"]["mode"] = json!("overwrite");
    submit_plan(&daemon, &plan);
    wait_state(&daemon, &write, "blocked");
    let listed = stdout_of(&home, &["approvals", "list"]);
    let id = listed.split_whitespace().next().unwrap().to_owned();
    assert!(listed.contains("file.write"), "{listed}");
    let approved = stdout_of(&home, &["approvals", "approve", &id]);
    assert!(approved.contains("Approved"), "{approved}");
    wait_state(&daemon, &write, "completed");
    assert_eq!(
        std::fs::read_to_string(grant.join("journal.txt")).unwrap(),
        "step 1\n"
    );

    let flaky = uuid::Uuid::now_v7().to_string();
    let plan = json!({
        "task_id": flaky,
        "goal": "needs a flag",
        "nodes": [{
            "id": "check", "kind": "tool", "deps": [],
            "policy": { "requires_approval": false },
            "budget": { "max_ms": 5000, "max_cost": 0.0 },
            "params": { "tool": "shell", "args": { "command": "test -f flag" } },
        }],
    });
    submit_plan(&daemon, &plan);
    wait_state(&daemon, &flaky, "failed");
    let letters = stdout_of(&home, &["dlq", "list"]);
    assert!(
        letters.contains(&flaky) && letters.contains("check"),
        "{letters}"
    );
    let shown = stdout_of(&home, &["dlq", "show", &flaky]);
    assert!(
        shown.contains("running -> blocked") && shown.contains("attempt 3"),
        "{shown}"
    );
    std::fs::write(grant.join("flag"), "").unwrap();
    stdout_of(&home, &["dlq", "replay", &flaky]);
    wait_state(&daemon, &flaky, "completed");
    assert!(stdout_of(&home, &["dlq", "list"]).contains("empty"));
}
