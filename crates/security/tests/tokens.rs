//! Capability tokens: each test is one way a token must (or must not) work.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestStore, at};
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{
    CapabilityToken, DEFAULT_TTL, Grant, MAX_TTL, NoRevocations, Request, Restriction,
    RevocationList, TokenError, TokenMinter, TokenVerifier, resource_covers, revoke, revoke_id,
};

const NOW: i64 = 1_800_000_000;

fn grant() -> Grant {
    Grant {
        tool: "shell".into(),
        scope: "read".into(),
        resource: "/home/me/notes".into(),
        audience: "runner-1".into(),
        node: "task-7/node-2".into(),
    }
}

fn read(resource: &str) -> Request<'_> {
    Request {
        tool: "shell",
        scope: "read",
        resource,
    }
}

fn setup() -> (TokenMinter, TokenVerifier) {
    let minter = TokenMinter::new(SigningKey::ephemeral());
    let verifier = TokenVerifier::new(minter.verifying_key(), "runner-1");
    (minter, verifier)
}

fn mint(minter: &TokenMinter) -> String {
    minter
        .mint(&grant(), at(NOW), DEFAULT_TTL)
        .unwrap()
        .to_base64()
}

#[test]
fn token_authorizes_exactly_its_granted_request() {
    let (minter, verifier) = setup();
    let token = mint(&minter);
    let verified = verifier
        .verify(
            &token,
            &read("/home/me/notes/todo.md"),
            at(NOW + 1),
            &NoRevocations,
        )
        .unwrap();
    assert_eq!(verified.grant, grant());
    assert_eq!(verified.expires_at, at(NOW + 300));
    assert!(
        verifier
            .verify(&token, &read("/home/me/notes"), at(NOW + 1), &NoRevocations)
            .is_ok()
    );
}

#[test]
fn token_signed_by_another_key_is_refused_as_forged() {
    let (_, verifier) = setup();
    let attacker = TokenMinter::new(SigningKey::ephemeral());
    let token = mint(&attacker);
    let refused = verifier.verify(&token, &read("/home/me/notes"), at(NOW), &NoRevocations);
    assert!(matches!(refused, Err(TokenError::Forged)), "{refused:?}");
}

#[test]
fn token_with_altered_bytes_is_refused() {
    let (minter, verifier) = setup();
    let token = mint(&minter);
    let mut bytes = token.into_bytes();
    // Flip characters across the payload: every variant must be refused.
    for index in (10..bytes.len() - 10).step_by(17) {
        let original = bytes[index];
        bytes[index] = if original == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes.clone()).unwrap();
        let refused = verifier.verify(&altered, &read("/home/me/notes"), at(NOW), &NoRevocations);
        assert!(
            matches!(refused, Err(TokenError::Forged | TokenError::Malformed(_))),
            "byte {index}: {refused:?}"
        );
        bytes[index] = original;
    }
}

#[test]
fn garbage_is_refused_as_malformed() {
    let (_, verifier) = setup();
    for garbage in ["", "not a token", "AAAA"] {
        let refused = verifier.verify(garbage, &read("/x"), at(NOW), &NoRevocations);
        assert!(
            matches!(refused, Err(TokenError::Malformed(_))),
            "{refused:?}"
        );
    }
}

#[test]
fn expired_token_is_refused() {
    let (minter, verifier) = setup();
    let token = mint(&minter);
    let refused = verifier.verify(
        &token,
        &read("/home/me/notes"),
        at(NOW + 300),
        &NoRevocations,
    );
    assert!(
        matches!(refused, Err(TokenError::Expired { expired_at }) if expired_at == at(NOW + 300)),
        "{refused:?}"
    );
}

#[test]
fn token_for_another_runner_is_refused() {
    let (minter, _) = setup();
    let token = mint(&minter);
    let other = TokenVerifier::new(minter.verifying_key(), "runner-2");
    let refused = other.verify(&token, &read("/home/me/notes"), at(NOW), &NoRevocations);
    assert!(
        matches!(&refused, Err(TokenError::WrongAudience { audience, runner })
            if audience == "runner-1" && runner == "runner-2"),
        "{refused:?}"
    );
}

#[test]
fn other_tool_scope_or_resource_is_refused_with_the_reason() {
    let (minter, verifier) = setup();
    let token = mint(&minter);
    let now = at(NOW);
    let tool = Request {
        tool: "payments",
        scope: "read",
        resource: "/home/me/notes",
    };
    let scope = Request {
        tool: "shell",
        scope: "write",
        resource: "/home/me/notes",
    };
    assert!(matches!(
        verifier.verify(&token, &tool, now, &NoRevocations),
        Err(TokenError::ToolNotGranted { .. })
    ));
    assert!(matches!(
        verifier.verify(&token, &scope, now, &NoRevocations),
        Err(TokenError::ScopeNotGranted { .. })
    ));
    for outside in [
        "/home/me",
        "/home/me/notes-private",
        "/home/me/notes/../.ssh/id_ed25519",
        "/etc/passwd",
    ] {
        assert!(
            matches!(
                verifier.verify(&token, &read(outside), now, &NoRevocations),
                Err(TokenError::ResourceNotGranted { .. })
            ),
            "{outside}"
        );
    }
}

#[test]
fn ttl_beyond_the_maximum_is_refused_at_mint() {
    let (minter, _) = setup();
    let minted = minter.mint(&grant(), at(NOW), Duration::from_secs(24 * 3600));
    assert!(matches!(minted, Err(TokenError::TtlTooLong(_))));
}

#[test]
fn holder_can_narrow_the_resource() {
    let (minter, verifier) = setup();
    let token = CapabilityToken::parse(&mint(&minter), &minter.verifying_key()).unwrap();
    let narrowed = token
        .attenuate(&Restriction::ResourceWithin("/home/me/notes/work".into()))
        .unwrap()
        .to_base64();
    let now = at(NOW);
    assert!(
        verifier
            .verify(
                &narrowed,
                &read("/home/me/notes/work/a.md"),
                now,
                &NoRevocations
            )
            .is_ok()
    );
    for refused in ["/home/me/notes/home.md", "/home/me/notes/workshop"] {
        let result = verifier.verify(&narrowed, &read(refused), now, &NoRevocations);
        assert!(
            matches!(result, Err(TokenError::Restricted(_))),
            "{refused}: {result:?}"
        );
    }
}

#[test]
fn holder_can_shorten_the_lifetime() {
    let (minter, verifier) = setup();
    let token = CapabilityToken::parse(&mint(&minter), &minter.verifying_key()).unwrap();
    let short = token
        .attenuate(&Restriction::ExpiresAt(at(NOW + 10)))
        .unwrap()
        .to_base64();
    let request = read("/home/me/notes");
    assert!(
        verifier
            .verify(&short, &request, at(NOW + 9), &NoRevocations)
            .is_ok()
    );
    assert!(matches!(
        verifier.verify(&short, &request, at(NOW + 10), &NoRevocations),
        Err(TokenError::Restricted(_))
    ));
}

#[test]
fn attenuation_cannot_widen_a_token() {
    let (minter, verifier) = setup();
    let token = CapabilityToken::parse(&mint(&minter), &minter.verifying_key()).unwrap();
    let later = at(NOW + 86_400).timestamp_millis();
    // A holder appends its own, broader grants and a far-off expiry.
    let widened = token
        .attenuate(&Restriction::ResourceWithin("/".into()))
        .unwrap();
    let widened = CapabilityToken::parse(&widened.to_base64(), &minter.verifying_key()).unwrap();
    let text = append_raw(
        &widened,
        &[
            &format!(
                r#"opticlaw-grant {{"tool":"payments","scope":"send","resource":"/","aud":"runner-1","node":"evil","exp":{later}}}"#
            ),
            &format!(
                r#"opticlaw-grant {{"tool":"shell","scope":"read","resource":"/","aud":"runner-1","node":"evil","exp":{later}}}"#
            ),
            "before 4102444800000",
        ],
    );
    let now = at(NOW);
    let payments = Request {
        tool: "payments",
        scope: "send",
        resource: "/bank",
    };
    assert!(matches!(
        verifier.verify(&text, &payments, now, &NoRevocations),
        Err(TokenError::ToolNotGranted { .. })
    ));
    assert!(matches!(
        verifier.verify(&text, &read("/etc/shadow"), now, &NoRevocations),
        Err(TokenError::ResourceNotGranted { .. })
    ));
    assert!(matches!(
        verifier.verify(
            &text,
            &read("/home/me/notes"),
            at(NOW + 400),
            &NoRevocations
        ),
        Err(TokenError::Expired { .. })
    ));
    // A caveat the verifier does not accept after the grant (here a second
    // grant) is not ignored: the token fails closed, even for the original
    // grant.
    let result = verifier.verify(&text, &read("/home/me/notes/a"), now, &NoRevocations);
    assert!(
        matches!(result, Err(TokenError::Restricted(_))),
        "{result:?}"
    );
    // Without the appended caveats the original grant still works.
    assert!(
        verifier
            .verify(
                &widened.to_base64(),
                &read("/home/me/notes/a"),
                now,
                &NoRevocations
            )
            .is_ok()
    );
}

#[test]
fn a_caveat_removed_or_edited_by_a_holder_breaks_the_signature() {
    let (minter, verifier) = setup();
    let narrowed = minter
        .mint(&grant(), at(NOW), DEFAULT_TTL)
        .unwrap()
        .attenuate(&Restriction::ResourceWithin("/home/me/notes/work".into()))
        .unwrap();
    let macaroon = libmacaroon::Macaroon::deserialize(narrowed.to_base64()).unwrap();
    // Rebuild the token with only its grant, keeping the final signature:
    // the chain no longer matches.
    let caveats: Vec<Vec<u8>> = macaroon
        .caveats()
        .iter()
        .map(|c| c.as_first_party().unwrap().predicate().to_vec())
        .collect();
    let mut stripped = libmacaroon::Macaroon::create(
        None,
        &libmacaroon::MacaroonKey::generate(b"guess"),
        macaroon.identifier(),
    )
    .unwrap();
    stripped.add_first_party_caveat(&caveats[0]).unwrap();
    let result = verifier.verify(
        &stripped.serialize(libmacaroon::Format::V2).unwrap(),
        &read("/home/me/notes/home.md"),
        at(NOW),
        &NoRevocations,
    );
    assert!(matches!(result, Err(TokenError::Forged)), "{result:?}");
}

/// Appends caveats with the macaroon library itself, as an attacker holding
/// the token can (the public API only appends restrictions).
fn append_raw(token: &CapabilityToken, caveats: &[&str]) -> String {
    let mut macaroon = libmacaroon::Macaroon::deserialize(token.to_base64()).unwrap();
    for caveat in caveats {
        macaroon.add_first_party_caveat(caveat).unwrap();
    }
    macaroon.serialize(libmacaroon::Format::V2).unwrap()
}

#[test]
fn revoked_token_is_refused_when_replayed() {
    let (minter, verifier) = setup();
    let store = TestStore::new();
    let token = minter.mint(&grant(), at(NOW), DEFAULT_TTL).unwrap();
    let text = token.to_base64();
    let request = read("/home/me/notes");
    assert!(
        verifier
            .verify(&text, &request, at(NOW), store.conn())
            .is_ok()
    );
    revoke(store.conn(), &token, "node finished", at(NOW + 1)).unwrap();
    assert!(matches!(
        verifier.verify(&text, &request, at(NOW + 2), store.conn()),
        Err(TokenError::Revoked)
    ));
}

#[test]
fn a_revocation_list_loaded_from_the_store_refuses_what_was_revoked_there() {
    let (minter, verifier) = setup();
    let store = TestStore::new();
    let spent = minter.mint(&grant(), at(NOW), DEFAULT_TTL).unwrap();
    let fresh = minter.mint(&grant(), at(NOW), DEFAULT_TTL).unwrap();
    let request = read("/home/me/notes");
    revoke_id(
        store.conn(),
        &spent.revocation_id(),
        "task cancelled",
        at(NOW),
    )
    .unwrap();
    // Revoked long ago: that token expired before now whatever its TTL.
    revoke_id(
        store.conn(),
        "00ff",
        "old",
        at(NOW - 2 * MAX_TTL.as_secs() as i64),
    )
    .unwrap();

    // What a restarted daemon loads.
    let list = RevocationList::load(store.conn(), at(NOW + 1)).unwrap();
    assert_eq!(list.len(), 1, "only revocations that can still matter");
    assert!(matches!(
        verifier.verify(&spent.to_base64(), &request, at(NOW + 1), &list),
        Err(TokenError::Revoked)
    ));
    assert!(
        verifier
            .verify(&fresh.to_base64(), &request, at(NOW + 1), &list)
            .is_ok()
    );
    // Told of a later revocation: a clone (what each runner holds) sees it.
    let runner_copy = list.clone();
    list.extend([fresh.revocation_id()], at(NOW + 2));
    assert!(matches!(
        verifier.verify(&fresh.to_base64(), &request, at(NOW + 2), &runner_copy),
        Err(TokenError::Revoked)
    ));
}

#[test]
fn revoking_a_token_revokes_what_was_attenuated_from_it_but_not_its_parent() {
    let (minter, verifier) = setup();
    let parent = minter.mint(&grant(), at(NOW), DEFAULT_TTL).unwrap();
    let child = parent
        .attenuate(&Restriction::ResourceWithin("/home/me/notes/a".into()))
        .unwrap();
    let request = read("/home/me/notes/a");

    let mut revoked = HashSet::new();
    revoked.insert(child.revocation_id());
    assert!(
        verifier
            .verify(&parent.to_base64(), &request, at(NOW), &revoked)
            .is_ok()
    );
    assert!(matches!(
        verifier.verify(&child.to_base64(), &request, at(NOW), &revoked),
        Err(TokenError::Revoked)
    ));

    let mut revoked = HashSet::new();
    revoked.insert(parent.revocation_id());
    assert!(matches!(
        verifier.verify(&child.to_base64(), &request, at(NOW), &revoked),
        Err(TokenError::Revoked)
    ));
}

#[test]
fn resource_coverage_respects_path_boundaries() {
    assert!(resource_covers("/a", "/a"));
    assert!(resource_covers("/a", "/a/b"));
    assert!(resource_covers("/a/", "/a/b"));
    assert!(!resource_covers("/a", "/ab"));
    assert!(!resource_covers("/a", "/a/../b"));
    assert!(resource_covers("inbox", "inbox"));
    assert!(!resource_covers("inbox", "inbox2"));
}

#[test]
fn signing_key_file_round_trips_through_mint_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.key");
    let first = TokenMinter::new(SigningKey::load_or_create(&path).unwrap());
    let token = mint(&first);
    let reloaded = SigningKey::load_or_create(&path).unwrap();
    let verifier = TokenVerifier::new(reloaded.verifying_key(), "runner-1");
    assert!(
        verifier
            .verify(&token, &read("/home/me/notes"), at(NOW), &NoRevocations)
            .is_ok()
    );
    assert!(!format!("{first:?}").contains(std::fs::read_to_string(&path).unwrap().trim()));
}

#[test]
fn oversized_token_is_refused_before_parsing() {
    let (_, verifier) = setup();
    let huge = "A".repeat(opticlaw_security::token::MAX_TOKEN_LEN + 1);
    assert!(matches!(
        verifier.verify(&huge, &read("/x"), at(NOW), &NoRevocations),
        Err(TokenError::Malformed(_))
    ));
}
