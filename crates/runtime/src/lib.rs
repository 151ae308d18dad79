//! OptiClaw's event runtime.
//!
//! An event enters through [`Runtime::submit`]: it is admitted to the
//! bounded priority queue (shedding a lower class, or refusing with
//! [`SubmitError::Busy`]), written to the store, and only then acknowledged.
//! Workers take events most-urgent class first, run the rule layer, and
//! commit the event's replies and scheduled tasks together with its "done"
//! mark. Replies go out to subscribers and stay in the store's outbox.
//!
//! Nothing here wakes on its own: workers wait on the queue, the scheduler
//! arms one timer for the earliest `wake_at` and otherwise waits for a
//! re-arm signal, and the store's thread blocks on its channel.

mod answerer;
mod handler;
mod queue;
mod runtime;
mod scheduler;
mod timer;

pub use answerer::{ACTOR_TIMER, ActRequest, Actor, Answer, AnswerFuture, AnswerRequest, Answerer};
pub use handler::no_model_notice;
pub use queue::QueueDepths;
pub use runtime::{Runtime, RuntimeConfig, RuntimeStatus, Submission, SubmitError};
