//! The daemon's send ledger: which parts of which replies may have reached
//! a platform, so that a crash never sends one twice.
//!
//! A part's attempt is written down before its platform call, in an
//! append-only intent log beside the store (`send-intents.log`, one JSON
//! line a record). Appending is a single `write` into the page cache, which
//! outlives a killed process, and costs the reply no trip through the store's
//! one writer thread: that trip was the largest part of a reply's latency
//! under load. With `synchronous = "full"` each record is also flushed to the
//! disk before the call, as the store's commits are.
//!
//! At start-up the log of the previous run is replayed: every part it left
//! begun or sent and not forgotten (its reply's delivered mark was not
//! written) is copied into the store's `gateway_send_ledger`, in doubt, and
//! the log starts over. A delivered reply's parts are forgotten, so the log
//! is rewritten with only the parts in flight whenever it passes
//! [`ROTATE_AT`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use chrono::Utc;
use opticlaw_gateway::{LedgerState, SendLedger};
use opticlaw_store::StoreHandle;
use opticlaw_store::rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// The log's name in the data directory.
pub const LOG_FILE: &str = "send-intents.log";
/// The log is rewritten with only the parts in flight past this size.
const ROTATE_AT: u64 = 1 << 20;
/// Rows of `gateway_send_ledger` older than the oldest undelivered reply by
/// more than this guard nothing (a part is attempted after its reply is
/// written); the margin covers a wall clock stepped back.
const PRUNE_MARGIN_MS: i64 = 24 * 3600 * 1000;

/// One line of the log.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Intent<'a> {
    /// A call for this part is about to be made.
    Begin(#[serde(borrow)] Cow<'a, str>),
    /// The platform took it (kept only when completion is not deferred).
    Sent {
        #[serde(borrow)]
        key: Cow<'a, str>,
        remote_id: Option<String>,
    },
    /// The platform refused it for certain: it may be tried again.
    Release(#[serde(borrow)] Cow<'a, str>),
    /// Its reply is recorded delivered: the part needs no guard any more.
    Forget(Vec<Cow<'a, str>>),
}

/// What is known of a part: attempted (`None`) or sent (`Some(remote id)`).
type Entry = Option<Option<String>>;

fn state_of(entry: &Entry) -> LedgerState {
    match entry {
        None => LedgerState::InDoubt,
        Some(remote_id) => LedgerState::Sent(remote_id.clone()),
    }
}

struct Log {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Parts this run began and has not forgotten, as the log says.
    live: HashMap<String, Entry>,
}

/// The [`SendLedger`] of the daemon.
pub struct DaemonLedger {
    log: Mutex<Log>,
    /// Parts an earlier run left in the store's ledger, in doubt or sent.
    earlier: Mutex<HashMap<String, Entry>>,
    store: StoreHandle,
    /// Flush each record to the disk before the call it guards.
    sync: bool,
}

impl DaemonLedger {
    /// Replays the log an earlier run left in `data_dir` into the store's
    /// ledger and starts a new one.
    pub async fn open(data_dir: &Path, store: StoreHandle, sync: bool) -> Result<Self> {
        let path = data_dir.join(LOG_FILE);
        let left = match std::fs::read(&path) {
            Ok(bytes) => replay(&bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        if !left.is_empty() {
            tracing::warn!(
                parts = left.len(),
                "parts a previous run may have sent without recording it are now in doubt"
            );
        }
        let now_ms = Utc::now().timestamp_millis();
        let earlier = store
            .call(move |conn| {
                let mut upsert = conn.prepare_cached(
                    "INSERT INTO gateway_send_ledger (key, state, remote_id, at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                         remote_id = excluded.remote_id, at_ms = excluded.at_ms",
                )?;
                for (key, entry) in &left {
                    let (state, remote_id) = match entry {
                        None => ("pending", None),
                        Some(remote_id) => ("sent", remote_id.as_deref()),
                    };
                    upsert.execute(params![key, state, remote_id, now_ms])?;
                }
                let oldest_undelivered: Option<i64> = conn
                    .query_row(
                        "SELECT created_ms FROM replies
                         WHERE delivered_ms IS NULL AND source <> 'local' ORDER BY seq LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                conn.execute(
                    "DELETE FROM gateway_send_ledger WHERE at_ms < ?1",
                    [oldest_undelivered.unwrap_or(now_ms) - PRUNE_MARGIN_MS],
                )?;
                let mut rows = conn.prepare("SELECT key, state, remote_id FROM gateway_send_ledger")?;
                let earlier = rows
                    .query_map([], |r| {
                        let state: String = r.get(1)?;
                        let remote_id: Option<String> = r.get(2)?;
                        Ok((r.get(0)?, (state == "sent").then_some(remote_id)))
                    })?
                    .collect::<Result<HashMap<String, Entry>, _>>()?;
                Ok(earlier)
            })
            .await
            .context("moving the previous run's send intents into the store")?;
        // Only now that the store holds them may the old log go.
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Self {
            log: Mutex::new(Log {
                path,
                file,
                bytes: 0,
                live: HashMap::new(),
            }),
            earlier: Mutex::new(earlier),
            store,
            sync,
        })
    }

    /// The parts of `keys` an earlier run left in the store's ledger: the
    /// delivered mark's write removes them there.
    pub fn held_in_store(&self, keys: &[String]) -> Vec<String> {
        let earlier = self.earlier.lock().expect("ledger lock");
        if earlier.is_empty() {
            return Vec::new();
        }
        keys.iter()
            .filter(|key| earlier.contains_key(*key))
            .cloned()
            .collect()
    }

    /// Forgets the parts of a reply that is now recorded delivered.
    pub fn forget(&self, keys: &[String]) {
        {
            let mut earlier = self.earlier.lock().expect("ledger lock");
            for key in keys {
                earlier.remove(key);
            }
        }
        let mut log = self.log.lock().expect("ledger lock");
        if keys.iter().all(|key| !log.live.contains_key(key)) {
            return;
        }
        for key in keys {
            log.live.remove(key);
        }
        let intent = Intent::Forget(keys.iter().map(|k| Cow::Borrowed(k.as_str())).collect());
        self.append(&mut log, &intent);
    }

    /// Appends one record. A failed write is logged, not returned: the
    /// callers cannot act on it, and what it guards is already decided.
    fn append(&self, log: &mut Log, intent: &Intent) {
        if let Err(err) = self.try_append(log, intent) {
            tracing::error!(%err, path = %log.path.display(), "writing the send intent log failed");
        }
    }

    fn try_append(&self, log: &mut Log, intent: &Intent) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(intent)?;
        line.push(b'\n');
        // One write: a killed process leaves a record whole or absent.
        log.file.write_all(&line)?;
        if self.sync {
            log.file.sync_data()?;
        }
        log.bytes += line.len() as u64;
        if log.bytes > ROTATE_AT {
            self.rotate(log)?;
        }
        Ok(())
    }

    /// Rewrites the log with only the parts in flight, then swaps it in.
    fn rotate(&self, log: &mut Log) -> std::io::Result<()> {
        let next = log.path.with_extension("log.next");
        let mut file = File::create(&next)?;
        let mut bytes = Vec::new();
        for (key, entry) in &log.live {
            let key = Cow::Borrowed(key.as_str());
            let intent = match entry {
                None => Intent::Begin(key),
                Some(remote_id) => Intent::Sent {
                    key,
                    remote_id: remote_id.clone(),
                },
            };
            serde_json::to_writer(&mut bytes, &intent)?;
            bytes.push(b'\n');
        }
        file.write_all(&bytes)?;
        if self.sync {
            file.sync_data()?;
        }
        std::fs::rename(&next, &log.path)?;
        log.file = OpenOptions::new().append(true).open(&log.path)?;
        log.bytes = bytes.len() as u64;
        Ok(())
    }
}

impl SendLedger for DaemonLedger {
    async fn begin(&self, key: &str) -> LedgerState {
        let mut log = self.log.lock().expect("ledger lock");
        if let Some(entry) = log.live.get(key) {
            return state_of(entry);
        }
        if let Some(entry) = self.earlier.lock().expect("ledger lock").get(key) {
            return state_of(entry);
        }
        log.live.insert(key.to_owned(), None);
        match self.try_append(&mut log, &Intent::Begin(Cow::Borrowed(key))) {
            Ok(()) => LedgerState::Fresh,
            // Not written down, so not safe to send: a crash would forget it.
            Err(err) => {
                tracing::error!(%err, path = %log.path.display(), "writing the send intent log failed; not sending");
                LedgerState::InDoubt
            }
        }
    }

    async fn complete(&self, key: &str, remote_id: Option<String>) {
        let mut log = self.log.lock().expect("ledger lock");
        log.live.insert(key.to_owned(), Some(remote_id.clone()));
        let intent = Intent::Sent {
            key: Cow::Borrowed(key),
            remote_id,
        };
        self.append(&mut log, &intent);
    }

    async fn release(&self, key: &str) {
        {
            let mut log = self.log.lock().expect("ledger lock");
            if matches!(log.live.get(key), Some(None)) {
                log.live.remove(key);
                self.append(&mut log, &Intent::Release(Cow::Borrowed(key)));
            }
        }
        let held = matches!(
            self.earlier.lock().expect("ledger lock").get(key),
            Some(None)
        );
        if held {
            self.earlier.lock().expect("ledger lock").remove(key);
            let key = key.to_owned();
            let removed = self
                .store
                .call(move |conn| {
                    conn.execute(
                        "DELETE FROM gateway_send_ledger WHERE key = ?1 AND state = 'pending'",
                        [key],
                    )?;
                    Ok(())
                })
                .await;
            if let Err(err) = removed {
                tracing::error!(%err, "releasing a refused part from the send ledger failed");
            }
        }
    }
}

/// The parts a log leaves begun or sent and not forgotten. A line that does
/// not parse (torn by a power cut) is skipped.
fn replay(bytes: &[u8]) -> HashMap<String, Entry> {
    let mut entries = HashMap::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Intent>(line) {
            Ok(Intent::Begin(key)) => {
                entries.entry(key.into_owned()).or_insert(None);
            }
            Ok(Intent::Sent { key, remote_id }) => {
                entries.insert(key.into_owned(), Some(remote_id));
            }
            Ok(Intent::Release(key)) => {
                if matches!(entries.get(key.as_ref()), Some(None)) {
                    entries.remove(key.as_ref());
                }
            }
            Ok(Intent::Forget(keys)) => {
                for key in keys {
                    entries.remove(key.as_ref());
                }
            }
            Err(err) => tracing::warn!(%err, "skipping an unreadable send intent record"),
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use opticlaw_store::Synchronous;

    fn store(dir: &Path) -> StoreHandle {
        StoreHandle::open_with(
            &dir.join("opticlaw.db"),
            Synchronous::Normal,
            &[super::super::COMPONENT],
        )
        .unwrap()
    }

    async fn open(dir: &Path, store: &StoreHandle) -> DaemonLedger {
        DaemonLedger::open(dir, store.clone(), false).await.unwrap()
    }

    async fn ledger_rows(store: &StoreHandle) -> Vec<(String, String)> {
        store
            .call(|conn| {
                let mut rows =
                    conn.prepare("SELECT key, state FROM gateway_send_ledger ORDER BY key")?;
                let rows = rows
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_part_begun_before_a_crash_is_in_doubt_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let ledger = open(dir.path(), &store).await;
        assert_eq!(ledger.begin("in-flight").await, LedgerState::Fresh);
        assert_eq!(ledger.begin("in-flight").await, LedgerState::InDoubt);
        assert_eq!(ledger.begin("delivered").await, LedgerState::Fresh);
        ledger.forget(&["delivered".to_owned()]);
        assert_eq!(ledger.begin("refused").await, LedgerState::Fresh);
        ledger.release("refused").await;
        ledger.complete("sent", Some("777".into())).await;
        // Killed here: nothing but the log's writes happened.
        drop(ledger);

        let ledger = open(dir.path(), &store).await;
        assert_eq!(ledger.begin("in-flight").await, LedgerState::InDoubt);
        assert_eq!(
            ledger.begin("sent").await,
            LedgerState::Sent(Some("777".into()))
        );
        // Forgotten and refused parts are free (a delivered reply is never
        // taken again; a refused part may be retried).
        assert_eq!(ledger.begin("refused").await, LedgerState::Fresh);
        assert_eq!(ledger.begin("delivered").await, LedgerState::Fresh);
        assert_eq!(
            ledger_rows(&store).await,
            [
                ("in-flight".to_owned(), "pending".to_owned()),
                ("sent".to_owned(), "sent".to_owned())
            ]
        );
        // The delivered mark's write takes them out of the store.
        let keys = ["in-flight".to_owned(), "sent".to_owned(), "new".to_owned()];
        assert_eq!(ledger.held_in_store(&keys), keys[..2]);
        ledger.forget(&keys);
        assert!(ledger.held_in_store(&keys).is_empty());
        assert_eq!(ledger.begin("in-flight").await, LedgerState::Fresh);
    }

    #[tokio::test]
    async fn rows_older_than_every_undelivered_reply_are_pruned_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let two_days_ago = Utc::now().timestamp_millis() - 2 * PRUNE_MARGIN_MS;
        store
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO gateway_send_ledger (key, state, at_ms) VALUES ('old', 'pending', ?1)",
                    [two_days_ago],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let ledger = open(dir.path(), &store).await;
        assert!(ledger_rows(&store).await.is_empty());
        assert_eq!(ledger.begin("old").await, LedgerState::Fresh);
    }

    #[tokio::test]
    async fn the_log_keeps_only_the_parts_in_flight_past_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let ledger = open(dir.path(), &store).await;
        assert_eq!(ledger.begin("kept").await, LedgerState::Fresh);
        let size = || std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        let mut largest = 0;
        for n in 0..40_000 {
            let key = format!("oc1-{n:032x}");
            assert_eq!(ledger.begin(&key).await, LedgerState::Fresh);
            ledger.forget(&[key]);
            largest = largest.max(size());
        }
        assert!(
            largest <= ROTATE_AT + 200,
            "the log reached {largest} bytes"
        );
        assert!(size() < ROTATE_AT, "never rewritten");
        drop(ledger);
        let ledger = open(dir.path(), &store).await;
        assert_eq!(ledger.begin("kept").await, LedgerState::InDoubt);
        assert_eq!(
            ledger.begin(&format!("oc1-{:032x}", 7)).await,
            LedgerState::Fresh
        );
        assert_eq!(ledger_rows(&store).await.len(), 1);
    }

    #[test]
    fn a_torn_last_record_is_skipped() {
        let log = b"{\"begin\":\"a\"}\n{\"begin\":\"b\"}\n{\"forget\":[\"b\"]}\n{\"begin\":\"c";
        let entries = replay(log);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries.get("a"), Some(&None));
    }
}
