//! Network hosts in capability tokens: a token for a shell node carries the
//! hosts its command may reach, a runner may use only those, a holder may
//! narrow them and nobody may add one.

mod common;

use common::at;
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{
    CapabilityToken, DEFAULT_TTL, Grant, NoRevocations, Request, Restriction, TokenError,
    TokenMinter, TokenVerifier,
};

const NOW: i64 = 1_800_000_000;
const API: &str = "api.example.com:443";
const LOCAL: &str = "127.0.0.1:8080";

fn grant() -> Grant {
    Grant {
        tool: "shell".into(),
        scope: "exec".into(),
        resource: "/home/me/work".into(),
        audience: "runner/shell".into(),
        node: "task-1/fetch".into(),
    }
}

const REQUEST: Request<'static> = Request {
    tool: "shell",
    scope: "exec",
    resource: "/home/me/work",
};

fn setup(hosts: &[&str]) -> (CapabilityToken, TokenVerifier) {
    let minter = TokenMinter::new(SigningKey::ephemeral());
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let token = minter
        .mint_with_hosts(&grant(), &hosts, at(NOW), DEFAULT_TTL)
        .unwrap();
    (
        token,
        TokenVerifier::new(minter.verifying_key(), "runner/shell"),
    )
}

fn verify(
    verifier: &TokenVerifier,
    token: &CapabilityToken,
    hosts: &[&str],
) -> Result<Vec<String>, TokenError> {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    verifier
        .verify_with_hosts(
            &token.to_base64(),
            &REQUEST,
            &hosts,
            at(NOW + 1),
            &NoRevocations,
        )
        .map(|verified| verified.hosts)
}

#[test]
fn a_token_carries_its_hosts_and_admits_only_those() {
    let (token, verifier) = setup(&[API, LOCAL]);
    // Sorted, whatever the order at mint.
    assert_eq!(verify(&verifier, &token, &[]).unwrap(), [LOCAL, API]);
    assert_eq!(
        verify(&verifier, &token, &[LOCAL, API]).unwrap(),
        [LOCAL, API]
    );
    for other in [
        "evil.example.com:443",
        "api.example.com:80",
        "API.example.com:443",
    ] {
        match verify(&verifier, &token, &[API, other]) {
            Err(TokenError::HostNotGranted { requested }) => assert_eq!(requested, other),
            result => panic!("{other}: expected a refusal, got {result:?}"),
        }
    }
}

#[test]
fn a_token_minted_without_hosts_grants_no_network() {
    let (token, verifier) = setup(&[]);
    assert!(verify(&verifier, &token, &[]).unwrap().is_empty());
    assert!(matches!(
        verify(&verifier, &token, &[API]),
        Err(TokenError::HostNotGranted { .. })
    ));
}

#[test]
fn a_host_fact_appended_by_a_holder_is_not_trusted() {
    let (token, verifier) = setup(&[API]);
    // The public API only appends checks; an attacker can append anything.
    let mut macaroon = libmacaroon::Macaroon::deserialize(token.to_base64()).unwrap();
    macaroon
        .add_first_party_caveat(r#"hosts ["evil.example.com:443"]"#)
        .unwrap();
    let forged = macaroon.serialize(libmacaroon::Format::V2).unwrap();
    let hosts = vec!["evil.example.com:443".to_owned()];
    let result = verifier.verify_with_hosts(&forged, &REQUEST, &hosts, at(NOW + 1), &NoRevocations);
    assert!(
        matches!(result, Err(TokenError::HostNotGranted { .. })),
        "{result:?}"
    );
}

#[test]
fn a_holder_can_narrow_the_hosts_but_not_widen_them() {
    let (token, verifier) = setup(&[API, LOCAL]);
    let narrowed = token
        .attenuate(&Restriction::HostsWithin(vec![
            API.to_owned(),
            "evil.example.com:443".to_owned(),
        ]))
        .unwrap();
    assert!(verify(&verifier, &narrowed, &[API]).is_ok());
    assert!(matches!(
        verify(&verifier, &narrowed, &[LOCAL]),
        Err(TokenError::Restricted(_))
    ));
    // Naming a host in a restriction grants nothing.
    assert!(matches!(
        verify(&verifier, &narrowed, &["evil.example.com:443"]),
        Err(TokenError::HostNotGranted { .. })
    ));
}
