//! Persistence: usage, gate decisions, success statistics and breakers, as
//! functions over a borrowed [`rusqlite::Connection`] (run them inside
//! `StoreHandle::call`), and the SQL that creates their tables.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::breaker::Breaker;
use crate::execute::{Outcome, UsageRecord};
use crate::gate::GateDecision;
use crate::router::{RouterSnapshot, SuccessStat};

/// Migrations for the store's list (append in this order; each entry moves
/// the schema one version). Every table is prefixed `model_`.
pub const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE model_usage (
        id            INTEGER PRIMARY KEY,
        at_ms         INTEGER NOT NULL,
        day           TEXT    NOT NULL,
        task_id       TEXT    NOT NULL,
        user_id       TEXT    NOT NULL,
        domain        TEXT    NOT NULL,
        provider      TEXT    NOT NULL,
        model         TEXT    NOT NULL,
        tier          TEXT    NOT NULL,
        reason        TEXT    NOT NULL,
        outcome       TEXT    NOT NULL,
        input_tokens  INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd      REAL    NOT NULL,
        latency_ms    INTEGER NOT NULL
    );
    CREATE INDEX model_usage_by_day ON model_usage (day, user_id);
    CREATE INDEX model_usage_by_task ON model_usage (task_id);

    CREATE TABLE model_gate_decisions (
        id                  INTEGER PRIMARY KEY,
        at_ms               INTEGER NOT NULL,
        task_id             TEXT    NOT NULL,
        user_id             TEXT    NOT NULL,
        domain              TEXT    NOT NULL,
        tier                TEXT    NOT NULL,
        provider            TEXT    NOT NULL,
        model               TEXT    NOT NULL,
        complexity          REAL    NOT NULL,
        capability          REAL    NOT NULL,
        p_success           REAL    NOT NULL,
        expected_gain_usd   REAL    NOT NULL,
        est_cost_usd        REAL    NOT NULL,
        est_latency_ms      INTEGER NOT NULL,
        latency_penalty_usd REAL    NOT NULL,
        allowed             INTEGER NOT NULL,
        reason              TEXT    NOT NULL
    );
    CREATE INDEX model_gate_decisions_by_task ON model_gate_decisions (task_id);

    CREATE TABLE model_success (
        model      TEXT    NOT NULL,
        domain     TEXT    NOT NULL,
        attempts   INTEGER NOT NULL,
        successes  INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (model, domain)
    );

    CREATE TABLE model_breakers (
        provider             TEXT    PRIMARY KEY,
        consecutive_failures INTEGER NOT NULL,
        open_until_ms        INTEGER NOT NULL,
        probe_started_ms     INTEGER NOT NULL
    );
"#];

/// Writes one usage row.
pub fn record_usage(conn: &Connection, usage: &UsageRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO model_usage (at_ms, day, task_id, user_id, domain, provider, model, tier,
             reason, outcome, input_tokens, output_tokens, cost_usd, latency_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        usage.at_ms,
        usage.day,
        usage.task_id,
        usage.user_id,
        usage.domain,
        usage.provider,
        usage.model,
        usage.tier,
        usage.reason,
        usage.outcome,
        usage.input_tokens as i64,
        usage.output_tokens as i64,
        usage.cost_usd,
        usage.latency_ms as i64,
    ])?;
    Ok(())
}

/// Writes one gate decision.
pub fn record_gate_decision(conn: &Connection, d: &GateDecision) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO model_gate_decisions (at_ms, task_id, user_id, domain, tier, provider, model,
             complexity, capability, p_success, expected_gain_usd, est_cost_usd, est_latency_ms,
             latency_penalty_usd, allowed, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        d.at_ms,
        d.task_id,
        d.user_id,
        d.domain,
        d.tier,
        d.provider,
        d.model,
        f64::from(d.complexity),
        f64::from(d.capability),
        d.p_success,
        d.expected_gain_usd,
        d.est_cost_usd,
        d.est_latency_ms as i64,
        d.latency_penalty_usd,
        d.allowed,
        d.reason,
    ])?;
    Ok(())
}

/// Counts one outcome of `model` on a `domain` task.
pub fn record_result(
    conn: &Connection,
    model: &str,
    domain: &str,
    success: bool,
    at_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO model_success (model, domain, attempts, successes, updated_ms)
         VALUES (?1, ?2, 1, ?3, ?4)
         ON CONFLICT (model, domain) DO UPDATE SET
             attempts = attempts + 1, successes = successes + excluded.successes,
             updated_ms = excluded.updated_ms",
    )?
    .execute(params![model, domain, i64::from(success), at_ms])?;
    Ok(())
}

/// Saves a provider's breaker.
pub fn save_breaker(conn: &Connection, provider: &str, b: &Breaker) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO model_breakers (provider, consecutive_failures, open_until_ms, probe_started_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (provider) DO UPDATE SET consecutive_failures = excluded.consecutive_failures,
             open_until_ms = excluded.open_until_ms, probe_started_ms = excluded.probe_started_ms",
    )?
    .execute(params![
        provider,
        b.consecutive_failures,
        b.open_until_ms,
        b.probe_started_ms
    ])?;
    Ok(())
}

/// Persists everything a [`crate::ModelRouter::complete`] call produced.
/// Call it inside one transaction (`StoreHandle::call` gives one).
pub fn persist_outcome(conn: &Connection, outcome: &Outcome) -> rusqlite::Result<()> {
    for d in &outcome.decisions {
        record_gate_decision(conn, d)?;
    }
    for u in &outcome.usage {
        record_usage(conn, u)?;
    }
    let at = outcome.usage.last().map(|u| u.at_ms).unwrap_or(0);
    for (model, domain, success) in &outcome.results {
        record_result(conn, model, domain, *success, at)?;
    }
    for (provider, breaker) in &outcome.breakers {
        save_breaker(conn, provider, breaker)?;
    }
    Ok(())
}

/// What the router needs at start: stats, `day`'s spending, breakers.
pub fn load_snapshot(conn: &Connection, day: &str) -> rusqlite::Result<RouterSnapshot> {
    let stats = conn
        .prepare("SELECT model, domain, attempts, successes FROM model_success")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                SuccessStat {
                    attempts: r.get::<_, i64>(2)? as u64,
                    successes: r.get::<_, i64>(3)? as u64,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let spent_today_by_user = conn
        .prepare("SELECT user_id, SUM(cost_usd) FROM model_usage WHERE day = ?1 GROUP BY user_id")?
        .query_map([day], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let breakers = conn
        .prepare(
            "SELECT provider, consecutive_failures, open_until_ms, probe_started_ms FROM model_breakers",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                Breaker {
                    consecutive_failures: r.get(1)?,
                    open_until_ms: r.get(2)?,
                    probe_started_ms: r.get(3)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(RouterSnapshot {
        stats,
        spent_today_by_user,
        breakers,
    })
}

/// The money `user_id` spent on `day` (`YYYY-MM-DD`).
pub fn spent_on(conn: &Connection, user_id: &str, day: &str) -> rusqlite::Result<f64> {
    conn.query_row(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM model_usage WHERE day = ?1 AND user_id = ?2",
        params![day, user_id],
        |r| r.get(0),
    )
}

/// One line of `opticlaw models usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub day: String,
    pub model: String,
    pub reason: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// Tokens, cost and calls by day, model and reason, from `since_day` on.
pub fn usage_summary(conn: &Connection, since_day: &str) -> rusqlite::Result<Vec<UsageSummary>> {
    conn.prepare(
        "SELECT day, model, reason, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd)
         FROM model_usage WHERE day >= ?1 GROUP BY day, model, reason ORDER BY day, model, reason",
    )?
    .query_map([since_day], |r| {
        Ok(UsageSummary {
            day: r.get(0)?,
            model: r.get(1)?,
            reason: r.get(2)?,
            calls: r.get::<_, i64>(3)? as u64,
            input_tokens: r.get::<_, i64>(4)? as u64,
            output_tokens: r.get::<_, i64>(5)? as u64,
            cost_usd: r.get(6)?,
        })
    })?
    .collect()
}

/// "Why was this model called?": the gate decisions recorded for a task.
pub fn decisions_for_task(conn: &Connection, task_id: &str) -> rusqlite::Result<Vec<GateDecision>> {
    conn.prepare(
        "SELECT at_ms, task_id, user_id, domain, tier, provider, model, complexity, capability,
             p_success, expected_gain_usd, est_cost_usd, est_latency_ms, latency_penalty_usd,
             allowed, reason
         FROM model_gate_decisions WHERE task_id = ?1 ORDER BY id",
    )?
    .query_map([task_id], |r| {
        Ok(GateDecision {
            at_ms: r.get(0)?,
            task_id: r.get(1)?,
            user_id: r.get(2)?,
            domain: r.get(3)?,
            tier: r.get(4)?,
            provider: r.get(5)?,
            model: r.get(6)?,
            complexity: r.get::<_, f64>(7)? as f32,
            capability: r.get::<_, f64>(8)? as f32,
            p_success: r.get(9)?,
            expected_gain_usd: r.get(10)?,
            est_cost_usd: r.get(11)?,
            est_latency_ms: r.get::<_, i64>(12)? as u64,
            latency_penalty_usd: r.get(13)?,
            allowed: r.get(14)?,
            reason: r.get(15)?,
        })
    })?
    .collect()
}

/// A breaker as saved, if any.
pub fn load_breaker(conn: &Connection, provider: &str) -> rusqlite::Result<Option<Breaker>> {
    conn.query_row(
        "SELECT consecutive_failures, open_until_ms, probe_started_ms FROM model_breakers WHERE provider = ?1",
        [provider],
        |r| {
            Ok(Breaker {
                consecutive_failures: r.get(0)?,
                open_until_ms: r.get(1)?,
                probe_started_ms: r.get(2)?,
            })
        },
    )
    .optional()
}
