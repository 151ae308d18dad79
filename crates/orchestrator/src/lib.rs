//! OptiClaw's tool orchestrator: it runs a validated
//! [`TaskGraph`](opticlaw_core::TaskGraph) and never acts without authority.
//!
//! - [`state`] and [`journal`]: an event-sourced state machine per task and
//!   node (`planned -> approved -> running -> blocked -> completed | failed
//!   | rolled_back`); every transition is an appended row, illegal ones are
//!   refused naming task, node, from and to, and state is rebuilt from the
//!   log after a crash.
//! - [`engine`]: the [`Orchestrator`]. Independent nodes run concurrently;
//!   each tool call gets a capability token minted for that node and
//!   verified by the runner, a trust tier from the policy (tier 2 and 3 wait
//!   for the user's approval), an idempotency key stored before the call,
//!   and an audit record. Retries back off on one-shot timers; nodes that
//!   declare a compensating action are rolled back in reverse order when a
//!   later node fails; tasks out of retries go to a dead-letter queue.
//! - [`tools`]: the [`Tool`](tools::Tool) trait and the `shell` (namespace
//!   sandbox), `file.read` and `file.write` (beneath granted directories,
//!   resolved with `openat2(RESOLVE_BENEATH)`) runners.
//!
//! Tables live in the daemon's SQLite file under [`COMPONENT`] (and the
//! security core's `opticlaw_security::COMPONENT`).

pub mod engine;
pub mod journal;
pub mod plans;
mod schema;
pub mod state;
pub mod tools;

pub use engine::{
    BoxFuture, Notifier, OnInsert, OrchError, Orchestrator, OrchestratorConfig, OutcomeHook, Parts,
    Reasoner, RetryTimer, Timers,
};
pub use journal::{DeadLetter, JournalError, NodeView, TaskView};
pub use schema::COMPONENT;
pub use state::State;
