//! The one-shot scheduler: exactly one timer, armed for the earliest
//! pending `wake_at` in the store, re-armed when a task is added, cancelled
//! or fired. It never scans periodically.

use std::sync::atomic::Ordering;

use opticlaw_store::ops;

use crate::answerer::ACTOR_TIMER;
use crate::handler::reminder_replies;
use crate::runtime::{Runtime, now_ms};
use crate::timer;

pub(crate) async fn run(runtime: Runtime) {
    let shared = runtime.shared.clone();
    loop {
        // Take the re-arm permit before reading, so an add that lands while
        // we read is not missed.
        let rearm = shared.rearm.notified();
        let next = match shared.store.call(ops::next_wake_at).await {
            Ok(next) => next,
            Err(err) => {
                tracing::error!(%err, "reading the next wake-up failed; waiting for the next change");
                None
            }
        };
        match next {
            Some(wake_at) if wake_at <= now_ms() => {
                if fire_due(&runtime).await {
                    continue;
                }
                // The store refused: wait for a change rather than spin.
                tokio::select! {
                    () = rearm => {}
                    () = shared.stop.cancelled() => return,
                }
            }
            Some(wake_at) => {
                tracing::debug!(wake_at = %timer::shown(wake_at), "timer armed");
                tokio::select! {
                    () = timer::sleep_until_wall_clock(wake_at) => {}
                    () = rearm => {}
                    () = shared.stop.cancelled() => return,
                }
            }
            None => {
                tokio::select! {
                    () = rearm => {}
                    () = shared.stop.cancelled() => return,
                }
            }
        }
    }
}

/// Fires every due task; `false` if the store failed. Reminders become
/// replies in the same transaction; the actor's own timers are handed to
/// it once that transaction is committed.
async fn fire_due(runtime: &Runtime) -> bool {
    let shared = &runtime.shared;
    let now = now_ms();
    let actor_timers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collected = actor_timers.clone();
    match shared
        .store
        .call(move |conn| {
            ops::fire_due(conn, now, |task| {
                if task.payload["kind"] == ACTOR_TIMER {
                    collected.lock().unwrap().push(task.clone());
                    Vec::new()
                } else {
                    reminder_replies(task)
                }
            })
        })
        .await
    {
        Ok(written) => {
            shared.timer_fires.fetch_add(1, Ordering::Relaxed);
            for reply in written {
                shared.publish(reply, true);
            }
            let fired = std::mem::take(&mut *actor_timers.lock().unwrap());
            if let Some(actor) = shared.actor.clone() {
                for task in fired {
                    tokio::spawn(actor.timer_fired(task));
                }
            }
            true
        }
        Err(err) => {
            tracing::error!(%err, "firing due tasks failed; they stay pending");
            false
        }
    }
}
