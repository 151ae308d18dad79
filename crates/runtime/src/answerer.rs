//! The slow path's extension point: what answers a message no rule can.

use std::future::Future;
use std::pin::Pin;

use opticlaw_core::EventEnvelope;
use opticlaw_triage::Explanation;
use tokio_util::sync::CancellationToken;

/// A message the rule layer could not answer.
#[derive(Debug, Clone)]
pub struct AnswerRequest {
    pub event: EventEnvelope,
    /// The event's position in the log: stable across a restart, so an
    /// answerer can use it as an idempotency key.
    pub seq: i64,
    /// Cancelled when the event is cancelled or the runtime stops.
    pub cancel: CancellationToken,
    /// Why triage passed the message on: the classifier's view (intent,
    /// confidence, tool need, urgency) and the hints (domain, entities),
    /// for routing the model call.
    pub triage: Explanation,
}

/// What the answerer produced.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    /// How it was answered (model, tokens, gate decision...), stored as the
    /// event's outcome so "why?" has an answer.
    pub outcome: serde_json::Value,
}

pub type AnswerFuture = Pin<Box<dyn Future<Output = Result<Answer, String>> + Send>>;

/// The model/planner path, plugged into the runtime by the daemon. An error
/// is shown to the user as a clear notice; the event is still completed
/// (nothing retries a failed answer forever).
pub trait Answerer: Send + Sync + 'static {
    fn answer(&self, request: AnswerRequest) -> AnswerFuture;
}

/// A chat command that acts (`/run`, `/approve`...), for the [`Actor`].
#[derive(Debug, Clone)]
pub struct ActRequest {
    pub event: EventEnvelope,
    /// The event's position in the log (stable across a restart).
    pub seq: i64,
    pub command: opticlaw_triage::rules::ActCommand,
}

/// The `kind` in a deferred task's payload that marks it as the actor's
/// own timer: when it fires, no reminder is sent and
/// [`Actor::timer_fired`] is called instead.
pub const ACTOR_TIMER: &str = "actor_timer";

/// The orchestrator, plugged into the runtime by the daemon: carries out
/// action commands, and is called back when one of its one-shot timers
/// (deferred tasks whose payload `kind` is [`ACTOR_TIMER`]) fires.
pub trait Actor: Send + Sync + 'static {
    fn act(&self, request: ActRequest) -> AnswerFuture;
    /// A message no rule answers that asks for an action the actor can
    /// plan ("read notes.txt"): `Some` takes it (the answerer is then not
    /// called), `None` leaves it to the answerer. Must decide without
    /// waiting (rules, triage's signals), so it costs nothing otherwise.
    fn plan(&self, _request: &AnswerRequest) -> Option<AnswerFuture> {
        None
    }
    fn timer_fired(
        &self,
        task: opticlaw_store::DeferredTask,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}
