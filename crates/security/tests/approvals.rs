//! The approval workflow for tier 2 and tier 3 actions.

mod common;

use chrono::Duration;
use common::{TestStore, at};
use opticlaw_security::Tier;
use opticlaw_security::approval::{
    self, ActionRequest, ApprovalError, ApprovalStatus, DEFAULT_APPROVAL_TTL, Principal,
    SecondFactor,
};
use opticlaw_security::totp::Totp;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn alice() -> Principal {
    Principal {
        source: "telegram".into(),
        user_id: "alice".into(),
        chat_id: "chat-1".into(),
    }
}

fn send_email(tier: Tier) -> ActionRequest {
    ActionRequest {
        tool: "email".into(),
        scope: "send".into(),
        tier,
        action: json!({"to": "bob@example.com", "subject": "Hi", "body": "See you at 5"}),
        requested_for: alice(),
    }
}

fn totp() -> Totp {
    Totp::new(b"12345678901234567890".to_vec()).unwrap()
}

#[test]
fn tier_two_request_waits_then_runs_only_the_approved_action() {
    let store = TestStore::new();
    let conn = store.conn();
    let request = send_email(Tier::SideEffect);
    let pending = approval::request(conn, &request, at(NOW), DEFAULT_APPROVAL_TTL).unwrap();
    assert_eq!(pending.status, ApprovalStatus::Pending);
    assert_eq!(pending.action, request.action);

    let listed = approval::list(conn, true, at(NOW + 1)).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(matches!(
        approval::ensure_approved(conn, &pending.id, &request.action, at(NOW + 1)),
        Err(ApprovalError::NotApproved(_))
    ));

    let approved = approval::approve(conn, &pending.id, &alice(), None, at(NOW + 2)).unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert!(approval::list(conn, true, at(NOW + 3)).unwrap().is_empty());
    assert!(approval::ensure_approved(conn, &pending.id, &request.action, at(NOW + 3)).is_ok());

    // Same keys in another order are the same action; a changed body is not.
    let reordered = json!({"body": "See you at 5", "subject": "Hi", "to": "bob@example.com"});
    assert!(approval::ensure_approved(conn, &pending.id, &reordered, at(NOW + 3)).is_ok());
    let swapped = json!({"to": "mallory@example.com", "subject": "Hi", "body": "See you at 5"});
    assert!(matches!(
        approval::ensure_approved(conn, &pending.id, &swapped, at(NOW + 3)),
        Err(ApprovalError::ActionMismatch(_))
    ));
}

#[test]
fn denied_request_cannot_be_approved_or_run() {
    let store = TestStore::new();
    let conn = store.conn();
    let request = send_email(Tier::SideEffect);
    let pending = approval::request(conn, &request, at(NOW), DEFAULT_APPROVAL_TTL).unwrap();
    let denied = approval::deny(conn, &pending.id, &alice(), at(NOW + 1)).unwrap();
    assert_eq!(denied.status, ApprovalStatus::Denied);
    assert!(matches!(
        approval::approve(conn, &pending.id, &alice(), None, at(NOW + 2)),
        Err(ApprovalError::AlreadyDecided {
            status: ApprovalStatus::Denied,
            ..
        })
    ));
    assert!(matches!(
        approval::ensure_approved(conn, &pending.id, &request.action, at(NOW + 2)),
        Err(ApprovalError::NotApproved(_))
    ));
}

#[test]
fn approval_from_another_user_or_chat_is_refused() {
    let store = TestStore::new();
    let conn = store.conn();
    let pending = approval::request(
        conn,
        &send_email(Tier::SideEffect),
        at(NOW),
        DEFAULT_APPROVAL_TTL,
    )
    .unwrap();
    let mallory = Principal {
        user_id: "mallory".into(),
        ..alice()
    };
    let other_chat = Principal {
        chat_id: "chat-2".into(),
        ..alice()
    };
    let other_platform = Principal {
        source: "slack".into(),
        ..alice()
    };
    for forger in [mallory, other_chat, other_platform] {
        assert!(matches!(
            approval::approve(conn, &pending.id, &forger, None, at(NOW + 1)),
            Err(ApprovalError::WrongPrincipal(_))
        ));
        assert!(matches!(
            approval::deny(conn, &pending.id, &forger, at(NOW + 1)),
            Err(ApprovalError::WrongPrincipal(_))
        ));
    }
    assert_eq!(
        approval::get(conn, &pending.id, at(NOW + 1))
            .unwrap()
            .status,
        ApprovalStatus::Pending
    );
}

#[test]
fn expired_request_cannot_be_approved_and_an_approval_expires_too() {
    let store = TestStore::new();
    let conn = store.conn();
    let ttl = Duration::minutes(5);
    let late = approval::request(conn, &send_email(Tier::SideEffect), at(NOW), ttl).unwrap();
    assert!(matches!(
        approval::approve(conn, &late.id, &alice(), None, at(NOW + 300)),
        Err(ApprovalError::Expired(_))
    ));
    assert_eq!(
        approval::list(conn, false, at(NOW + 300)).unwrap()[0].status,
        ApprovalStatus::Expired
    );

    let request = send_email(Tier::SideEffect);
    let used = approval::request(conn, &request, at(NOW), ttl).unwrap();
    approval::approve(conn, &used.id, &alice(), None, at(NOW + 10)).unwrap();
    assert!(matches!(
        approval::ensure_approved(conn, &used.id, &request.action, at(NOW + 300)),
        Err(ApprovalError::Expired(_))
    ));
}

#[test]
fn tier_three_needs_a_valid_unused_totp_code() {
    let store = TestStore::new();
    let conn = store.conn();
    let totp = totp();
    let now = at(NOW);
    let pending =
        approval::request(conn, &send_email(Tier::HighRisk), now, DEFAULT_APPROVAL_TTL).unwrap();
    assert!(matches!(
        approval::approve(conn, &pending.id, &alice(), None, now),
        Err(ApprovalError::TotpRequired)
    ));
    let wrong = SecondFactor {
        totp: &totp,
        code: "000000",
    };
    let wrong_result = approval::approve(conn, &pending.id, &alice(), Some(wrong), now);
    // "000000" could be the real code once in a million runs; NOW is fixed.
    assert!(matches!(wrong_result, Err(ApprovalError::TotpInvalid)));
    let stale = totp.generate(NOW as u64 - 120);
    assert!(matches!(
        approval::approve(
            conn,
            &pending.id,
            &alice(),
            Some(SecondFactor {
                totp: &totp,
                code: &stale
            }),
            now
        ),
        Err(ApprovalError::TotpInvalid)
    ));

    let code = totp.generate(NOW as u64);
    let factor = SecondFactor {
        totp: &totp,
        code: &code,
    };
    let approved = approval::approve(conn, &pending.id, &alice(), Some(factor), now).unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);

    // The same code cannot approve a second request.
    let second =
        approval::request(conn, &send_email(Tier::HighRisk), now, DEFAULT_APPROVAL_TTL).unwrap();
    assert!(matches!(
        approval::approve(conn, &second.id, &alice(), Some(factor), at(NOW + 5)),
        Err(ApprovalError::TotpReused)
    ));
    assert_eq!(
        approval::get(conn, &second.id, now).unwrap().status,
        ApprovalStatus::Pending
    );
}

#[test]
fn tiers_zero_and_one_do_not_go_through_approval() {
    let store = TestStore::new();
    for tier in [Tier::ReadOnly, Tier::LowRisk] {
        assert!(matches!(
            approval::request(
                store.conn(),
                &send_email(tier),
                at(NOW),
                DEFAULT_APPROVAL_TTL
            ),
            Err(ApprovalError::NotRequired(_))
        ));
    }
}

#[test]
fn unknown_request_is_not_found() {
    let store = TestStore::new();
    assert!(matches!(
        approval::approve(store.conn(), "nope", &alice(), None, at(NOW)),
        Err(ApprovalError::NotFound(_))
    ));
}

#[test]
fn action_edited_in_the_store_after_approval_is_refused() {
    let store = TestStore::new();
    let conn = store.conn();
    let request = send_email(Tier::SideEffect);
    let pending = approval::request(conn, &request, at(NOW), DEFAULT_APPROVAL_TTL).unwrap();
    approval::approve(conn, &pending.id, &alice(), None, at(NOW + 1)).unwrap();
    let forged = json!({"to": "mallory@example.com", "subject": "Hi", "body": "See you at 5"});
    conn.execute(
        "UPDATE security_approvals SET action = ?1 WHERE id = ?2",
        opticlaw_store::rusqlite::params![forged.to_string(), pending.id],
    )
    .unwrap();
    assert!(matches!(
        approval::ensure_approved(conn, &pending.id, &forged, at(NOW + 2)),
        Err(ApprovalError::Corrupt(_))
    ));
}
