//! The daemon's memory: one thread owning the [`MemoryEngine`] (its own
//! SQLite file, `data/memory.db`), fed by a channel.
//!
//! Ingestion never sits on the fast path: after the runtime commits a reply
//! (and when the model path starts on a message) the thread is told to catch
//! up, reads the daemon store's `events` and `replies` past its cursors, and
//! adds them as episodic records, moving the cursors in the same memory
//! transaction, so a kill -9 loses nothing and duplicates nothing. The
//! thread blocks on its channel with no timeout: an idle daemon stays idle.
//!
//! The same arriving turns drive the rest of the upkeep: threads they make
//! due are compacted into rolling summaries (which the model, when one is
//! configured, rewrites: `summarize`), and once a day at most expired and
//! faded records are forgotten.

pub mod answerer;
mod ingest;
mod summarize;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use opticlaw_memory::TimeRange;
use opticlaw_memory::budget::ContextPack;
use opticlaw_memory::{
    ContextRequest, Hit, MemoryEngine, NewMemory, Query, RetrievalHints, StoredMemory,
};
use opticlaw_runtime::Answerer;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::config::MemorySection;

/// The daemon's memory, when `[memory]` enables it, and the answerer that
/// serves the memory commands in front of `answerer` (the model path).
pub fn wire(
    home: &crate::home::Home,
    section: &MemorySection,
    answerer: Option<Arc<dyn Answerer>>,
    summary_model: Option<crate::model_answerer::ModelAnswerer>,
    no_model_hint: &str,
) -> Result<(Option<MemoryHandle>, Arc<dyn Answerer>)> {
    let memory = if section.enabled {
        Some(MemoryHandle::start(
            &home.data_dir(),
            &home.store_file(),
            section,
            summary_model.filter(|_| section.abstractive_summaries),
        )?)
    } else {
        None
    };
    let answerer = answerer::MemoryAnswerer {
        memory: memory.clone(),
        inner: answerer,
        context_budget: section.context_token_budget,
        no_model_hint: no_model_hint.to_owned(),
    };
    Ok((memory, Arc::new(answerer)))
}

/// Catch the memory up after every reply it may record (a task that sleeps
/// on the runtime's memorable-reply signal: no wake-up while idle, none for
/// `/commands` or notices).
pub fn follow(runtime: &opticlaw_runtime::Runtime, memory: MemoryHandle) {
    let mut memorable = runtime.subscribe_memorable();
    // Replies committed before the subscription (pending events redone at
    // start-up) are covered by one more catch-up after it.
    memory.catch_up();
    tokio::spawn(async move {
        // Ends when the runtime is dropped at shutdown.
        while memorable.changed().await.is_ok() {
            memory.catch_up();
        }
    });
}

/// A record on one line: `who: what (when, id ID)`.
pub fn one_line(m: &StoredMemory) -> String {
    let who = m
        .speaker
        .as_deref()
        .map(|s| format!("{s}: "))
        .unwrap_or_default();
    format!(
        "{who}{} ({}, id {})",
        m.content(),
        m.occurred_at.format("%Y-%m-%d %H:%M"),
        m.id()
    )
}

/// The memory file in a home's data directory.
pub fn memory_file(data_dir: &Path) -> PathBuf {
    data_dir.join("memory.db")
}

/// Attach the embedding model if one is found; `Some(why)` when none is.
/// A model of another dimension than the stored vectors is an error.
pub fn attach_embedder(
    engine: &mut MemoryEngine,
    section: &MemorySection,
) -> Result<Option<String>> {
    match opticlaw_memory::embed::local_embedder_from(section.embedding_model_dir.as_deref()) {
        Ok(embedder) => {
            engine
                .set_embedder(embedder)
                .context("attaching the embedding model of [memory] to the memory store")?;
            Ok(None)
        }
        Err(why) => Ok(Some(why)),
    }
}

/// Who is asking: the local owner sees every memory, a platform user only
/// the conversations they took part in.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Thread prefix the user may see (`None`: everything).
    pub thread_prefix: Option<String>,
    /// The conversation asking (its records rank higher).
    pub thread_id: String,
}

impl Scope {
    /// The scope of a message from `user` in `thread` on `source`.
    pub fn of(source: &str, user: &str, thread: &str) -> Self {
        Self {
            thread_prefix: (source != "local").then(|| format!("{source}/{user}/")),
            thread_id: conversation_key(source, user, thread),
        }
    }
}

/// The memory thread of a conversation: `source/user/thread`.
pub fn conversation_key(source: &str, user: &str, thread: &str) -> String {
    format!("{source}/{user}/{thread}")
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Request {
    CatchUp,
    Search(Scope, String, usize, Reply<Vec<Hit>>),
    Context(
        Scope,
        String,
        RetrievalHints,
        usize,
        DateTime<Utc>,
        Reply<ContextPack>,
    ),
    Remember(Scope, String, Reply<StoredMemory>),
    Forget(Scope, String, Reply<Vec<StoredMemory>>),
    /// The model's rewrite of a summary.
    Rewritten(summarize::Rewritten),
}

/// A cheap handle to the memory thread.
#[derive(Clone)]
pub struct MemoryHandle {
    tx: mpsc::Sender<Request>,
}

impl MemoryHandle {
    /// Open `data/memory.db` and start the memory thread. The model loads
    /// on that thread, so the daemon is ready without waiting for it. With
    /// `summary_model` (and an async runtime to call it from), session and
    /// thread summaries are rewritten by it.
    pub fn start(
        data_dir: &Path,
        store_file: &Path,
        section: &MemorySection,
        summary_model: Option<crate::model_answerer::ModelAnswerer>,
    ) -> Result<Self> {
        let path = memory_file(data_dir);
        let engine = MemoryEngine::open(&path)
            .with_context(|| format!("opening the memory store {}", path.display()))?;
        let feed = ingest::Feed::open(store_file)?;
        let store = open_store_for_redaction(store_file)?;
        let (tx, rx) = mpsc::channel();
        let rewriter = summary_model
            .zip(tokio::runtime::Handle::try_current().ok())
            .map(|(model, runtime)| {
                let back = tx.clone();
                Arc::new(summarize::Rewriter {
                    model,
                    runtime,
                    deliver: Box::new(move |done| {
                        let _ = back.send(Request::Rewritten(done));
                    }),
                })
            });
        let section = section.clone();
        std::thread::Builder::new()
            .name("opticlaw-memory".into())
            .spawn(move || run(engine, feed, &store, &section, rewriter, rx))
            .context("starting the memory thread")?;
        let handle = Self { tx };
        handle.catch_up();
        Ok(handle)
    }

    /// Ingest whatever the daemon committed since the last catch-up.
    pub fn catch_up(&self) {
        let _ = self.tx.send(Request::CatchUp);
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| "the memory thread has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the memory thread has stopped".to_owned())?
    }

    /// The best `limit` memories for `text` visible in `scope`.
    pub async fn search(
        &self,
        scope: Scope,
        text: String,
        limit: usize,
    ) -> Result<Vec<Hit>, String> {
        self.ask(|r| Request::Search(scope, text, limit, r)).await
    }

    /// The budgeter's context for `text` within `budget` tokens, from what
    /// happened before `before` (the message itself may be ingested already),
    /// with triage's `hints` attached.
    pub async fn context(
        &self,
        scope: Scope,
        text: String,
        hints: RetrievalHints,
        budget: usize,
        before: DateTime<Utc>,
    ) -> Result<ContextPack, String> {
        self.ask(|r| Request::Context(scope, text, hints, budget, before, r))
            .await
    }

    /// Remember a fact told in `scope`'s conversation.
    pub async fn remember(&self, scope: Scope, fact: String) -> Result<StoredMemory, String> {
        self.ask(|r| Request::Remember(scope, fact, r)).await
    }

    /// Forget a record by id, or every visible record containing `target`.
    pub async fn forget(&self, scope: Scope, target: String) -> Result<Vec<StoredMemory>, String> {
        self.ask(|r| Request::Forget(scope, target, r)).await
    }
}

/// A connection to the daemon's store for erasing forgotten text from its
/// event log and outbox (SQLite serialises it with the store's writer).
pub fn open_store_for_redaction(store_file: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        store_file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} to erase forgotten text", store_file.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Overwrite, not just unlink, what is erased.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(conn)
}

fn run(
    mut engine: MemoryEngine,
    mut feed: ingest::Feed,
    store: &rusqlite::Connection,
    section: &MemorySection,
    rewriter: Option<Arc<summarize::Rewriter>>,
    rx: mpsc::Receiver<Request>,
) {
    lower_priority();
    // The model (about 100 MB resident) loads on the first request that
    // needs it, so a daemon that nobody talks to stays small.
    let mut model_loaded = false;
    let mut forget_checked: Option<std::time::Instant> = None;
    // A request read while coalescing catch-ups, handled next.
    let mut next = None;
    // Blocks with no timeout: nothing runs here until a request arrives.
    while let Some(request) = next.take().or_else(|| rx.recv().ok()) {
        if let Request::CatchUp = request {
            // Catch-ups queued behind this one (one per committed reply)
            // are covered by its pass: their rows were committed before
            // they were sent. Under load this saves a pass per message.
            next = loop {
                match rx.try_recv() {
                    Ok(Request::CatchUp) => continue,
                    Ok(other) => break Some(other),
                    Err(_) => break None,
                }
            };
        }
        let needs_model = match request {
            // Only worth a read while the model is still to be loaded.
            Request::CatchUp => !model_loaded && feed.has_pending(&engine).unwrap_or(true),
            Request::Rewritten(_) => false,
            _ => true,
        };
        if needs_model && !model_loaded {
            model_loaded = true;
            load_model(&mut engine, section);
        }
        match request {
            Request::CatchUp => {
                match feed.catch_up(&mut engine, &opticlaw_memory::ExtractiveSummarizer) {
                    Ok(ingested) => {
                        for (id, level) in ingested.summaries {
                            if let Some(rewriter) = &rewriter {
                                rewriter.offer(&engine, id, level);
                            }
                        }
                    }
                    Err(err) => tracing::error!("memory ingestion: {err:#}"),
                }
                // Housekeeping rides on arriving turns, once a day at most,
                // and only when no request is waiting behind it. Whether a
                // pass is due is read from the memory file at most hourly,
                // not on every catch-up of a busy daemon.
                if next.is_none() && forget_checked.is_none_or(|at| at.elapsed() >= FORGET_CHECK) {
                    forget_checked = Some(std::time::Instant::now());
                    forget_if_due(&mut engine);
                }
            }
            Request::Rewritten(done) => summarize::apply(&mut engine, &done),
            Request::Search(scope, text, limit, reply) => {
                let _ = reply.send(search(&engine, &scope, &text, limit));
            }
            Request::Context(scope, text, hints, budget, before, reply) => {
                let mut request = ContextRequest {
                    thread_id: Some(scope.thread_id.clone()),
                    thread_prefix: scope.thread_prefix.clone(),
                    hints,
                    ..ContextRequest::new(&text, budget)
                };
                // Stored times have millisecond precision: cut `before` to match.
                let to =
                    DateTime::from_timestamp_millis(before.timestamp_millis()).unwrap_or(before);
                request.hints.time_range = Some(TimeRange {
                    from: DateTime::<Utc>::MIN_UTC,
                    to,
                });
                let _ = reply.send(engine.build_context(&request).map_err(|e| e.to_string()));
            }
            Request::Remember(scope, fact, reply) => {
                let new = NewMemory::semantic(fact, 1.0, "told with /remember")
                    .in_thread(scope.thread_id.clone());
                let _ = reply.send(engine.add(new).map_err(|e| e.to_string()));
            }
            Request::Forget(scope, target, reply) => {
                let _ = reply.send(forget(&mut engine, Some(store), &scope, &target));
            }
        }
    }
}

fn search(
    engine: &MemoryEngine,
    scope: &Scope,
    text: &str,
    limit: usize,
) -> Result<Vec<Hit>, String> {
    let query = Query {
        thread_id: Some(scope.thread_id.clone()),
        thread_prefix: scope.thread_prefix.clone(),
        ..Query::new(text, limit)
    };
    engine.search(&query).map_err(|e| e.to_string())
}

/// Forget by id (when `target` is one) or every visible record whose content
/// contains `target` (case-insensitive); nothing vaguer, so a forget never
/// deletes what the user did not name. With the daemon's `store`, the
/// forgotten text is also erased from its event log and outbox in the
/// record's conversation (and `target` from the asking conversation: the
/// `/forget` message itself), so it survives nowhere.
pub fn forget(
    engine: &mut MemoryEngine,
    store: Option<&rusqlite::Connection>,
    scope: &Scope,
    target: &str,
) -> Result<Vec<StoredMemory>, String> {
    let visible = |m: &StoredMemory| match &scope.thread_prefix {
        None => true,
        Some(p) => m
            .record
            .thread_id
            .as_deref()
            .is_some_and(|t| t.starts_with(p.as_str())),
    };
    let doomed: Vec<StoredMemory> = match Uuid::parse_str(target.trim()) {
        Ok(id) => engine
            .get(id)
            .map_err(|e| e.to_string())?
            .filter(visible)
            .into_iter()
            .collect(),
        Err(_) => {
            let needle = target.trim().to_lowercase();
            search(engine, scope, target, 200)?
                .into_iter()
                .map(|h| h.memory)
                .filter(|m| m.content().to_lowercase().contains(&needle))
                .collect()
        }
    };
    for m in &doomed {
        engine.forget(m.id()).map_err(|e| e.to_string())?;
    }
    if let Some(store) = store {
        let failed =
            |e: &dyn std::fmt::Display| format!("erasing forgotten text from the event log: {e}");
        // One transaction: the event log and the outbox lose the text together.
        let tx = store.unchecked_transaction().map_err(|e| failed(&e))?;
        let redact = |conversation: &str, text: &str| {
            opticlaw_store::ops::redact_text(&tx, conversation, text).map_err(|e| failed(&e))
        };
        for m in &doomed {
            if let Some(thread) = m.record.thread_id.as_deref() {
                redact(thread, m.content())?;
            }
        }
        let by_text = Uuid::parse_str(target.trim()).is_err();
        if by_text && !doomed.is_empty() && !scope.thread_id.is_empty() {
            redact(&scope.thread_id, target.trim())?;
        }
        tx.commit().map_err(|e| failed(&e))?;
    }
    Ok(doomed)
}

/// Expired records purged and decayed ones forgotten (pinned never, and
/// only records a summary already covers), when a day has passed.
/// How often arriving turns may ask whether the daily forgetting pass is due.
const FORGET_CHECK: std::time::Duration = std::time::Duration::from_secs(3600);

fn forget_if_due(engine: &mut MemoryEngine) {
    let policy = opticlaw_memory::DecayPolicy::default();
    match engine.forget_if_due(&policy, Utc::now()) {
        Ok(Some((expired, decayed))) if expired + decayed > 0 => {
            tracing::info!(expired, decayed, "memory: forgot expired and faded records")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "memory: the forgetting pass failed"),
    }
}

fn load_model(engine: &mut MemoryEngine, section: &MemorySection) {
    match attach_embedder(engine, section) {
        Ok(None) => tracing::info!("memory: embedding model loaded"),
        Ok(Some(why)) => {
            tracing::warn!(%why, "memory: no embedding model; retrieval uses full text + graph")
        }
        Err(err) => {
            tracing::error!("memory: {err:#}; retrieval uses full text + graph")
        }
    }
}

/// Memory is background work: embedding a turn takes milliseconds of CPU,
/// and a burst of messages must not delay acknowledgements and replies on
/// the daemon's thread. Linux keeps a nice value per thread, and threads
/// started from here (the model's worker threads) inherit it.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = nix::unistd::gettid().as_raw();
        // SAFETY: setpriority only reads its integer arguments; raising our
        // own thread's nice value needs no privilege.
        let rc = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as _, 10) };
        if rc != 0 {
            tracing::debug!("memory: could not lower the thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_users_see_only_their_own_conversations() {
        let owner = Scope::of("local", "owner", "main");
        assert_eq!(owner.thread_prefix, None);
        assert_eq!(owner.thread_id, "local/owner/main");
        let guest = Scope::of("telegram", "42", "chat-7");
        assert_eq!(guest.thread_prefix.as_deref(), Some("telegram/42/"));
        assert!(
            guest
                .thread_id
                .starts_with(guest.thread_prefix.as_deref().unwrap())
        );
    }

    #[test]
    fn forget_by_text_deletes_only_visible_records_containing_it() {
        let mut engine = MemoryEngine::open_in_memory(Default::default()).unwrap();
        let at = chrono::Utc::now();
        for (thread, text) in [
            ("telegram/42/c", "my locker code is 1234"),
            ("telegram/7/c", "my locker code is 1234"),
            ("telegram/42/c", "the locker is blue"),
        ] {
            engine
                .add(NewMemory::episodic(thread, "u", text, at))
                .unwrap();
        }
        let gone = forget(
            &mut engine,
            None,
            &Scope::of("telegram", "42", "c"),
            "LOCKER CODE is 1234",
        )
        .unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].record.thread_id.as_deref(), Some("telegram/42/c"));
        let left = engine.search(&Query::new("locker code", 10)).unwrap();
        assert_eq!(
            left.len(),
            2,
            "the other user's record and the unrelated one stay"
        );
    }
}
