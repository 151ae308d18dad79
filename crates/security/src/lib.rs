//! OptiClaw's security core: the assistant acts, and never acts without
//! authority.
//!
//! - [`token`]: capability tokens (macaroons, HMAC-SHA256) minted per task node
//!   with least privilege, a short TTL and one audience, attenuable by any
//!   holder, verified by the runner before anything runs; [`keys`] keeps
//!   the signing key in a 0600 file.
//! - [`tier`]: trust tiers 0–3 and the per-tool, per-scope policy (deny by
//!   default); [`approval`]: the approval workflow for tiers 2 and 3, with
//!   [`totp`] (RFC 6238) as tier 3's second factor.
//! - [`audit`]: the append-only, hash-chained audit log and its verifier.
//! - [`idempotency`]: the ledger that makes side effects exactly-once.
//!
//! Everything that persists lives in the daemon's SQLite file under
//! [`COMPONENT`]; functions take a `&Connection` so they run on the store's
//! writer thread.
//!
//! ```
//! use chrono::Utc;
//! use opticlaw_security::keys::SigningKey;
//! use opticlaw_security::token::{DEFAULT_TTL, Grant, NoRevocations, Request, TokenMinter, TokenVerifier};
//!
//! let minter = TokenMinter::new(SigningKey::ephemeral());
//! let grant = Grant {
//!     tool: "shell".into(),
//!     scope: "read".into(),
//!     resource: "/home/me/notes".into(),
//!     audience: "runner-1".into(),
//!     node: "task-7/node-2".into(),
//! };
//! let now = Utc::now();
//! let token = minter.mint(&grant, now, DEFAULT_TTL).unwrap().to_base64();
//! let verifier = TokenVerifier::new(minter.verifying_key(), "runner-1");
//! let request = Request { tool: "shell", scope: "read", resource: "/home/me/notes/a.md" };
//! assert!(verifier.verify(&token, &request, now, &NoRevocations).is_ok());
//! ```

pub mod approval;
pub mod audit;
mod canonical;
pub mod idempotency;
pub mod keys;
mod schema;
pub mod secret;
mod sql;
pub mod tier;
pub mod token;
pub mod totp;

pub use canonical::to_canonical_json;
pub use schema::COMPONENT;
pub use secret::Secret;
pub use tier::{Policy, PolicyConfig, Requirement, Tier};
