//! The hash-chained audit log: tampering with the file is caught and the
//! first bad record named.

mod common;

use common::{TestStore, at};
use opticlaw_security::audit::{self, Head, Tamper, Tampering};
use opticlaw_store::rusqlite::Connection;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

/// A log of five records, and a raw connection to the same file with the
/// append-only triggers dropped, as an attacker with file access would.
fn log_of_five() -> (TestStore, Connection) {
    let store = TestStore::new();
    for i in 1..=5 {
        audit::append(
            store.conn(),
            "tool_action",
            "runner-1",
            &json!({"tool": "shell", "n": i}),
            at(NOW + i),
        )
        .unwrap();
    }
    let raw = Connection::open(store.path()).unwrap();
    raw.execute_batch(
        "DROP TRIGGER security_audit_no_update; DROP TRIGGER security_audit_no_delete;",
    )
    .unwrap();
    (store, raw)
}

fn first_bad(store: &TestStore) -> Option<Tampering> {
    audit::verify(store.conn()).unwrap().first_bad
}

#[test]
fn untouched_log_verifies() {
    let (store, _raw) = log_of_five();
    let report = audit::verify(store.conn()).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.records, 5);
    assert_eq!(report.head.unwrap().seq, 5);
    let records = audit::records(store.conn(), 0, 10).unwrap();
    assert_eq!(records[2].action, json!({"n": 3, "tool": "shell"}));
    assert_eq!(records[3].prev_hash, records[2].hash);
}

#[test]
fn empty_log_verifies() {
    let store = TestStore::new();
    assert!(audit::verify(store.conn()).unwrap().is_intact());
}

#[test]
fn update_and_delete_are_refused_by_the_store() {
    let store = TestStore::new();
    audit::append(store.conn(), "k", "a", &json!({}), at(NOW)).unwrap();
    assert!(
        store
            .conn()
            .execute("UPDATE security_audit SET actor = 'x'", [])
            .is_err()
    );
    assert!(
        store
            .conn()
            .execute("DELETE FROM security_audit", [])
            .is_err()
    );
}

#[test]
fn edited_record_is_named() {
    let (store, raw) = log_of_five();
    raw.execute(
        "UPDATE security_audit SET action = '{\"n\":3,\"tool\":\"rm\"}' WHERE seq = 3",
        [],
    )
    .unwrap();
    assert_eq!(
        first_bad(&store),
        Some(Tampering {
            seq: 3,
            problem: Tamper::Edited
        })
    );
}

#[test]
fn edited_actor_or_time_is_named() {
    let (store, raw) = log_of_five();
    raw.execute(
        "UPDATE security_audit SET at_ms = at_ms + 1 WHERE seq = 4",
        [],
    )
    .unwrap();
    assert_eq!(first_bad(&store).map(|t| t.seq), Some(4));
    let (store, raw) = log_of_five();
    raw.execute(
        "UPDATE security_audit SET actor = 'someone' WHERE seq = 2",
        [],
    )
    .unwrap();
    assert_eq!(first_bad(&store).map(|t| t.seq), Some(2));
}

#[test]
fn deleted_record_is_named() {
    let (store, raw) = log_of_five();
    raw.execute("DELETE FROM security_audit WHERE seq = 2", [])
        .unwrap();
    assert_eq!(
        first_bad(&store),
        Some(Tampering {
            seq: 2,
            problem: Tamper::Missing
        })
    );
}

#[test]
fn deleted_and_renumbered_record_is_named() {
    let (store, raw) = log_of_five();
    raw.execute_batch(
        "DELETE FROM security_audit WHERE seq = 2;
         UPDATE security_audit SET seq = seq - 1 WHERE seq > 2;",
    )
    .unwrap();
    assert_eq!(first_bad(&store).map(|t| t.seq), Some(2));
}

#[test]
fn deleted_tail_is_caught_by_the_head() {
    let (store, raw) = log_of_five();
    raw.execute("DELETE FROM security_audit WHERE seq >= 4", [])
        .unwrap();
    assert_eq!(
        first_bad(&store),
        Some(Tampering {
            seq: 4,
            problem: Tamper::Truncated
        })
    );
}

#[test]
fn deleted_tail_and_head_are_caught_by_an_outside_anchor() {
    let (store, raw) = log_of_five();
    let anchor: Head = audit::head(store.conn()).unwrap().unwrap();
    let (seq3_hash,): (String,) = raw
        .query_row("SELECT hash FROM security_audit WHERE seq = 3", [], |r| {
            Ok((r.get(0)?,))
        })
        .unwrap();
    raw.execute("DELETE FROM security_audit WHERE seq >= 4", [])
        .unwrap();
    raw.execute(
        "UPDATE security_audit_head SET seq = 3, hash = ?1",
        [&seq3_hash],
    )
    .unwrap();
    assert!(audit::verify(store.conn()).unwrap().is_intact());
    assert_eq!(
        audit::verify_against(store.conn(), &anchor)
            .unwrap()
            .first_bad,
        Some(Tampering {
            seq: 4,
            problem: Tamper::Truncated
        })
    );
}

#[test]
fn reordered_records_are_named() {
    let (store, raw) = log_of_five();
    raw.execute_batch(
        "UPDATE security_audit SET seq = 100 WHERE seq = 2;
         UPDATE security_audit SET seq = 2 WHERE seq = 4;
         UPDATE security_audit SET seq = 4 WHERE seq = 100;",
    )
    .unwrap();
    assert_eq!(first_bad(&store).map(|t| t.seq), Some(2));
}

#[test]
fn inserted_record_is_named() {
    let (store, raw) = log_of_five();
    // Make room at seq 3 and insert a record chained to seq 2 with a
    // correctly computed hash: the old seq 3 (now 4) no longer links.
    let (prev,): (String,) = raw
        .query_row("SELECT hash FROM security_audit WHERE seq = 2", [], |r| {
            Ok((r.get(0)?,))
        })
        .unwrap();
    raw.execute_batch(
        "UPDATE security_audit SET seq = seq + 100 WHERE seq >= 3;
         UPDATE security_audit SET seq = seq - 99 WHERE seq >= 100;",
    )
    .unwrap();
    let action = r#"{"forged":true}"#;
    let hash = audit::record_hash(3, NOW * 1000, "approval", "alice", action, &prev);
    raw.execute(
        "INSERT INTO security_audit (seq, at_ms, kind, actor, action, prev_hash, hash)
         VALUES (3, ?1, 'approval', 'alice', ?2, ?3, ?4)",
        opticlaw_store::rusqlite::params![NOW * 1000, action, prev, hash],
    )
    .unwrap();
    let found = first_bad(&store).unwrap();
    assert_eq!(found.seq, 4, "{found:?}");
}

#[test]
fn appended_record_outside_the_log_api_is_named() {
    let (store, raw) = log_of_five();
    let (prev,): (String,) = raw
        .query_row("SELECT hash FROM security_audit WHERE seq = 5", [], |r| {
            Ok((r.get(0)?,))
        })
        .unwrap();
    let hash = audit::record_hash(6, NOW * 1000, "approval", "alice", "{}", &prev);
    raw.execute(
        "INSERT INTO security_audit (seq, at_ms, kind, actor, action, prev_hash, hash)
         VALUES (6, ?1, 'approval', 'alice', '{}', ?2, ?3)",
        opticlaw_store::rusqlite::params![NOW * 1000, prev, hash],
    )
    .unwrap();
    assert_eq!(
        first_bad(&store),
        Some(Tampering {
            seq: 6,
            problem: Tamper::Unrecorded
        })
    );
}

#[test]
fn appending_after_a_truncation_does_not_hide_it() {
    let (store, raw) = log_of_five();
    raw.execute("DELETE FROM security_audit WHERE seq = 5", [])
        .unwrap();
    audit::append(store.conn(), "k", "a", &json!({}), at(NOW + 10)).unwrap();
    assert_eq!(
        first_bad(&store),
        Some(Tampering {
            seq: 5,
            problem: Tamper::Missing
        })
    );
}
