//! Token attacks: a runner holding a guarded action checks the presented
//! token with `TokenVerifier` and runs the action only if it verifies.
//! Every row presents a token that must not verify.

use std::cell::Cell;

use chrono::{DateTime, Utc};
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::{
    CapabilityToken, DEFAULT_TTL, Grant, Request, Restriction, RevocationList, TokenMinter,
    TokenVerifier, revoke, revoke_id,
};

use crate::{Attack, Case, Env, Family, Outcome};

/// How the attacker obtains or alters the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trick {
    /// Minted long enough ago that it expired.
    Expired,
    /// Narrowed by a holder to an instant already past.
    AttenuatedExpiry,
    /// Signed by a key the runner does not trust.
    ForeignKey,
    /// A byte of the signed payload flipped.
    Tampered,
    /// Cut short.
    Truncated,
    /// Minted for another runner.
    WrongAudience,
    /// Used once (then revoked as spent) and presented again.
    Replayed,
    /// An attenuated child of a spent (revoked) token.
    ReplayedChild,
    /// Never used, but revoked in the store (its task was cancelled, its
    /// approval denied, or the signing key rotated), then presented to a
    /// runner that loaded the revocations from the store.
    Revoked(&'static str),
    /// Presented for another tool.
    OtherTool,
    /// Presented for another scope.
    OtherScope,
    /// Presented for a resource outside the grant.
    OtherResource(&'static str),
    /// A holder appended a caveat granting more.
    WideningBlock(&'static str),
    /// Narrowed to a subdirectory, then used outside it.
    BeyondAttenuation,
}

/// One token attack: the grant the token was minted with and the trick.
#[derive(Debug, Clone)]
pub struct TokenAttack {
    pub tool: &'static str,
    pub scope: &'static str,
    pub trick: Trick,
}

const GRANTS: [(&str, &str); 5] = [
    ("shell", "run"),
    ("file.read", "read"),
    ("file.write", "write"),
    ("email", "send"),
    ("payments", "send"),
];

const RESOURCE: &str = "/home/me/notes";
const RUNNER: &str = "runner-shell-1";

/// Tricks applied to every grant, then resource and widening variants.
pub fn cases() -> Vec<Case> {
    let per_grant = [
        Trick::Expired,
        Trick::AttenuatedExpiry,
        Trick::ForeignKey,
        Trick::Tampered,
        Trick::WrongAudience,
        Trick::Replayed,
        Trick::ReplayedChild,
        Trick::OtherTool,
        Trick::OtherScope,
        Trick::BeyondAttenuation,
        Trick::Revoked("task cancelled"),
        Trick::Revoked("approval denied"),
        Trick::Revoked("signing key rotated"),
    ];
    let mut cases = Vec::new();
    for (tool, scope) in GRANTS {
        for trick in per_grant {
            cases.push((tool, scope, trick));
        }
    }
    for resource in [
        "/home/me/.ssh/id_ed25519",
        "/home/me/notes/../.ssh/id_ed25519",
        "/home/me/notesevil",
        "/home/me",
        "/",
        "/etc/shadow",
        "/home/me/notes/./../../../etc/passwd",
        "notes",
    ] {
        cases.push(("file.read", "read", Trick::OtherResource(resource)));
    }
    for widening in [
        r#"opticlaw-grant {"tool":"shell","scope":"run","resource":"/","aud":"runner-shell-1","node":"n","exp":4102444800000}"#,
        r#"opticlaw-grant {"tool":"file.read","scope":"read","resource":"/","aud":"runner-shell-1","node":"n","exp":4102444800000}"#,
        r#"opticlaw-grant {"tool":"payments","scope":"send","resource":"/home/me/notes","aud":"runner-shell-1","node":"n","exp":4102444800000}"#,
        "within /",
        "before 4102444800000",
    ] {
        cases.push(("file.read", "read", Trick::WideningBlock(widening)));
    }
    cases.push(("shell", "run", Trick::Truncated));
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (tool, scope, trick))| Case {
            id: format!("token-{i:03}-{tool}-{scope}-{}", name(trick)),
            family: Family::Token,
            attack: Attack::Token(TokenAttack { tool, scope, trick }),
        })
        .collect()
}

fn name(trick: Trick) -> String {
    if let Trick::Revoked(reason) = trick {
        return format!("revoked-{}", reason.replace(' ', "-"));
    }
    let debug = format!("{trick:?}").to_lowercase();
    debug.split('(').next().unwrap_or_default().to_owned()
}

fn grant(tool: &str, scope: &str, audience: &str) -> Grant {
    Grant {
        tool: tool.into(),
        scope: scope.into(),
        resource: RESOURCE.into(),
        audience: audience.into(),
        node: "task-1/node-1".into(),
    }
}

/// The runner's side: verify, then (only then) run.
fn guarded(
    env: &Env,
    token: &str,
    request: &Request<'_>,
    now: DateTime<Utc>,
    revoked: &RevocationList,
    ran: &Cell<u32>,
) -> Result<(), String> {
    let verifier = TokenVerifier::new(env.minter.verifying_key(), RUNNER);
    verifier
        .verify(token, request, now, revoked)
        .map(|_| ran.set(ran.get() + 1))
        .map_err(|e| e.to_string())
}

pub fn run(env: &Env, attack: &TokenAttack) -> Outcome {
    let now = Utc::now();
    let ran = Cell::new(0);
    let mut revoked = RevocationList::default();
    let inside = format!("{RESOURCE}/today.md");
    let mut request = Request {
        tool: attack.tool,
        scope: attack.scope,
        resource: &inside,
    };
    let mint = |minter: &TokenMinter, audience: &str, at| {
        minter
            .mint(&grant(attack.tool, attack.scope, audience), at, DEFAULT_TTL)
            .expect("minting")
    };
    let token = mint(&env.minter, RUNNER, now);
    let presented: String = match attack.trick {
        Trick::Expired => {
            mint(&env.minter, RUNNER, now - chrono::Duration::minutes(10)).to_base64()
        }
        Trick::AttenuatedExpiry => token
            .attenuate(&Restriction::ExpiresAt(now - chrono::Duration::seconds(1)))
            .expect("attenuate")
            .to_base64(),
        Trick::ForeignKey => {
            mint(&TokenMinter::new(SigningKey::ephemeral()), RUNNER, now).to_base64()
        }
        Trick::Tampered => {
            let mut bytes = token.to_base64().into_bytes();
            let middle = bytes.len() / 2;
            bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).expect("base64 is ASCII")
        }
        Trick::Truncated => {
            let text = token.to_base64();
            text[..text.len() - 20].to_owned()
        }
        Trick::WrongAudience => mint(&env.minter, "runner-other", now).to_base64(),
        Trick::Replayed | Trick::ReplayedChild => {
            // First use is legitimate; then the runner revokes the spent token.
            if let Err(e) = guarded(env, &token.to_base64(), &request, now, &revoked, &ran) {
                return Outcome {
                    ran: false,
                    leaked: false,
                    detail: format!("setup: the first use failed: {e}"),
                }
                .mark_broken();
            }
            ran.set(0);
            revoke(env.store.connection(), &token, "spent", now).expect("revoke");
            revoked.extend([token.revocation_id()], now);
            if attack.trick == Trick::Replayed {
                token.to_base64()
            } else {
                token
                    .attenuate(&Restriction::ResourceWithin(RESOURCE.into()))
                    .expect("attenuate")
                    .to_base64()
            }
        }
        Trick::Revoked(reason) => {
            revoke_id(env.store.connection(), &token.revocation_id(), reason, now).expect("revoke");
            // The runner's list as a (restarted) daemon loads it.
            revoked = RevocationList::load(env.store.connection(), now).expect("load");
            token.to_base64()
        }
        Trick::OtherTool => {
            request.tool = if attack.tool == "shell" {
                "payments"
            } else {
                "shell"
            };
            token.to_base64()
        }
        Trick::OtherScope => {
            request.scope = "admin";
            token.to_base64()
        }
        Trick::OtherResource(resource) => {
            request.resource = resource;
            token.to_base64()
        }
        Trick::WideningBlock(caveat) => {
            let widened = widen(&token, caveat);
            request.resource = "/etc/shadow";
            if caveat.contains(r#""tool":"shell""#) {
                request.tool = "shell";
                request.scope = "run";
            }
            if caveat.contains(r#""tool":"payments""#) {
                request.tool = "payments";
                request.scope = "send";
                request.resource = &inside;
            }
            widened
        }
        Trick::BeyondAttenuation => {
            request.resource = "/home/me/notes/private/diary.md";
            token
                .attenuate(&Restriction::ResourceWithin(format!("{RESOURCE}/public")))
                .expect("attenuate")
                .to_base64()
        }
    };
    match guarded(env, &presented, &request, now, &revoked, &ran) {
        Ok(()) => Outcome {
            ran: ran.get() > 0,
            leaked: false,
            detail: "the runner accepted the token and ran the action".into(),
        },
        Err(error) => Outcome::blocked(format!("refused: {error}")),
    }
}

/// Appends a caveat with the macaroon library itself, as an attacker
/// holding the token could.
fn widen(token: &CapabilityToken, caveat: &str) -> String {
    let mut macaroon =
        libmacaroon::Macaroon::deserialize(token.to_base64()).expect("our own token parses");
    macaroon.add_first_party_caveat(caveat).expect("append");
    macaroon
        .serialize(libmacaroon::Format::V2)
        .expect("serialize")
}

impl Outcome {
    /// A case whose setup failed counts as unauthorized, so a broken suite
    /// never reports a clean tally.
    fn mark_broken(mut self) -> Self {
        self.ran = true;
        self
    }
}
