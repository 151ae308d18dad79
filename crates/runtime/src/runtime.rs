use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opticlaw_core::{EventEnvelope, ResponseKind, ResponsePacket, RuntimeState};
use opticlaw_store::{EventStatus, StoreError, StoreHandle, StoreStats, ops};
use opticlaw_triage::rules::{RuleAction, RuleEngine};
use opticlaw_triage::{Triage, TriageDecision};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::answerer::{Actor, Answerer};
use crate::handler::{AnswerContext, Applied, decision_completion};
use crate::queue::{PriorityQueue, QueueDepths};

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Events held in memory across all classes before shedding starts.
    pub queue_capacity: usize,
    /// Events processed concurrently.
    pub workers: usize,
    /// What a refused caller is told to wait, in seconds.
    pub retry_after_secs: u64,
    /// Shown when a message needs a model and none is configured.
    pub no_model_hint: String,
    /// `false` accepts and stores events without processing them: for
    /// fault-injection tests of what survives a crash between the two.
    pub process_events: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            workers: 4,
            retry_after_secs: 1,
            no_model_hint: "set [model] in config.toml".to_owned(),
            process_events: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "the assistant is busy: its queue is full of work at least as urgent; retry in {retry_after_secs}s"
    )]
    Busy { retry_after_secs: u64 },
    #[error("the assistant is shutting down and accepts no new events")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer to an accepted event.
#[derive(Debug, Clone, Serialize)]
pub struct Submission {
    pub event_id: String,
    pub seq: i64,
    /// The event was already accepted earlier; it is not processed again.
    pub duplicate: bool,
    pub status: EventStatus,
    /// The replies already committed for this event: those the fast path
    /// just wrote, or for a duplicate those of the first delivery.
    pub replies: Vec<ResponsePacket>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeStatus {
    pub state: RuntimeState,
    pub queue: QueueDepths,
    pub in_flight: usize,
    pub processed: u64,
    pub duplicates: u64,
    pub shed: u64,
    pub refused_busy: u64,
    pub timer_fires: u64,
    pub uptime_ms: u64,
    pub store: StoreStats,
}

pub(crate) struct Shared {
    pub store: StoreHandle,
    /// Rules first, then the tiny classifier. Built on the first message,
    /// so start-up stays fast and small.
    triage: std::sync::OnceLock<Triage>,
    rules: Mutex<Option<RuleEngine>>,
    pub config: RuntimeConfig,
    pub queue: Mutex<PriorityQueue>,
    pub queue_ready: Notify,
    pub drained: Notify,
    pub rearm: Notify,
    pub replies: broadcast::Sender<ResponsePacket>,
    /// Counts committed replies memory may record; see [`Runtime::subscribe_memorable`].
    pub memorable: watch::Sender<u64>,
    pub in_flight: Mutex<HashMap<i64, CancellationToken>>,
    pub active_fastpath: AtomicUsize,
    pub active_plan: AtomicUsize,
    pub waiting_external: AtomicUsize,
    pub processed: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused_busy: AtomicU64,
    pub timer_fires: AtomicU64,
    pub accepting: AtomicBool,
    pub stop: CancellationToken,
    pub started: Instant,
    pub no_model_hint: Arc<str>,
    pub answerer: Option<Arc<dyn Answerer>>,
    pub actor: Option<Arc<dyn Actor>>,
}

/// The running event runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
}

impl Runtime {
    /// Starts the workers and the scheduler on the current tokio runtime and
    /// queues every event a previous run accepted but did not finish.
    pub async fn start(
        store: StoreHandle,
        rules: RuleEngine,
        config: RuntimeConfig,
    ) -> Result<Self, StoreError> {
        Self::start_with(store, rules, config, None).await
    }

    /// Like [`Runtime::start`], with an answerer for what no rule answers.
    pub async fn start_with(
        store: StoreHandle,
        rules: RuleEngine,
        config: RuntimeConfig,
        answerer: Option<Arc<dyn Answerer>>,
    ) -> Result<Self, StoreError> {
        Self::start_with_actor(store, rules, config, answerer, None).await
    }

    /// Like [`Runtime::start_with`], with an actor for action commands.
    pub async fn start_with_actor(
        store: StoreHandle,
        rules: RuleEngine,
        config: RuntimeConfig,
        answerer: Option<Arc<dyn Answerer>>,
        actor: Option<Arc<dyn Actor>>,
    ) -> Result<Self, StoreError> {
        let (replies, _) = broadcast::channel(256);
        let (memorable, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store,
            triage: std::sync::OnceLock::new(),
            rules: Mutex::new(Some(rules)),
            queue: Mutex::new(PriorityQueue::new(config.queue_capacity)),
            no_model_hint: Arc::from(config.no_model_hint.as_str()),
            answerer,
            actor,
            config,
            queue_ready: Notify::new(),
            drained: Notify::new(),
            rearm: Notify::new(),
            replies,
            memorable,
            in_flight: Mutex::new(HashMap::new()),
            active_fastpath: AtomicUsize::new(0),
            active_plan: AtomicUsize::new(0),
            waiting_external: AtomicUsize::new(0),
            processed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
            timer_fires: AtomicU64::new(0),
            accepting: AtomicBool::new(true),
            stop: CancellationToken::new(),
            started: Instant::now(),
        });
        let runtime = Self { shared };
        runtime.shared.queue.lock().unwrap().spilled = true;
        runtime.refill().await?;
        let workers = if runtime.shared.config.process_events {
            runtime.shared.config.workers.max(1)
        } else {
            0
        };
        for _ in 0..workers {
            tokio::spawn(crate::handler::worker(runtime.clone()));
        }
        tokio::spawn(crate::scheduler::run(runtime.clone()));
        Ok(runtime)
    }

    /// Admits, stores and queues an event; returns once it is durable.
    /// Admits, stores and processes or queues an event; returns once it is
    /// durable.
    ///
    /// A message the rule layer can answer takes the fast path: it is
    /// stored and answered in one transaction, and the submission carries
    /// the replies. Anything else is stored, queued by priority, and answered
    /// by a worker.
    pub async fn submit(&self, event: EventEnvelope) -> Result<Submission, SubmitError> {
        let shared = &self.shared;
        if !shared.accepting.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        let decision = shared
            .triage()
            .decide(&event.content.text, chrono::Local::now().fixed_offset());
        let slow = matches!(decision.action, RuleAction::NeedsModel | RuleAction::Act(_));
        if shared.config.process_events && !slow {
            return self.submit_fast(event, decision).await;
        }
        let admitted = shared.queue.lock().unwrap().admit(event.hints.priority);
        if admitted.is_err() {
            shared.refused_busy.fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::Busy {
                retry_after_secs: shared.config.retry_after_secs,
            });
        }
        let stored = event.clone();
        let accepted = shared
            .store
            .call(move |conn| ops::accept_event(conn, &stored, now_ms()))
            .await;
        let mut queue = shared.queue.lock().unwrap();
        let acceptance = match accepted {
            Ok(acceptance) => acceptance,
            Err(err) => {
                queue.release();
                return Err(err.into());
            }
        };
        if acceptance.duplicate {
            queue.release();
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
        } else if queue.is_known(acceptance.seq) {
            queue.release();
        } else {
            queue.push_admitted(acceptance.seq, event.clone());
            drop(queue);
            shared.queue_ready.notify_one();
        }
        Ok(Submission {
            event_id: event.event_id,
            seq: acceptance.seq,
            duplicate: acceptance.duplicate,
            status: acceptance.status,
            replies: acceptance.replies,
        })
    }

    /// The fast path: accept and answer in one transaction.
    async fn submit_fast(
        &self,
        event: EventEnvelope,
        decision: TriageDecision,
    ) -> Result<Submission, SubmitError> {
        let shared = &self.shared;
        let context = self.answer_context();
        let event_id = event.event_id.clone();
        // Serialised here, not on the store's one writer thread.
        let envelope = serde_json::to_string(&event).map_err(StoreError::from)?;
        let answers_command = opticlaw_core::is_command(&event.content.text);
        shared.active_fastpath.fetch_add(1, Ordering::Relaxed);
        let result = shared
            .store
            .call(move |conn| {
                // The reply is prepared first and the event inserted already
                // answered: one row write, never a pending row to update. A
                // duplicate discards what was prepared (it has no effects
                // until written).
                let completion = decision_completion(conn, 0, &event, &decision, &context)?;
                let touches_schedule = completion.touches_schedule();
                let (acceptance, replies) =
                    ops::accept_completed_event(conn, &event, &envelope, &completion, now_ms())?;
                if acceptance.duplicate {
                    return Ok((acceptance, None));
                }
                let applied = Applied {
                    replies,
                    touches_schedule,
                };
                Ok((acceptance, Some(applied)))
            })
            .await;
        shared.active_fastpath.fetch_sub(1, Ordering::Relaxed);
        let (acceptance, applied) = result?;
        let Some(applied) = applied else {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Submission {
                event_id,
                seq: acceptance.seq,
                duplicate: true,
                status: acceptance.status,
                replies: acceptance.replies,
            });
        };
        shared.processed.fetch_add(1, Ordering::Relaxed);
        if applied.touches_schedule {
            shared.rearm.notify_one();
        }
        for reply in &applied.replies {
            shared.publish(reply.clone(), !answers_command);
        }
        Ok(Submission {
            event_id,
            seq: acceptance.seq,
            duplicate: false,
            status: EventStatus::Done,
            replies: applied.replies,
        })
    }

    pub(crate) fn answer_context(&self) -> AnswerContext {
        AnswerContext {
            uptime_ms: self.shared.started.elapsed().as_millis() as u64,
            state: self.state(),
            no_model_hint: self.shared.no_model_hint.clone(),
            model_answer: None,
        }
    }

    /// Writes a notice that answers no stored event to the outbox and sends
    /// it to subscribers.
    pub async fn notify(
        &self,
        reply: opticlaw_store::NewReply,
    ) -> Result<ResponsePacket, StoreError> {
        let written = self
            .shared
            .store
            .call(move |conn| ops::add_reply(conn, &reply, now_ms()))
            .await?;
        self.shared.publish(written.clone(), true);
        Ok(written)
    }

    /// Stores a one-shot task and re-arms the scheduler for it.
    pub async fn defer(&self, task: opticlaw_store::NewDeferredTask) -> Result<(), StoreError> {
        self.shared
            .store
            .call(move |conn| ops::add_deferred(conn, &task, now_ms()))
            .await?;
        self.shared.rearm.notify_one();
        Ok(())
    }

    /// Every reply and reminder as it is committed.
    pub fn subscribe(&self) -> broadcast::Receiver<ResponsePacket> {
        self.shared.replies.subscribe()
    }

    /// Changes when a reply memory may record is committed: every reply
    /// but a notice or the answer to a `/command` (memory records neither
    /// the command nor its answer; it reads them later with the next
    /// turn worth keeping). A burst of commands then never wakes memory.
    /// Changes coalesce; the sender's drop ends the receiver at shutdown.
    pub fn subscribe_memorable(&self) -> watch::Receiver<u64> {
        self.shared.memorable.subscribe()
    }

    /// Cancelled once shutdown has drained: long-lived streams end on it.
    pub fn stopping(&self) -> CancellationToken {
        self.shared.stop.clone()
    }

    pub fn store(&self) -> &StoreHandle {
        &self.shared.store
    }

    /// Cancels an event being processed; `false` if it is not in flight.
    pub fn cancel(&self, seq: i64) -> bool {
        match self.shared.in_flight.lock().unwrap().get(&seq) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub fn state(&self) -> RuntimeState {
        let s = &self.shared;
        if s.active_plan.load(Ordering::Relaxed) > 0 {
            RuntimeState::ActivePlanExec
        } else if s.active_fastpath.load(Ordering::Relaxed) > 0 {
            RuntimeState::ActiveFastpath
        } else if s.waiting_external.load(Ordering::Relaxed) > 0 {
            RuntimeState::WaitExternal
        } else {
            RuntimeState::Sleeping
        }
    }

    pub async fn status(&self) -> Result<RuntimeStatus, StoreError> {
        let store = self.shared.store.call(ops::stats).await?;
        let s = &self.shared;
        let (queue, shed) = {
            let queue = s.queue.lock().unwrap();
            (queue.depths(), queue.shed_total)
        };
        Ok(RuntimeStatus {
            state: self.state(),
            queue,
            in_flight: s.in_flight.lock().unwrap().len(),
            processed: s.processed.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            shed,
            refused_busy: s.refused_busy.load(Ordering::Relaxed),
            timer_fires: s.timer_fires.load(Ordering::Relaxed),
            uptime_ms: s.started.elapsed().as_millis() as u64,
            store,
        })
    }

    /// Stops accepting, lets queued and in-flight work finish (up to
    /// `grace`), then stops the workers and the scheduler. Work not finished
    /// by then stays pending in the store and runs after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared.accepting.store(false, Ordering::Release);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let drained = shared.drained.notified();
            if self.is_idle() {
                break;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::warn!(
                    "shutdown grace period ended with work pending; it resumes on restart"
                );
                break;
            }
        }
        shared.stop.cancel();
    }

    fn is_idle(&self) -> bool {
        let queue = self.shared.queue.lock().unwrap();
        queue.len() == 0 && !queue.spilled && self.shared.in_flight.lock().unwrap().is_empty()
    }

    /// Reads back accepted events that are only in the store (after a
    /// restart, or after shedding) once there is room for them.
    pub(crate) async fn refill(&self) -> Result<(), StoreError> {
        let room = {
            let queue = self.shared.queue.lock().unwrap();
            if !queue.spilled {
                return Ok(());
            }
            queue.free_slots()
        };
        if room == 0 {
            return Ok(());
        }
        let mut after = 0;
        let mut queued = 0;
        let more_left = loop {
            let batch = self
                .shared
                .store
                .call(move |conn| ops::pending_events(conn, after, 256))
                .await?;
            let last_page = batch.len() < 256;
            let mut queue = self.shared.queue.lock().unwrap();
            let mut rest = batch.into_iter();
            for (seq, event) in rest.by_ref() {
                after = seq;
                if queue.enqueue(seq, event) {
                    queued += 1;
                    if queued == room {
                        break;
                    }
                }
            }
            let more_left = !last_page || rest.next().is_some();
            if queued == room || !more_left {
                queue.spilled = more_left;
                break more_left;
            }
        };
        tracing::debug!(more_left, "refill done");
        if queued > 0 {
            tracing::info!(queued, "queued accepted events read back from the store");
            for _ in 0..queued.min(self.shared.config.workers) {
                self.shared.queue_ready.notify_one();
            }
        }
        Ok(())
    }
}

impl Shared {
    pub(crate) fn triage(&self) -> &Triage {
        self.triage.get_or_init(|| {
            let rules = self.rules.lock().unwrap().take().unwrap_or_default();
            Triage::new(rules)
        })
    }

    /// Hands a committed reply to subscribers (none is fine: it stays in
    /// the outbox) and, unless `worth_remembering` is false, wakes memory.
    pub(crate) fn publish(&self, reply: ResponsePacket, worth_remembering: bool) {
        let memorable = worth_remembering && reply.kind != ResponseKind::Notice;
        let _ = self.replies.send(reply);
        if memorable {
            self.memorable.send_modify(|count| *count += 1);
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
