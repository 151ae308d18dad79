//! Accounting on a real SQLite file: the migrations apply, a call's outcome
//! is persisted, "why was this model called?" is answered, usage sums by
//! day, model and reason, and a restarted router remembers.

mod common;

use common::{ManualClock, NOON, fault_turn, ladder, request, text_turn, trace};
use opticlaw_models::accounting::{self, MIGRATIONS};
use opticlaw_models::replay::{Fault, ReplayServer};
use opticlaw_models::{ModelRouter, Providers, Task, Tier};
use rusqlite::Connection;

fn database() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("opticlaw.db")).unwrap();
    for sql in MIGRATIONS {
        conn.execute_batch(sql).unwrap();
    }
    (dir, conn)
}

#[test]
fn migrations_create_only_model_prefixed_tables() {
    let (_dir, conn) = database();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "model_breakers",
            "model_gate_decisions",
            "model_success",
            "model_usage"
        ]
    );
}

#[tokio::test]
async fn outcome_is_persisted_and_explains_why_each_model_was_called() {
    let (_dir, conn) = database();
    let server = ReplayServer::start(trace(vec![
        fault_turn(Fault::Status {
            status: 500,
            retry_after_s: None,
            body: None,
        }),
        text_turn("A careful plan."),
    ]))
    .await
    .unwrap();
    let mut config = ladder(&server.base_url(), 5_000);
    config.tiers.retain(|t| t.tier >= Tier::CloudPrimary);
    let providers = Providers::from_config(&config).unwrap();
    let clock = ManualClock::new(NOON);
    let router = ModelRouter::with_clock(config.clone(), clock.clock()).unwrap();
    let mut task = Task::new("task-42", "alice", "plan", 0.8);
    task.est_input_tokens = 1_000;
    let outcome = router
        .complete(&task, &request("Plan my week."), &providers)
        .await;
    let done = outcome.result.as_ref().unwrap();
    assert_eq!(done.selection.tier, Tier::CloudSecondary);
    accounting::persist_outcome(&conn, &outcome).unwrap();

    let why = accounting::decisions_for_task(&conn, "task-42").unwrap();
    assert_eq!(why, outcome.decisions);
    assert!(
        why.iter()
            .all(|d| d.allowed && d.reason.starts_with("value gate: expected gain"))
    );

    let summary = accounting::usage_summary(&conn, "2025-03-01").unwrap();
    let reasons: Vec<(&str, &str, u64)> = summary
        .iter()
        .map(|s| (s.model.as_str(), s.reason.as_str(), s.calls))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "claude-sonnet-4-5",
                "fallback after http_error on openai",
                1
            ),
            ("gpt-4o", "selected", 1),
        ]
    );
    // Cost comes from the price table and the provider's reported usage.
    let usage = done.response.usage;
    let expected = (usage.input_tokens as f64 * 3.0 + usage.output_tokens as f64 * 15.0) / 1e6;
    assert!((summary[0].cost_usd - expected).abs() < 1e-12);
    assert_eq!(summary[0].input_tokens, usage.input_tokens);
    let spent = accounting::spent_on(&conn, "alice", "2025-03-01").unwrap();
    assert!((spent - expected).abs() < 1e-12);

    // A restarted router remembers spending, success and breakers.
    let snapshot = accounting::load_snapshot(&conn, "2025-03-01").unwrap();
    let restarted = ModelRouter::with_clock(config, clock.clock()).unwrap();
    restarted.restore(snapshot);
    assert!((restarted.spent_today("alice") - expected).abs() < 1e-12);
    assert_eq!(restarted.breaker("openai").consecutive_failures, 1);
    assert_eq!(
        accounting::load_breaker(&conn, "openai")
            .unwrap()
            .unwrap()
            .consecutive_failures,
        1
    );
}

#[test]
fn success_statistics_accumulate_per_model_and_domain() {
    let (_dir, conn) = database();
    accounting::record_result(&conn, "m", "email", true, 1).unwrap();
    accounting::record_result(&conn, "m", "email", false, 2).unwrap();
    accounting::record_result(&conn, "m", "code", true, 3).unwrap();
    let snapshot = accounting::load_snapshot(&conn, "2025-03-01").unwrap();
    let mut stats = snapshot.stats;
    stats.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(stats[0].1, "code");
    assert_eq!((stats[1].2.attempts, stats[1].2.successes), (2, 1));
}

#[tokio::test]
async fn refused_route_still_records_its_decisions() {
    let (_dir, conn) = database();
    let mut config = ladder("http://127.0.0.1:9", 1_000);
    config.budget.daily_usd = Some(0.0);
    config.tiers.retain(|t| t.tier >= Tier::CloudPrimary);
    let router = ModelRouter::new(config).unwrap();
    let mut task = Task::new("t-budget", "alice", "plan", 0.8);
    task.est_input_tokens = 500;
    let outcome = router
        .complete(&task, &request("plan"), &Providers::default())
        .await;
    let err = outcome.result.as_ref().unwrap_err();
    assert!(err.to_string().starts_with("daily budget reached"), "{err}");
    accounting::persist_outcome(&conn, &outcome).unwrap();
    let why = accounting::decisions_for_task(&conn, "t-budget").unwrap();
    assert_eq!(why.len(), 2);
    assert!(
        why.iter()
            .all(|d| !d.allowed && d.reason.contains("daily budget reached"))
    );
}
