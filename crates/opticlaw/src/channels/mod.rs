//! The chat platforms, wired to the runtime and the store: the gateway's
//! traits implemented on SQLite (audit, pairing) and on the runtime (sink).

mod ledger;
mod outbound;
mod sink;
mod stores;

pub use ledger::DaemonLedger;
pub use outbound::run_outbound;
pub use sink::RuntimeSink;
pub use stores::{COMPONENT, SqliteAudit, SqliteCursors, SqlitePairing};
