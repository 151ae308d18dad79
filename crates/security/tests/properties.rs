//! Properties over many generated cases: narrowing never widens, and any
//! edit to any audit record is caught at that record.

mod common;

use common::{TestStore, at};
use opticlaw_security::audit::{self, Tamper};
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{
    Grant, NoRevocations, Request, Restriction, TokenMinter, TokenVerifier,
};
use opticlaw_store::rusqlite::Connection;
use proptest::prelude::*;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "..", "c"]), 0..4)
        .prop_map(|segments| format!("/data/{}", segments.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_narrowed_token_never_allows_what_its_parent_refuses(
        within in path(),
        requested in path(),
        tool in prop::sample::select(vec!["shell", "payments"]),
    ) {
        let minter = TokenMinter::new(SigningKey::ephemeral());
        let verifier = TokenVerifier::new(minter.verifying_key(), "runner-1");
        let grant = Grant {
            tool: "shell".into(),
            scope: "read".into(),
            resource: "/data/a".into(),
            audience: "runner-1".into(),
            node: "n".into(),
        };
        let parent = minter.mint(&grant, at(NOW), std::time::Duration::from_secs(60)).unwrap();
        let child = parent.attenuate(&Restriction::ResourceWithin(within.clone())).unwrap();
        let request = Request { tool, scope: "read", resource: &requested };
        let parent_ok = verifier.verify_parsed(&parent, &request, at(NOW), &NoRevocations).is_ok();
        let child_ok = verifier.verify_parsed(&child, &request, at(NOW), &NoRevocations).is_ok();
        prop_assert!(!child_ok || parent_ok);
        let beneath = if within.ends_with('/') { within.clone() } else { format!("{}/", within) };
        let inside = requested == within || requested.starts_with(&beneath);
        prop_assert!(!child_ok || inside);
    }

    #[test]
    fn any_edit_to_any_record_is_caught_at_that_record(
        count in 1i64..8,
        pick in 0i64..8,
        column in prop::sample::select(vec!["at_ms", "kind", "actor", "action", "prev_hash", "hash"]),
    ) {
        let store = TestStore::new();
        for i in 1..=count {
            audit::append(store.conn(), "tool_action", "runner-1", &json!({"n": i}), at(NOW + i)).unwrap();
        }
        let seq = pick % count + 1;
        let raw = Connection::open(store.path()).unwrap();
        raw.execute_batch("DROP TRIGGER security_audit_no_update").unwrap();
        let edit = if column == "at_ms" {
            format!("UPDATE security_audit SET at_ms = at_ms + 1 WHERE seq = {seq}")
        } else {
            format!("UPDATE security_audit SET {column} = {column} || 'x' WHERE seq = {seq}")
        };
        raw.execute(&edit, []).unwrap();
        let found = audit::verify(store.conn()).unwrap().first_bad.unwrap();
        prop_assert_eq!(found.seq, seq);
        prop_assert!(matches!(found.problem, Tamper::Edited | Tamper::BrokenLink | Tamper::HeadMismatch));
    }
}
