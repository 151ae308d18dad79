//! OptiClaw's chat gateway: the bridges between chat platforms and the
//! runtime (blueprint 4.1).
//!
//! Inbound, each platform's webhook is verified exactly as the platform
//! specifies (signatures and secrets compared in constant time, stale
//! timestamps refused), normalized into [`opticlaw_core::EventEnvelope`]s,
//! checked against the allow-list and pairing state, and handed to the
//! daemon's durable [`EventSink`] before the platform gets its 200. A forged,
//! stale or unauthenticated request leaves only an [`AuditRecord`].
//!
//! Outbound, one neutral reply is formatted for each platform ([`format`]),
//! split at the platform's limit ([`split`]) and delivered by [`Sender`]
//! under lazy token buckets ([`ratelimit`]) with an idempotency key per part
//! ([`idempotency`]), so a crash never sends a message twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use opticlaw_gateway::{
//!     Gateway, GatewayConfig, MemoryAuditLog, MemoryPairingStore, MemorySink, webhook_router,
//! };
//! let gateway = Gateway::new(
//!     GatewayConfig::default(),
//!     Arc::new(MemorySink::new()),
//!     Arc::new(MemoryAuditLog::new()),
//!     Arc::new(MemoryPairingStore::new()),
//! )?;
//! let app = webhook_router(Arc::new(gateway));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

pub mod adapter;
pub mod audit;
pub mod buttons;
pub mod config;
pub mod cursor;
pub mod format;
pub mod gateway;
pub mod idempotency;
pub mod json_client;
pub mod pairing;
pub mod platforms;
pub mod poll;
pub mod probe;
pub mod ratelimit;
pub mod router;
pub mod sender;
pub mod sink;
pub mod split;
pub mod upload;
pub mod verify;

pub use adapter::{
    Ack, BridgeAdapter, Channel, Inbound, InboundError, InboundRequest, OutboundMessage, Platform,
    RenderError, ReplyOrigin,
};
pub use audit::{AuditKind, AuditLog, AuditRecord, MemoryAuditLog};
pub use config::{
    ConfigError, DEFAULT_ACCOUNT, DiscordConfig, GatewayConfig, MatrixConfig, Secret, SlackConfig,
    TelegramConfig, TelegramParseMode, WhatsAppConfig,
};
pub use cursor::{CursorStore, MemoryCursors};
pub use gateway::{Admission, Gateway};
pub use idempotency::{LedgerState, MemoryLedger, SendLedger, idempotency_key};
pub use pairing::{
    MemoryPairingStore, PairingError, PairingRequest, PairingStore, PairingTicket, SenderStatus,
};
pub use router::webhook_router;
pub use sender::{Delivery, PartOutcome, SendError, Sender};
pub use sink::{Accepted, EventSink, MemorySink, PairingNotice, SinkError};
pub use upload::{FileUpload, UploadError};
