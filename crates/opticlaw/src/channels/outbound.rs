//! Outbound: every committed reply to a chat platform is rendered for it and
//! delivered, once. Replies left undelivered by a crash go out at start-up;
//! the send ledger makes sure no part goes out twice.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use opticlaw_core::ResponsePacket;
use opticlaw_gateway::{Channel, Gateway, PartOutcome, SendError, Sender};
use opticlaw_runtime::Runtime;
use opticlaw_store::ops;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::stores::mark_sent;
use super::{RuntimeSink, SqliteAudit, SqliteLedger, SqlitePairing};

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
    sender: Sender<SqliteLedger>,
) {
    let sender = Arc::new(sender);
    // Replies queued or being delivered. When the reply stream lags (the
    // HTTP thread commits faster than this loop reads), the catch-up from
    // the store skips these instead of queueing each one a second time.
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let shards: Vec<mpsc::UnboundedSender<ResponsePacket>> = (0..SHARDS)
        .map(|_| {
            let (tx, mut rx) = mpsc::unbounded_channel::<ResponsePacket>();
            let (runtime, gateway, sender) = (runtime.clone(), gateway.clone(), sender.clone());
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    let seq = reply.seq;
                    deliver(&runtime, &gateway, &sender, reply).await;
                    in_flight.lock().expect("in-flight set").remove(&seq);
                }
            });
            tx
        })
        .collect();
    let route = |reply: ResponsePacket| {
        if !in_flight.lock().expect("in-flight set").insert(reply.seq) {
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

async fn deliver(
    runtime: &Runtime,
    gateway: &DaemonGateway,
    sender: &Sender<SqliteLedger>,
    reply: ResponsePacket,
) {
    let seq = reply.seq;
    let Some(channel) = Channel::from_source(&reply.source) else {
        tracing::warn!(
            source = reply.source,
            seq,
            "reply for an unknown channel; dropping it from the outbox"
        );
        mark_delivered(runtime, seq).await;
        return;
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
            return;
        }
        Some(Ok(parts)) => parts,
        Some(Err(err)) => {
            tracing::error!(%err, seq, "cannot render a reply; giving up on it");
            mark_delivered(runtime, seq).await;
            return;
        }
    };
    let mut from = 0;
    let mut sent: Vec<(String, Option<String>)> = Vec::new();
    loop {
        match sender.deliver(&parts[from..]).await {
            Ok(delivery) => {
                sent.extend(delivery.parts.into_iter().filter_map(
                    |(key, outcome)| match outcome {
                        PartOutcome::Sent { remote_id } => Some((key, remote_id)),
                        _ => None,
                    },
                ));
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
    // One write: the parts are marked sent (the sender defers that) and
    // the reply delivered.
    let now = chrono::Utc::now().timestamp_millis();
    let recorded = runtime
        .store()
        .call(move |conn| {
            mark_sent(conn, &sent, now)?;
            ops::mark_delivered(conn, seq, now)
        })
        .await;
    if let Err(err) = recorded {
        tracing::error!(%err, seq, "recording a delivery failed");
    }
}

async fn mark_delivered(runtime: &Runtime, seq: i64) {
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(err) = runtime
        .store()
        .call(move |conn| ops::mark_delivered(conn, seq, now))
        .await
    {
        tracing::error!(%err, seq, "recording a delivery failed");
    }
}
