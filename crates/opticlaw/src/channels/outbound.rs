//! Outbound: every committed reply to a chat platform is rendered for it and
//! delivered, once. Replies left undelivered by a crash go out at start-up;
//! the send ledger makes sure no part goes out twice.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use opticlaw_core::ResponsePacket;
use opticlaw_gateway::{Channel, Gateway, PartOutcome, SendError, Sender};
use opticlaw_runtime::Runtime;
use opticlaw_store::ops;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::stores::forget_parts;
use super::{DaemonLedger, RuntimeSink, SqliteAudit, SqlitePairing};

/// The daemon's gateway, whose adapters render replies.
pub type DaemonGateway = Gateway<RuntimeSink, SqliteAudit, SqlitePairing>;

/// Conversations delivered in parallel; one conversation's replies stay in order.
const SHARDS: usize = 64;

/// Delivers replies until the runtime stops. Waits on the reply channel
/// (an internal completion event), never on a timer. Replies are spread over
/// a few delivery tasks by conversation, so a slow chat never holds up the
/// others and each chat still gets its replies in order.
pub async fn run_outbound(
    runtime: Runtime,
    gateway: Arc<DaemonGateway>,
    sender: Sender<DaemonLedger>,
    ledger: Arc<DaemonLedger>,
) {
    let sender = Arc::new(sender);
    let tracker: Arc<Mutex<Tracker>> = Arc::default();
    let marks = spawn_recorder(runtime.clone(), ledger, tracker.clone());
    let shards: Vec<mpsc::UnboundedSender<ResponsePacket>> = (0..SHARDS)
        .map(|_| {
            let (tx, mut rx) = mpsc::unbounded_channel::<ResponsePacket>();
            let (runtime, gateway, sender) = (runtime.clone(), gateway.clone(), sender.clone());
            let (marks, tracker) = (marks.clone(), tracker.clone());
            tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    let seq = reply.seq;
                    match deliver(&runtime, &gateway, &sender, reply).await {
                        Done::Mark(keys) => {
                            let _ = marks.send(Delivered { seq, keys });
                        }
                        Done::Keep => tracker.lock().expect("tracker").finish(seq, false),
                    }
                }
            });
            tx
        })
        .collect();
    let route = |reply: ResponsePacket| {
        if !tracker.lock().expect("tracker").claim(reply.seq) {
            return;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&reply.source, &reply.thread_id).hash(&mut hasher);
        let _ = shards[hasher.finish() as usize % SHARDS].send(reply);
    };
    let catch_up = || async {
        match runtime
            .store()
            .call(|conn| ops::undelivered_replies(conn, 10_000))
            .await
        {
            Ok(backlog) => backlog.into_iter().for_each(route),
            Err(err) => tracing::error!(%err, "reading undelivered replies failed"),
        }
    };
    let mut live = runtime.subscribe();
    let stopping = runtime.stopping();
    // First what a previous run committed but did not deliver.
    catch_up().await;
    loop {
        let next = tokio::select! {
            next = live.recv() => next,
            () = stopping.cancelled() => return,
        };
        match next {
            Ok(reply) if reply.source != "local" => route(reply),
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "outbound fell behind; catching up from the store");
                catch_up().await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Delivered replies remembered; a catch-up read is stale by far fewer.
const DONE_KEPT: usize = 65_536;

/// Which replies are queued or being delivered, and which were delivered
/// lately. When the reply stream lags (the HTTP thread commits faster than
/// the outbound loop reads), a catch-up from the store skips both: the
/// first would be queued a second time, and the second may be in a read
/// taken just before their delivered mark. A delivered reply's parts have
/// left the send ledger, so nothing else would stop a second send.
#[derive(Default)]
struct Tracker {
    in_flight: HashSet<i64>,
    done: HashSet<i64>,
    done_order: VecDeque<i64>,
}

impl Tracker {
    /// Takes `seq` for delivery; `false` if it is queued or was delivered.
    fn claim(&mut self, seq: i64) -> bool {
        !self.done.contains(&seq) && self.in_flight.insert(seq)
    }

    fn finish(&mut self, seq: i64, delivered: bool) {
        self.in_flight.remove(&seq);
        if delivered && self.done.insert(seq) {
            self.done_order.push_back(seq);
            if self.done_order.len() > DONE_KEPT
                && let Some(oldest) = self.done_order.pop_front()
            {
                self.done.remove(&oldest);
            }
        }
    }
}

/// A reply that left for its platform (or was given up on), to be marked
/// delivered, with the keys of the parts the sender began.
struct Delivered {
    seq: i64,
    keys: Vec<String>,
}

/// What became of a reply.
enum Done {
    /// Delivered or given up on: mark it so, and forget these parts.
    Mark(Vec<String>),
    /// Left in the outbox (its account is not configured).
    Keep,
}

/// Starts the task that writes delivered marks. It takes every mark
/// waiting when it wakes and writes them in one store call, so under load
/// the marks of many replies share a write and the writer's wake-up.
fn spawn_recorder(
    runtime: Runtime,
    ledger: Arc<DaemonLedger>,
    tracker: Arc<Mutex<Tracker>>,
) -> mpsc::UnboundedSender<Delivered> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivered>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(next) = rx.try_recv() {
                batch.push(next);
            }
            record(&runtime, &ledger, &tracker, batch).await;
        }
    });
    tx
}

/// Marks a batch of replies delivered. The sender left their parts begun
/// (it defers marking them sent): until this write, a crash leaves them in
/// doubt, never sent twice. After it the replies are never delivered again,
/// so their parts need no guard and leave the ledger, which so holds only
/// the parts in flight. Parts an earlier run left in the store's ledger
/// leave it in the same write as the marks.
async fn record(
    runtime: &Runtime,
    ledger: &DaemonLedger,
    tracker: &Mutex<Tracker>,
    batch: Vec<Delivered>,
) {
    let seqs: Vec<i64> = batch.iter().map(|d| d.seq).collect();
    let keys: Vec<String> = batch.into_iter().flat_map(|d| d.keys).collect();
    let held = ledger.held_in_store(&keys);
    let now = chrono::Utc::now().timestamp_millis();
    let marked = seqs.clone();
    let recorded = runtime
        .store()
        .call(move |conn| {
            forget_parts(conn, &held)?;
            marked
                .iter()
                .try_for_each(|seq| ops::mark_delivered(conn, *seq, now))
        })
        .await;
    let delivered = match recorded {
        Ok(()) => {
            ledger.forget(&keys);
            true
        }
        // Not recorded: their parts are still begun, so a later attempt
        // finds them in doubt and sends nothing.
        Err(err) => {
            tracing::error!(%err, ?seqs, "recording deliveries failed");
            false
        }
    };
    let mut tracker = tracker.lock().expect("tracker");
    for seq in seqs {
        tracker.finish(seq, delivered);
    }
}

/// Sends one reply's parts.
async fn deliver(
    runtime: &Runtime,
    gateway: &DaemonGateway,
    sender: &Sender<DaemonLedger>,
    reply: ResponsePacket,
) -> Done {
    let seq = reply.seq;
    let Some(channel) = Channel::from_source(&reply.source) else {
        tracing::warn!(
            source = reply.source,
            seq,
            "reply for an unknown channel; dropping it from the outbox"
        );
        return Done::Mark(Vec::new());
    };
    let recent = |event_id: &str| gateway.sink().take_origin(&reply.source, event_id);
    let origin = match &reply.in_reply_to {
        // Usually the event just came in: its metadata is still in memory.
        Some(event_id) if let Some(origin) = recent(event_id) => Some(origin),
        Some(event_id) => {
            let (source, event_id) = (reply.source.clone(), event_id.clone());
            runtime
                .store()
                .call(move |conn| ops::event_envelope(conn, &source, &event_id))
                .await
                .ok()
                .flatten()
                .map(|event| event.metadata)
        }
        None => None,
    };
    let parts = match gateway.render(&channel, &reply, origin.as_ref()) {
        None => {
            tracing::warn!(
                source = reply.source,
                seq,
                "reply for an account that is not configured; left undelivered"
            );
            return Done::Keep;
        }
        Some(Ok(parts)) => parts,
        Some(Err(err)) => {
            tracing::error!(%err, seq, "cannot render a reply; giving up on it");
            return Done::Mark(Vec::new());
        }
    };
    let keys: Vec<String> = parts.iter().map(|p| p.idempotency_key.clone()).collect();
    let mut from = 0;
    let mut sent = 0;
    loop {
        match sender.deliver(&parts[from..]).await {
            Ok(delivery) => {
                sent += delivery
                    .parts
                    .iter()
                    .filter(|(_, outcome)| matches!(outcome, PartOutcome::Sent { .. }))
                    .count();
                break;
            }
            Err(SendError::RateLimited {
                retry_after, part, ..
            }) => {
                // A one-shot wait for exactly the time the platform asked.
                tracing::info!(
                    ?retry_after,
                    seq,
                    "rate limited; retrying once the platform allows"
                );
                from += part;
                tokio::time::sleep(retry_after).await;
            }
            Err(err) => {
                tracing::error!(%err, seq, "delivery failed");
                break;
            }
        }
    }
    tracing::debug!(seq, sent, parts = keys.len(), "reply sent");
    Done::Mark(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_claimed_once_and_never_again_once_delivered() {
        let mut tracker = Tracker::default();
        assert!(tracker.claim(7));
        assert!(!tracker.claim(7), "queued twice");
        tracker.finish(7, true);
        assert!(
            !tracker.claim(7),
            "a stale catch-up queued a delivered reply"
        );
        // One left in the outbox may be taken again.
        assert!(tracker.claim(8));
        tracker.finish(8, false);
        assert!(tracker.claim(8));
    }

    #[test]
    fn delivered_replies_are_forgotten_oldest_first_past_the_bound() {
        let mut tracker = Tracker::default();
        for seq in 0..=DONE_KEPT as i64 {
            assert!(tracker.claim(seq));
            tracker.finish(seq, true);
        }
        assert_eq!(tracker.done.len(), DONE_KEPT);
        assert!(tracker.claim(0), "the oldest was forgotten");
        assert!(!tracker.claim(1));
    }
}
