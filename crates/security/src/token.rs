//! Capability tokens: macaroons (HMAC-SHA256 chains, `libmacaroon`) minted
//! per task node.
//!
//! A token's first caveat is its grant, written by the minter:
//! `opticlaw-grant {json}` naming one tool, scope and resource, the one
//! runner (audience) that may use it, its expiry, its task node and the
//! network hosts the node may reach (none: no network; see
//! [`TokenMinter::mint_with_hosts`]). Holders narrow a token by appending
//! caveats ([`Restriction`]); the HMAC chain means nobody can remove or
//! change a caveat without the key, and the verifier reads the grant from
//! the first caveat only, so an appended caveat can never widen what was
//! granted. Any caveat the verifier does not know (a second grant, a
//! third-party caveat, garbage) refuses the token: it fails closed.
//!
//! Why macaroons rather than biscuit (which this module used before): see
//! the crate README. In short, a biscuit's public-key chain costs four
//! Ed25519 operations per mint + verify (~110 µs here) for a property we do
//! not use (verifiers without the signing key: every runner lives in the
//! daemon, beside the minter), while a macaroon is attenuable offline by
//! any holder at the cost of one HMAC per caveat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use libmacaroon::{Caveat, Format, Macaroon, MacaroonError, Verifier};
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::keys::{SigningKey, VerifyingKey};

/// How long a token lives unless the minter says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The longest TTL a token may be minted with.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Tokens longer than this (base64 characters) are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Caveats a token may carry; more is refused unverified (a token grows by
/// two caveats per attenuation).
pub const MAX_CAVEATS: usize = 64;

/// The first caveat's prefix: the grant that follows is JSON.
const GRANT_PREFIX: &str = "opticlaw-grant ";
/// Restriction caveats (appended by holders).
const WITHIN_PREFIX: &str = "within ";
const BEFORE_PREFIX: &str = "before ";
const HOSTS_PREFIX: &str = "hosts ";
/// A revocation identifier added with each attenuation: revoking it revokes
/// that token and everything attenuated from it, never its parent.
const REVOCATION_PREFIX: &str = "rid ";
/// Token identifiers start with this, then 128 random bits in hex.
const IDENTIFIER_PREFIX: &str = "opticlaw-token/v1 ";

/// What one task node may do: one tool, one scope, one resource (a path
/// or a name; a path also covers what lies beneath it), for one runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tool: String,
    pub scope: String,
    pub resource: String,
    /// The one runner that may use the token.
    pub audience: String,
    /// The task node the token was minted for.
    pub node: String,
}

/// What a runner is about to do, checked against a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub tool: &'a str,
    pub scope: &'a str,
    pub resource: &'a str,
}

/// A narrowing a holder appends to a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// Only resources at or beneath this one.
    ResourceWithin(String),
    /// Not usable at or after this instant.
    ExpiresAt(DateTime<Utc>),
    /// Only these network hosts may be used (a subset of those granted).
    HostsWithin(Vec<String>),
}

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed capability token: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify: forged or signed by another key")]
    Forged,
    #[error("the token was revoked")]
    Revoked,
    #[error("the token expired at {expired_at}")]
    Expired { expired_at: DateTime<Utc> },
    #[error("the token is for runner {audience:?}, not {runner:?}")]
    WrongAudience { audience: String, runner: String },
    #[error("the token grants tool {granted:?}, not {requested:?}")]
    ToolNotGranted { granted: String, requested: String },
    #[error("the token grants scope {granted:?}, not {requested:?}")]
    ScopeNotGranted { granted: String, requested: String },
    #[error("the token grants resource {granted:?}, which does not cover {requested:?}")]
    ResourceNotGranted { granted: String, requested: String },
    #[error("the token does not grant network access to {requested:?}")]
    HostNotGranted { requested: String },
    #[error("a restriction on the token refuses this request: {0}")]
    Restricted(String),
    #[error("a TTL of {0:?} is longer than the allowed maximum")]
    TtlTooLong(Duration),
    #[error("could not sign the token: {0}")]
    Signing(String),
    #[error("revocation list: {0}")]
    Store(#[from] rusqlite::Error),
}

/// The grant caveat's JSON (field names kept short: it is in every token).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantCaveat {
    tool: String,
    scope: String,
    resource: String,
    aud: String,
    node: String,
    /// Expiry, Unix milliseconds.
    exp: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<String>,
}

/// A caveat as the verifier understands it.
enum Parsed {
    Within(String),
    Before(DateTime<Utc>),
    Hosts(Vec<String>),
    /// Checked with the others from `revocation_ids` before the grant.
    RevocationId,
}

/// A parsed, signature-checked capability token.
#[derive(Debug, Clone)]
pub struct CapabilityToken {
    macaroon: Macaroon,
}

impl CapabilityToken {
    /// Parses a token and checks its HMAC chain against `key`.
    pub fn parse(text: &str, key: &VerifyingKey) -> Result<Self, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "{} characters, more than {MAX_TOKEN_LEN}",
                text.len()
            )));
        }
        let text = text.trim();
        // Only our own wire form (URL-safe base64 of the V2 binary); the
        // library would also take V1 and JSON.
        if text.starts_with('{') {
            return Err(TokenError::Malformed("a JSON token is not accepted".into()));
        }
        let macaroon = Macaroon::deserialize(text).map_err(|error| match error {
            MacaroonError::InvalidSignature => TokenError::Forged,
            other => TokenError::Malformed(other.to_string()),
        })?;
        if macaroon.caveats().len() > MAX_CAVEATS {
            return Err(TokenError::Malformed(format!(
                "{} caveats, more than {MAX_CAVEATS}",
                macaroon.caveats().len()
            )));
        }
        if !macaroon
            .identifier()
            .starts_with(IDENTIFIER_PREFIX.as_bytes())
        {
            return Err(TokenError::Malformed("not an OptiClaw token".into()));
        }
        if macaroon
            .caveats()
            .iter()
            .any(|c| c.as_third_party().is_some())
        {
            return Err(TokenError::Malformed(
                "third-party caveats are not accepted".into(),
            ));
        }
        // The chain only: what each caveat means is checked by the runner's
        // verifier, which names the one that refuses.
        let mut chain = Verifier::default();
        chain.satisfy_general(|_| true);
        chain
            .verify(&macaroon, key.macaroon_key(), &[])
            .map_err(|_| TokenError::Forged)?;
        Ok(Self { macaroon })
    }

    /// The token's wire form (URL-safe base64 of macaroon V2 binary).
    pub fn to_base64(&self) -> String {
        self.macaroon
            .serialize(Format::V2)
            .expect("a parsed token serialises again")
    }

    /// A narrower token: this one plus a caveat, and a fresh revocation
    /// identifier. Anyone holding the token can do this; nobody can undo it.
    pub fn attenuate(&self, restriction: &Restriction) -> Result<Self, TokenError> {
        let caveat = match restriction {
            Restriction::ResourceWithin(within) => format!("{WITHIN_PREFIX}{within}"),
            Restriction::ExpiresAt(at) => format!("{BEFORE_PREFIX}{}", at.timestamp_millis()),
            Restriction::HostsWithin(hosts) => format!(
                "{HOSTS_PREFIX}{}",
                serde_json::to_string(hosts).expect("strings serialise")
            ),
        };
        let mut macaroon = self.macaroon.clone();
        macaroon
            .add_first_party_caveat(caveat)
            .and_then(|m| m.add_first_party_caveat(format!("{REVOCATION_PREFIX}{}", random_hex())))
            .map_err(|error| TokenError::Signing(error.to_string()))?;
        Ok(Self { macaroon })
    }

    /// The identifier that revokes this token and every token attenuated
    /// from it.
    pub fn revocation_id(&self) -> String {
        self.revocation_ids()
            .pop()
            .expect("a token has an identifier")
    }

    /// The token's identifier, then each attenuation's, oldest first.
    fn revocation_ids(&self) -> Vec<String> {
        let mut ids = vec![String::from_utf8_lossy(self.macaroon.identifier()).into_owned()];
        for caveat in self.macaroon.caveats() {
            if let Some(id) = caveat
                .as_first_party()
                .and_then(|c| std::str::from_utf8(c.predicate()).ok())
                .and_then(|p| p.strip_prefix(REVOCATION_PREFIX))
            {
                ids.push(id.to_owned());
            }
        }
        ids
    }

    /// The grant (first caveat) and the restrictions after it, unparsed: the
    /// grant's checks come first, so a refusal names what the grant lacks.
    fn caveats(&self) -> Result<(GrantCaveat, Vec<&str>), TokenError> {
        let mut caveats = self.macaroon.caveats().iter().map(first_party_text);
        let grant = caveats
            .next()
            .transpose()?
            .and_then(|text| text.strip_prefix(GRANT_PREFIX))
            .ok_or_else(|| TokenError::Malformed("the first caveat is not a grant".into()))?;
        let grant: GrantCaveat = serde_json::from_str(grant)
            .map_err(|error| TokenError::Malformed(format!("grant caveat: {error}")))?;
        let restrictions = caveats.collect::<Result<_, _>>()?;
        Ok((grant, restrictions))
    }
}

fn first_party_text(caveat: &Caveat) -> Result<&str, TokenError> {
    caveat
        .as_first_party()
        .and_then(|c| std::str::from_utf8(c.predicate()).ok())
        .ok_or_else(|| TokenError::Malformed("a caveat is not UTF-8 text".into()))
}

/// A caveat after the grant: a restriction, or unknown (which refuses the
/// token: nothing a holder appends may be ignored).
fn parse_restriction(text: &str) -> Result<Parsed, TokenError> {
    let unknown = || TokenError::Restricted(format!("unknown caveat {text:?}"));
    if let Some(within) = text.strip_prefix(WITHIN_PREFIX) {
        return Ok(Parsed::Within(within.to_owned()));
    }
    if let Some(ms) = text.strip_prefix(BEFORE_PREFIX) {
        let at = ms
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(unknown)?;
        return Ok(Parsed::Before(at));
    }
    if let Some(hosts) = text.strip_prefix(HOSTS_PREFIX) {
        return serde_json::from_str(hosts)
            .map(Parsed::Hosts)
            .map_err(|_| unknown());
    }
    if text.starts_with(REVOCATION_PREFIX) {
        return Ok(Parsed::RevocationId);
    }
    Err(unknown())
}

/// 128 random bits in hex (token and attenuation identifiers).
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    hex::encode(bytes)
}

/// Mints tokens with the root key.
#[derive(Debug)]
pub struct TokenMinter {
    key: SigningKey,
}

impl TokenMinter {
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// The key runners verify with (the same secret: keep it in the daemon).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Mints a token for one node, valid for `ttl` from `now`, with no
    /// network access.
    pub fn mint(
        &self,
        grant: &Grant,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<CapabilityToken, TokenError> {
        self.mint_with_hosts(grant, &[], now, ttl)
    }

    /// [`mint`](Self::mint) for a node that may also reach `hosts` over
    /// the network (egress grants such as `api.example.com:443`).
    pub fn mint_with_hosts(
        &self,
        grant: &Grant,
        hosts: &[String],
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<CapabilityToken, TokenError> {
        if ttl > MAX_TTL {
            return Err(TokenError::TtlTooLong(ttl));
        }
        let ttl = chrono::Duration::from_std(ttl).expect("at most MAX_TTL");
        let caveat = GrantCaveat {
            tool: grant.tool.clone(),
            scope: grant.scope.clone(),
            resource: grant.resource.clone(),
            aud: grant.audience.clone(),
            node: grant.node.clone(),
            exp: (now + ttl).timestamp_millis(),
            hosts: hosts.to_vec(),
        };
        let grant = serde_json::to_string(&caveat).expect("strings serialise");
        let identifier = format!("{IDENTIFIER_PREFIX}{}", random_hex());
        let mut macaroon = Macaroon::create(None, self.key.macaroon_key(), identifier)
            .map_err(|error| TokenError::Signing(error.to_string()))?;
        macaroon
            .add_first_party_caveat(format!("{GRANT_PREFIX}{grant}"))
            .map_err(|error| TokenError::Signing(error.to_string()))?;
        Ok(CapabilityToken { macaroon })
    }
}

/// Where a verifier looks up revoked tokens.
pub trait Revocations {
    fn is_revoked(&self, revocation_id: &str) -> Result<bool, TokenError>;
}

/// No token is revoked (benches, tests of other checks).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocations;

impl Revocations for NoRevocations {
    fn is_revoked(&self, _: &str) -> Result<bool, TokenError> {
        Ok(false)
    }
}

impl Revocations for HashSet<String> {
    fn is_revoked(&self, revocation_id: &str) -> Result<bool, TokenError> {
        Ok(self.contains(revocation_id))
    }
}

impl Revocations for Connection {
    fn is_revoked(&self, revocation_id: &str) -> Result<bool, TokenError> {
        let found = self
            .query_row(
                "SELECT 1 FROM security_revoked WHERE revocation_id = ?1",
                [revocation_id],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }
}

/// Revokes `token` and every token attenuated from it.
pub fn revoke(
    conn: &Connection,
    token: &CapabilityToken,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), TokenError> {
    revoke_id(conn, &token.revocation_id(), reason, now)
}

/// Records `revocation_id` (see [`CapabilityToken::revocation_id`]) as
/// revoked: the token that has it, and every token attenuated from it, is
/// refused from then on. Revoking twice keeps the first record.
pub fn revoke_id(
    conn: &Connection,
    revocation_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), TokenError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO security_revoked (revocation_id, revoked_ms, reason)
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![revocation_id, now.timestamp_millis(), reason])?;
    Ok(())
}

/// The revoked identifiers a runner checks, in memory: runners verify on
/// threads that do not hold the store's connection, and a lookup must not
/// cost a query. Loaded from `security_revoked` at start and told of every
/// revocation once it is committed. Cheap to clone (shared).
///
/// Only revocations younger than [`MAX_TTL`] are kept: a token revoked
/// earlier expired by now anyway (none lives longer than `MAX_TTL`, and it
/// cannot be revoked before it was minted).
#[derive(Debug, Clone, Default)]
pub struct RevocationList(Arc<RwLock<HashMap<String, DateTime<Utc>>>>);

impl RevocationList {
    /// The revocations recorded in the store that may still matter at `now`.
    pub fn load(conn: &Connection, now: DateTime<Utc>) -> Result<Self, TokenError> {
        let list = Self::default();
        list.refresh(conn, now)?;
        Ok(list)
    }

    /// Adds the revocations recorded in the store that may still matter at
    /// `now` (after a restart: the store is the truth).
    pub fn refresh(&self, conn: &Connection, now: DateTime<Utc>) -> Result<(), TokenError> {
        let since = (now - max_ttl()).timestamp_millis();
        let mut statement = conn.prepare(
            "SELECT revocation_id, revoked_ms FROM security_revoked WHERE revoked_ms >= ?1",
        )?;
        let rows = statement.query_map([since], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut revoked = self.0.write().expect("revocation list");
        for row in rows {
            let (id, ms) = row?;
            revoked.insert(id, DateTime::from_timestamp_millis(ms).unwrap_or(now));
        }
        Ok(())
    }

    /// Adds committed revocations (and forgets those older than
    /// [`MAX_TTL`]).
    pub fn extend(&self, ids: impl IntoIterator<Item = String>, now: DateTime<Utc>) {
        let mut revoked = self.0.write().expect("revocation list");
        revoked.retain(|_, at| *at > now - max_ttl());
        revoked.extend(ids.into_iter().map(|id| (id, now)));
    }

    /// How many revocations are kept.
    pub fn len(&self) -> usize {
        self.0.read().expect("revocation list").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn max_ttl() -> chrono::Duration {
    chrono::Duration::from_std(MAX_TTL).expect("MAX_TTL fits")
}

impl Revocations for RevocationList {
    fn is_revoked(&self, revocation_id: &str) -> Result<bool, TokenError> {
        Ok(self
            .0
            .read()
            .expect("revocation list")
            .contains_key(revocation_id))
    }
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub grant: Grant,
    pub expires_at: DateTime<Utc>,
    /// Network hosts the token grants, sorted (empty: none).
    pub hosts: Vec<String>,
}

/// The check a runner makes before it runs anything.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    key: VerifyingKey,
    runner: String,
}

impl TokenVerifier {
    /// A verifier for the runner named `runner`, trusting `key`.
    pub fn new(key: VerifyingKey, runner: impl Into<String>) -> Self {
        Self {
            key,
            runner: runner.into(),
        }
    }

    /// Checks signature, revocation, expiry, audience, tool, scope,
    /// resource and every appended restriction, in that order, and says
    /// which one failed.
    pub fn verify(
        &self,
        token: &str,
        request: &Request<'_>,
        now: DateTime<Utc>,
        revocations: &dyn Revocations,
    ) -> Result<Verified, TokenError> {
        let token = CapabilityToken::parse(token, &self.key)?;
        self.verify_parsed(&token, request, now, revocations)
    }

    /// [`verify`](Self::verify) for a request that will also reach the
    /// network hosts `hosts`: each must be granted by the token (exactly as
    /// written) and allowed by every [`Restriction::HostsWithin`].
    pub fn verify_with_hosts(
        &self,
        token: &str,
        request: &Request<'_>,
        hosts: &[String],
        now: DateTime<Utc>,
        revocations: &dyn Revocations,
    ) -> Result<Verified, TokenError> {
        let token = CapabilityToken::parse(token, &self.key)?;
        self.verify_inner(&token, request, hosts, now, revocations)
    }

    /// [`TokenVerifier::verify`] for a token already parsed (its chain
    /// checked against this verifier's key).
    pub fn verify_parsed(
        &self,
        token: &CapabilityToken,
        request: &Request<'_>,
        now: DateTime<Utc>,
        revocations: &dyn Revocations,
    ) -> Result<Verified, TokenError> {
        self.verify_inner(token, request, &[], now, revocations)
    }

    fn verify_inner(
        &self,
        token: &CapabilityToken,
        request: &Request<'_>,
        hosts: &[String],
        now: DateTime<Utc>,
        revocations: &dyn Revocations,
    ) -> Result<Verified, TokenError> {
        for id in token.revocation_ids() {
            if revocations.is_revoked(&id)? {
                return Err(TokenError::Revoked);
            }
        }
        let (grant, restrictions) = token.caveats()?;
        let expires_at = DateTime::from_timestamp_millis(grant.exp)
            .ok_or_else(|| TokenError::Malformed("expiry out of range".into()))?;
        if now >= expires_at {
            return Err(TokenError::Expired {
                expired_at: expires_at,
            });
        }
        if grant.aud != self.runner {
            return Err(TokenError::WrongAudience {
                audience: grant.aud,
                runner: self.runner.clone(),
            });
        }
        if grant.tool != request.tool {
            return Err(TokenError::ToolNotGranted {
                granted: grant.tool,
                requested: request.tool.to_owned(),
            });
        }
        if grant.scope != request.scope {
            return Err(TokenError::ScopeNotGranted {
                granted: grant.scope,
                requested: request.scope.to_owned(),
            });
        }
        if !resource_covers(&grant.resource, request.resource) {
            return Err(TokenError::ResourceNotGranted {
                granted: grant.resource,
                requested: request.resource.to_owned(),
            });
        }
        if let Some(host) = hosts.iter().find(|h| !grant.hosts.contains(h)) {
            return Err(TokenError::HostNotGranted {
                requested: host.clone(),
            });
        }
        for restriction in restrictions {
            check_restriction(&parse_restriction(restriction)?, request, hosts, now)?;
        }
        let mut granted_hosts = grant.hosts;
        granted_hosts.sort();
        granted_hosts.dedup();
        Ok(Verified {
            grant: Grant {
                tool: grant.tool,
                scope: grant.scope,
                resource: grant.resource,
                audience: grant.aud,
                node: grant.node,
            },
            expires_at,
            hosts: granted_hosts,
        })
    }
}

/// One holder's restriction against the request.
fn check_restriction(
    restriction: &Parsed,
    request: &Request<'_>,
    hosts: &[String],
    now: DateTime<Utc>,
) -> Result<(), TokenError> {
    match restriction {
        Parsed::Within(within) if !resource_covers(within, request.resource) => Err(
            TokenError::Restricted(format!("{:?} is not within {within:?}", request.resource)),
        ),
        Parsed::Before(at) if now >= *at => Err(TokenError::Restricted(format!(
            "narrowed to expire at {at}"
        ))),
        Parsed::Hosts(allowed) => match hosts.iter().find(|h| !allowed.contains(h)) {
            Some(host) => Err(TokenError::Restricted(format!(
                "host {host:?} is not among {allowed:?}"
            ))),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a granted resource covers a requested one: equal, or a path
/// beneath it (`/data` covers `/data/a` but not `/database`). Requests with
/// `..` segments are never covered.
pub fn resource_covers(granted: &str, requested: &str) -> bool {
    if requested.split('/').any(|segment| segment == "..") {
        return false;
    }
    if granted == requested {
        return true;
    }
    match requested.strip_prefix(granted) {
        Some(rest) => granted.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}
