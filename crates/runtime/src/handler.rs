//! Processing: decide with the rule layer and commit the outcome atomically,
//! either inline at submission (the fast path) or by a worker taking the
//! most urgent queued event.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Local, Utc};
use opticlaw_core::{EventEnvelope, ResponseKind, ResponsePacket, RuntimeState};
use opticlaw_store::rusqlite::Connection;
use opticlaw_store::{Completion, EventStatus, NewDeferredTask, NewReply, StoreError, ops};
use opticlaw_triage::TriageDecision;
use opticlaw_triage::rules::RuleAction;
use serde_json::json;

use crate::answerer::{Answer, AnswerRequest};
use crate::runtime::{Runtime, now_ms};

pub(crate) async fn worker(runtime: Runtime) {
    let shared = runtime.shared.clone();
    loop {
        let ready = shared.queue_ready.notified();
        let next = shared.queue.lock().unwrap().pop();
        let Some((seq, event)) = next else {
            let spilled = shared.queue.lock().unwrap().spilled;
            if spilled {
                if let Err(err) = runtime.refill().await {
                    tracing::error!(%err, "reading pending events back from the store failed");
                }
                if shared.queue.lock().unwrap().len() > 0 {
                    continue;
                }
            }
            shared.drained.notify_waiters();
            tokio::select! {
                () = ready => continue,
                () = shared.stop.cancelled() => return,
            }
        };
        // More may be waiting: let a sibling worker look too.
        shared.queue_ready.notify_one();
        let token = shared.stop.child_token();
        shared.in_flight.lock().unwrap().insert(seq, token.clone());
        shared.active_fastpath.fetch_add(1, Ordering::Relaxed);

        let outcome = handle_event(&runtime, seq, &event, &token).await;

        shared.active_fastpath.fetch_sub(1, Ordering::Relaxed);
        shared.in_flight.lock().unwrap().remove(&seq);
        shared.queue.lock().unwrap().finished(seq);
        match outcome {
            Ok(replies) => {
                shared.processed.fetch_add(1, Ordering::Relaxed);
                for reply in replies {
                    shared.publish(reply, true);
                }
            }
            Err(err) => {
                // The event stays pending in the store and is retried after
                // the next start; nothing accepted is dropped.
                tracing::error!(seq, %err, "processing an event failed; it stays pending");
            }
        }
    }
}

async fn handle_event(
    runtime: &Runtime,
    seq: i64,
    event: &EventEnvelope,
    token: &tokio_util::sync::CancellationToken,
) -> Result<Vec<ResponsePacket>, StoreError> {
    let decision = runtime
        .shared
        .triage()
        .decide(&event.content.text, Local::now().fixed_offset());
    let mut context = runtime.answer_context();
    if decision.action == RuleAction::NeedsModel {
        let request = AnswerRequest {
            event: event.clone(),
            seq,
            cancel: token.clone(),
            triage: decision.explanation(),
        };
        // The actor's planner first (an action request), then the answerer.
        let planned = runtime
            .shared
            .actor
            .as_ref()
            .and_then(|actor| actor.plan(&request));
        let answering = planned.or_else(|| {
            let answerer = runtime.shared.answerer.clone()?;
            Some(answerer.answer(request))
        });
        if let Some(answering) = answering {
            runtime.shared.active_plan.fetch_add(1, Ordering::Relaxed);
            let answer = answering.await;
            runtime.shared.active_plan.fetch_sub(1, Ordering::Relaxed);
            context.model_answer = Some(answer);
        }
    }
    if let RuleAction::Act(command) = &decision.action
        && let Some(actor) = runtime.shared.actor.clone()
    {
        runtime.shared.active_plan.fetch_add(1, Ordering::Relaxed);
        let answer = actor
            .act(crate::answerer::ActRequest {
                event: event.clone(),
                seq,
                command: command.clone(),
            })
            .await;
        runtime.shared.active_plan.fetch_sub(1, Ordering::Relaxed);
        context.model_answer = Some(answer);
    }
    let event = event.clone();
    let cancelled = token.is_cancelled();
    let applied = runtime
        .shared
        .store
        .call(move |conn| {
            if cancelled {
                let completion = Completion {
                    event_seq: seq,
                    status: EventStatus::Failed,
                    outcome: json!({ "cancelled": true }),
                    replies: Vec::new(),
                    schedule: Vec::new(),
                    cancel: Vec::new(),
                };
                ops::complete_event(conn, &completion, now_ms())?;
                return Ok(Applied::default());
            }
            apply_decision(conn, seq, &event, &decision, &context)
        })
        .await?;
    if applied.touches_schedule {
        runtime.shared.rearm.notify_one();
    }
    Ok(applied.replies)
}

/// What the reply text needs from the runtime, captured before the store
/// transaction so the transaction itself never waits on the runtime.
#[derive(Clone)]
pub(crate) struct AnswerContext {
    pub uptime_ms: u64,
    pub state: RuntimeState,
    pub no_model_hint: std::sync::Arc<str>,
    /// The answerer's result for a message no rule answers, if one ran.
    pub model_answer: Option<Result<Answer, String>>,
}

/// What processing an event wrote.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub replies: Vec<ResponsePacket>,
    /// A deferred task was added or cancelled: the scheduler must re-arm.
    pub touches_schedule: bool,
}

/// Carries out a rule decision for the stored event `seq` inside the
/// caller's transaction: the event is marked done together with its replies
/// and the tasks it schedules or cancels.
pub(crate) fn apply_decision(
    conn: &Connection,
    seq: i64,
    event: &EventEnvelope,
    decision: &TriageDecision,
    context: &AnswerContext,
) -> Result<Applied, StoreError> {
    let completion = decision_completion(conn, seq, event, decision, context)?;
    let touches_schedule = completion.touches_schedule();
    let replies = ops::complete_event(conn, &completion, now_ms())?;
    Ok(Applied {
        replies,
        touches_schedule,
    })
}

/// What a rule decision produces for the event `seq` (its replies, the
/// deferred tasks it adds or cancels, the outcome explaining it), not yet
/// written.
pub(crate) fn decision_completion(
    conn: &Connection,
    seq: i64,
    event: &EventEnvelope,
    decision: &TriageDecision,
    context: &AnswerContext,
) -> Result<Completion, StoreError> {
    let mut completion = Completion {
        event_seq: seq,
        status: EventStatus::Done,
        outcome: json!({ "rule": decision.rule, "path": "fast" }),
        replies: Vec::new(),
        schedule: Vec::new(),
        cancel: Vec::new(),
    };
    let text = respond(conn, event, &decision.action, context, &mut completion)?;
    // Why it was answered this way: the rule, or the classifier's view.
    completion.outcome["triage"] = decision.explanation_json();
    completion
        .replies
        .push(reply(event, ResponseKind::Reply, text));
    Ok(completion)
}

/// The reply text for a decision, adding to `completion` what it changes.
fn respond(
    conn: &Connection,
    event: &EventEnvelope,
    action: &RuleAction,
    context: &AnswerContext,
    completion: &mut Completion,
) -> Result<String, StoreError> {
    Ok(match action {
        RuleAction::Reply(text) => text.clone(),
        RuleAction::Status => {
            let stats = ops::stats(conn)?;
            let next = stats
                .next_wake_at_ms
                .map(|ms| format!(", next at {}", local_time(ms)))
                .unwrap_or_default();
            format!(
                "Running for {}s. State: {}. Events handled: {}. Reminders pending: {}{}.",
                context.uptime_ms / 1000,
                context.state.as_str(),
                stats.events_total,
                stats.deferred_pending,
                next
            )
        }
        RuleAction::ScheduleReminder(reminder) => {
            let task_id = uuid::Uuid::now_v7().simple().to_string();
            let wake_at_ms = reminder.wake_at.with_timezone(&Utc).timestamp_millis();
            completion.schedule.push(NewDeferredTask {
                task_id: task_id.clone(),
                wake_at_ms,
                condition: None,
                payload: json!({
                    "kind": "reminder",
                    "text": reminder.task,
                    "source": event.source,
                    "user_id": event.user_id,
                    "thread_id": event.thread_id,
                }),
                owner_source: event.source.clone(),
                owner_user: event.user_id.clone(),
            });
            format!(
                "OK, I'll remind you to {} at {} (id {}).",
                reminder.task,
                reminder.wake_at.format("%H:%M on %a %-d %b"),
                short_id(&task_id)
            )
        }
        RuleAction::ListReminders => {
            let tasks = ops::list_deferred(conn, &event.source, &event.user_id)?;
            if tasks.is_empty() {
                "You have no pending reminders.".to_owned()
            } else {
                let lines: Vec<String> = tasks
                    .iter()
                    .map(|t| {
                        format!(
                            "• {} — {} (id {})",
                            local_time(t.wake_at_ms),
                            t.payload["text"].as_str().unwrap_or("?"),
                            short_id(&t.task_id)
                        )
                    })
                    .collect();
                format!("Your reminders:\n{}", lines.join("\n"))
            }
        }
        RuleAction::CancelReminder(prefix) => {
            let tasks = ops::list_deferred(conn, &event.source, &event.user_id)?;
            let wanted = prefix.to_ascii_lowercase();
            let matches: Vec<_> = tasks
                .iter()
                .filter(|t| {
                    short_id(&t.task_id).starts_with(&wanted) || t.task_id.starts_with(&wanted)
                })
                .collect();
            match matches.as_slice() {
                [one] => {
                    completion.cancel.push(one.task_id.clone());
                    format!(
                        "Cancelled the reminder to {}.",
                        one.payload["text"].as_str().unwrap_or("?")
                    )
                }
                [] => format!("You have no pending reminder with id {prefix}. See /reminders."),
                _ => format!("More than one reminder starts with {prefix}; give more of the id."),
            }
        }
        RuleAction::Act(command) => match &context.model_answer {
            Some(Ok(answer)) => {
                completion.outcome =
                    json!({ "rule": "act", "path": "orchestrator", "answer": answer.outcome });
                answer.text.clone()
            }
            Some(Err(why)) => {
                completion.outcome = json!({ "rule": "act", "path": "orchestrator", "error": why });
                format!("That was refused: {why}")
            }
            None => {
                completion.outcome = json!({ "rule": "act", "path": "no_orchestrator" });
                format!("{command:?} is not available: this daemon runs no orchestrator.")
            }
        },
        RuleAction::NeedsModel => match &context.model_answer {
            Some(Ok(answer)) => {
                completion.outcome =
                    json!({ "rule": "none", "path": "model", "answer": answer.outcome });
                answer.text.clone()
            }
            Some(Err(why)) => {
                completion.outcome = json!({ "rule": "none", "path": "model", "error": why });
                format!("Sorry, I could not answer that: {why}")
            }
            None => {
                completion.outcome = json!({ "rule": "none", "path": "needs_model" });
                no_model_notice(&context.no_model_hint)
            }
        },
    })
}

/// What the user is told when a message needs a model and none is
/// configured; `hint` says how to add one.
pub fn no_model_notice(hint: &str) -> String {
    format!(
        "I can only answer commands and reminders so far: this needs a language model, and none is configured. To add one, {hint}. Type /help to see what works without one."
    )
}

/// What a fired reminder says, and to whom.
pub(crate) fn reminder_replies(task: &opticlaw_store::DeferredTask) -> Vec<NewReply> {
    let field = |name: &str| task.payload[name].as_str().unwrap_or_default().to_owned();
    vec![NewReply {
        in_reply_to: None,
        source: field("source"),
        user_id: field("user_id"),
        thread_id: field("thread_id"),
        kind: ResponseKind::Reminder,
        text: format!("⏰ Reminder: {}", field("text")),
    }]
}

fn reply(event: &EventEnvelope, kind: ResponseKind, text: String) -> NewReply {
    NewReply {
        in_reply_to: Some(event.event_id.clone()),
        source: event.source.clone(),
        user_id: event.user_id.clone(),
        thread_id: event.thread_id.clone(),
        kind,
        text,
    }
}

/// The part of a task id a person types: the last 6 characters of the
/// time-ordered UUID, which differ between tasks.
fn short_id(task_id: &str) -> String {
    task_id[task_id.len().saturating_sub(6)..].to_owned()
}

fn local_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%H:%M on %a %-d %b")
                .to_string()
        })
        .unwrap_or_default()
}
