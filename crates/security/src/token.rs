//! Capability tokens: biscuit tokens minted per task node.
//!
//! A token's authority block holds exactly one
//! `grant(tool, scope, resource, audience, expires, node)` fact, one
//! `host(h)` fact per network host the node may reach (none: no network;
//! see [`TokenMinter::mint_with_hosts`]), plus checks
//! that repeat the expiry and the audience, so that even a verifier that
//! forgot a policy would refuse a stale or misdirected token. Holders narrow
//! a token by appending blocks of checks ([`Restriction`]); facts in
//! appended blocks are not trusted by the verifier, so an appended block can
//! never widen what the authority block granted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use biscuit_auth::error::{Format, Logic, Token as BiscuitError};
use biscuit_auth::macros::{
    authorizer, authorizer_merge, biscuit, biscuit_merge, block, block_merge, rule,
};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey};
use chrono::{DateTime, Utc};
use opticlaw_store::rusqlite::{self, Connection, OptionalExtension, params};

use crate::keys::SigningKey;

/// How long a token lives unless the minter says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The longest TTL a token may be minted with.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Tokens longer than this (base64 characters) are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Bounds on one verification's Datalog run. Our tokens need a few facts
/// and one iteration; the time bound is generous so that a busy machine
/// does not refuse a good token (biscuit's default is 1 ms).
const LIMITS: AuthorizerLimits = AuthorizerLimits {
    max_facts: 256,
    max_iterations: 16,
    max_time: Duration::from_millis(50),
};

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
    #[error("verifying the token exceeded its limits: {0}")]
    Limits(String),
    #[error("a TTL of {0:?} is longer than the allowed maximum")]
    TtlTooLong(Duration),
    #[error("could not sign the token: {0}")]
    Signing(String),
    #[error("revocation list: {0}")]
    Store(#[from] rusqlite::Error),
}

/// A parsed, signature-checked capability token.
#[derive(Debug, Clone)]
pub struct CapabilityToken {
    biscuit: Biscuit,
}

impl CapabilityToken {
    /// Parses a token and checks its signature chain against `root`.
    pub fn parse(text: &str, root: &PublicKey) -> Result<Self, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "{} characters, more than {MAX_TOKEN_LEN}",
                text.len()
            )));
        }
        let biscuit = Biscuit::from_base64(text.trim(), *root).map_err(classify_parse_error)?;
        Ok(Self { biscuit })
    }

    /// The token's wire form (URL-safe base64).
    pub fn to_base64(&self) -> String {
        self.biscuit
            .to_base64()
            .expect("a parsed token serialises again")
    }

    /// A narrower token: this one plus a block of checks. Anyone holding
    /// the token can do this; nobody can undo it.
    pub fn attenuate(&self, restriction: &Restriction) -> Result<Self, TokenError> {
        let block = match restriction {
            Restriction::ResourceWithin(within) => {
                let beneath = if within.ends_with('/') {
                    within.clone()
                } else {
                    format!("{within}/")
                };
                block!(
                    r#"check if operation($tool, $scope, $resource),
                           $resource == {within} || $resource.starts_with({beneath});"#,
                    within = within.clone(),
                    beneath = beneath,
                )
            }
            Restriction::ExpiresAt(at) => block!(
                r#"check if time($now), $now < {at};"#,
                at = SystemTime::from(*at),
            ),
            Restriction::HostsWithin(hosts) => {
                // Facts of this block are seen by its own check only; the
                // verifier states the hosts a run will use as `uses_host`.
                let mut block = block!(r#"check all uses_host($h), allowed_host($h);"#);
                for host in hosts {
                    block = block_merge!(block, r#"allowed_host({host});"#, host = host.clone());
                }
                block
            }
        };
        let biscuit = self
            .biscuit
            .append(block)
            .map_err(|error| TokenError::Signing(error.to_string()))?;
        Ok(Self { biscuit })
    }

    /// The identifier that revokes this token and every token attenuated
    /// from it (hex).
    pub fn revocation_id(&self) -> String {
        let ids = self.biscuit.revocation_identifiers();
        hex::encode(ids.last().expect("a token has at least one block"))
    }

    fn revocation_ids(&self) -> Vec<String> {
        self.biscuit
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect()
    }
}

fn classify_parse_error(error: BiscuitError) -> TokenError {
    match error {
        BiscuitError::Format(Format::Signature(_))
        | BiscuitError::Format(Format::SealedSignature)
        | BiscuitError::Format(Format::UnknownPublicKey) => TokenError::Forged,
        other => TokenError::Malformed(other.to_string()),
    }
}

fn classify_run_error(error: BiscuitError) -> TokenError {
    match error {
        BiscuitError::RunLimit(limit) => TokenError::Limits(limit.to_string()),
        other => TokenError::Malformed(other.to_string()),
    }
}

/// Mints tokens with the root signing key.
#[derive(Debug)]
pub struct TokenMinter {
    key: SigningKey,
}

impl TokenMinter {
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// The public key runners verify with.
    pub fn public_key(&self) -> PublicKey {
        self.key.public()
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
    /// the network (egress grants such as `api.example.com:443`), one
    /// `host(h)` fact each in the authority block.
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
        let expires = SystemTime::from(now) + ttl;
        let builder = biscuit!(
            r#"
            grant({tool}, {scope}, {resource}, {audience}, {expires}, {node});
            check if time($now), $now < {expires};
            check if runner({audience});
            "#,
            tool = grant.tool.clone(),
            scope = grant.scope.clone(),
            resource = grant.resource.clone(),
            audience = grant.audience.clone(),
            node = grant.node.clone(),
            expires = expires,
        );
        let builder = hosts.iter().fold(builder, |builder, host| {
            biscuit_merge!(builder, r#"host({host});"#, host = host.clone())
        });
        let biscuit = builder
            .build(self.key.keypair())
            .map_err(|error| TokenError::Signing(error.to_string()))?;
        Ok(CapabilityToken { biscuit })
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
    root: PublicKey,
    runner: String,
}

impl TokenVerifier {
    /// A verifier for the runner named `runner`, trusting `root`.
    pub fn new(root: PublicKey, runner: impl Into<String>) -> Self {
        Self {
            root,
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
        let token = CapabilityToken::parse(token, &self.root)?;
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
        let token = CapabilityToken::parse(token, &self.root)?;
        self.verify_inner(&token, request, hosts, now, revocations)
    }

    /// [`TokenVerifier::verify`] for a token already parsed.
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
        let now_system = SystemTime::from(now);
        let builder = authorizer!(
            r#"
            time({now});
            runner({runner});
            operation({tool}, {scope}, {resource});
            allow if grant($tool, $scope, $granted, $audience, $expires, $node),
                     operation($tool, $scope, $requested),
                     runner($audience),
                     time($now), $now < $expires,
                     $requested.starts_with($granted);
            "#,
            now = now_system,
            runner = self.runner.clone(),
            tool = request.tool.to_owned(),
            scope = request.scope.to_owned(),
            resource = request.resource.to_owned(),
        );
        let builder = hosts.iter().fold(builder, |builder, host| {
            authorizer_merge!(builder, r#"uses_host({host});"#, host = host.clone())
        });
        let mut authorizer = builder
            .set_limits(LIMITS)
            .build(&token.biscuit)
            .map_err(classify_run_error)?;

        // Only the authority block's facts are trusted by this query.
        let grants: Vec<(String, String, String, String, SystemTime, String)> = authorizer
            // Parsed at compile time: a string rule would be parsed by
            // biscuit's Datalog parser on every verification.
            .query(rule!(
                "g($tool, $scope, $resource, $audience, $expires, $node) <-
                 grant($tool, $scope, $resource, $audience, $expires, $node)"
            ))
            .map_err(classify_run_error)?;
        let [(tool, scope, resource, audience, expires, node)] = <[_; 1]>::try_from(grants)
            .map_err(|found| {
                TokenError::Malformed(format!("expected one grant, found {}", found.len()))
            })?;
        let expires_at = DateTime::<Utc>::from(expires);

        if now >= expires_at {
            return Err(TokenError::Expired {
                expired_at: expires_at,
            });
        }
        if audience != self.runner {
            return Err(TokenError::WrongAudience {
                audience,
                runner: self.runner.clone(),
            });
        }
        if tool != request.tool {
            return Err(TokenError::ToolNotGranted {
                granted: tool,
                requested: request.tool.to_owned(),
            });
        }
        if scope != request.scope {
            return Err(TokenError::ScopeNotGranted {
                granted: scope,
                requested: request.scope.to_owned(),
            });
        }
        if !resource_covers(&resource, request.resource) {
            return Err(TokenError::ResourceNotGranted {
                granted: resource,
                requested: request.resource.to_owned(),
            });
        }
        let granted_hosts: Vec<(String,)> = authorizer
            .query(rule!("h($host) <- host($host)"))
            .map_err(classify_run_error)?;
        // Sorted: Datalog answers come as a set.
        let mut granted_hosts: Vec<String> = granted_hosts.into_iter().map(|(h,)| h).collect();
        granted_hosts.sort();
        if let Some(host) = hosts.iter().find(|h| !granted_hosts.contains(h)) {
            return Err(TokenError::HostNotGranted {
                requested: host.clone(),
            });
        }
        match authorizer.authorize() {
            Ok(_) => {}
            Err(BiscuitError::FailedLogic(Logic::Unauthorized { checks, .. })) => {
                return Err(TokenError::Restricted(format!("{checks:?}")));
            }
            Err(other) => return Err(classify_run_error(other)),
        }
        Ok(Verified {
            grant: Grant {
                tool,
                scope,
                resource,
                audience,
                node,
            },
            expires_at,
            hosts: granted_hosts,
        })
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
