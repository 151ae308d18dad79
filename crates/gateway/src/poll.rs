//! Receivers for accounts with no public URL: Telegram `getUpdates` and
//! Matrix `/sync`. Each loop is one blocking long-poll after another: the
//! platform holds the request until an update arrives, so nothing here wakes
//! on a timer. The only waits are one-shot: the delay a platform asked for
//! (429), or a backoff after a failed call. Events are stored through
//! [`Gateway::ingest`] before the cursor that confirms them is saved.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use opticlaw_core::EventEnvelope;

use crate::cursor::CursorStore;
use crate::platforms::matrix_sync::{MatrixSyncer, SyncError};
use crate::platforms::telegram::{PollError, TelegramPoller};
use crate::{
    AuditLog, Channel, EventSink, Gateway, MatrixConfig, PairingStore, Platform, SinkError,
    TelegramConfig,
};

/// Longest backoff between failed calls.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF)
}

/// The name of an account's cursor in the [`CursorStore`].
pub fn cursor_name(channel: &Channel) -> String {
    let what = match channel.platform {
        Platform::Matrix => "since",
        _ => "offset",
    };
    format!("{}:{what}", channel.source())
}

/// Stores `events`, retrying (after the delay the store asks for) until it
/// takes them, then saves the cursor. Nothing fetched is dropped.
async fn store_then_save<S, A, P, C>(
    gateway: &Gateway<S, A, P>,
    cursors: &C,
    channel: &Channel,
    events: Vec<EventEnvelope>,
    cursor: &str,
) where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
    C: CursorStore,
{
    let mut failures = 0;
    loop {
        let stored = gateway.ingest(channel, events.clone(), Utc::now()).await;
        let saved = match stored {
            Ok(()) => cursors.save(&cursor_name(channel), cursor).await,
            Err(err) => Err(err),
        };
        let wait = match saved {
            Ok(()) => return,
            Err(SinkError::Busy { retry_after_secs }) => Duration::from_secs(retry_after_secs),
            Err(SinkError::Failed(detail)) => {
                failures += 1;
                tracing::error!(%channel, %detail, "storing polled events failed; retrying");
                backoff(failures)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Runs Telegram long-polling for the account `config` until the task is dropped.
pub async fn run_telegram<S, A, P, C>(
    gateway: Arc<Gateway<S, A, P>>,
    cursors: Arc<C>,
    config: TelegramConfig,
    client: reqwest::Client,
) where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
    C: CursorStore,
{
    let channel = Channel::new(Platform::Telegram, &config.account);
    let offset = load(&*cursors, &channel).await;
    let offset = offset.and_then(|o| o.parse().ok()).unwrap_or(0);
    let mut poller = TelegramPoller::new(client, &config, offset, config.poll_timeout_secs);
    tracing::info!(%channel, offset, "telegram long-polling getUpdates");
    let mut failures = 0;
    loop {
        match poller.next_batch().await {
            Ok(events) => {
                failures = 0;
                let offset = poller.offset().to_string();
                store_then_save(&gateway, &*cursors, &channel, events, &offset).await;
            }
            Err(PollError::RateLimited(wait)) => tokio::time::sleep(wait).await,
            Err(err) => {
                failures += 1;
                tracing::warn!(%channel, %err, "getUpdates failed; backing off");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Runs the Matrix `/sync` loop for the account `config` until the task is dropped.
pub async fn run_matrix_sync<S, A, P, C>(
    gateway: Arc<Gateway<S, A, P>>,
    cursors: Arc<C>,
    config: MatrixConfig,
    client: reqwest::Client,
) where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
    C: CursorStore,
{
    let channel = Channel::new(Platform::Matrix, &config.account);
    let syncer = MatrixSyncer::new(client, &config);
    let mut since = load(&*cursors, &channel).await;
    tracing::info!(%channel, resumed = since.is_some(), "matrix /sync long-polling");
    let mut failures = 0;
    loop {
        let wait = match syncer.sync(since.as_deref()).await {
            Ok(batch) => {
                failures = 0;
                for room in &batch.invites {
                    if let Err(err) = syncer.join(room).await {
                        tracing::warn!(%channel, %room, %err, "joining an invited room failed");
                    }
                }
                store_then_save(
                    &gateway,
                    &*cursors,
                    &channel,
                    batch.events,
                    &batch.next_batch,
                )
                .await;
                since = Some(batch.next_batch);
                continue;
            }
            Err(SyncError::RateLimited(wait)) => wait,
            Err(err) => {
                failures += 1;
                tracing::warn!(%channel, %err, "matrix /sync failed; backing off");
                backoff(failures)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn load<C: CursorStore>(cursors: &C, channel: &Channel) -> Option<String> {
    let mut failures = 0;
    loop {
        match cursors.load(&cursor_name(channel)).await {
            Ok(value) => return value,
            Err(err) => {
                failures += 1;
                tracing::error!(%channel, %err, "reading the poll cursor failed; retrying");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Spawns a receiver for every account configured to long-poll. The tasks
/// run until the returned handles are aborted or the runtime stops.
pub fn spawn_receivers<S, A, P, C>(
    gateway: &Arc<Gateway<S, A, P>>,
    cursors: &Arc<C>,
    client: &reqwest::Client,
) -> Vec<tokio::task::JoinHandle<()>>
where
    S: EventSink,
    A: AuditLog,
    P: PairingStore,
    C: CursorStore,
{
    let mut handles = Vec::new();
    for c in gateway.config().telegram.iter().filter(|c| c.long_poll) {
        let (g, k) = (Arc::clone(gateway), Arc::clone(cursors));
        handles.push(tokio::spawn(run_telegram(g, k, c.clone(), client.clone())));
    }
    for c in gateway.config().matrix.iter().filter(|c| c.sync) {
        let (g, k) = (Arc::clone(gateway), Arc::clone(cursors));
        handles.push(tokio::spawn(run_matrix_sync(
            g,
            k,
            c.clone(),
            client.clone(),
        )));
    }
    handles
}
