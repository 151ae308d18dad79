//! The group-commit writer: one thread owns the connection and commits every
//! request that is waiting in a single transaction.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::checkpoint::Checkpointer;
use crate::{Store, StoreError, Synchronous};

/// Most requests committed together; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;

/// How a request shares its transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Alone in its transaction: a failure rolls the whole transaction back.
    Alone,
    /// Shares the transaction: a failure rolls back to its own savepoint.
    Savepoint,
}

/// Answers a request once its transaction's fate is known.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One queued request for the writer thread.
trait Request: Send {
    /// Runs it; returns whether it succeeded and how to answer after commit.
    fn run(self: Box<Self>, conn: &Connection, isolation: Isolation) -> (bool, Answer);
    /// Answers without running (the transaction could not begin).
    fn abandon(self: Box<Self>, why: String);
}

/// Runs on the writer thread once a request's transaction has committed.
type OnCommit<T> = Box<dyn FnOnce(&T) + Send>;

struct Call<T, F> {
    work: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
    on_commit: Option<OnCommit<T>>,
}

impl<T, F> Request for Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, isolation: Isolation) -> (bool, Answer) {
        let Call {
            work,
            reply,
            on_commit,
        } = *self;
        let result = match isolation {
            Isolation::Alone => work(conn),
            Isolation::Savepoint => run_in_savepoint(conn, work),
        };
        let succeeded = result.is_ok();
        let answer: Answer = Box::new(move |committed| {
            let outcome = match committed {
                Ok(()) => {
                    if let (Ok(value), Some(hook)) = (&result, on_commit) {
                        hook(value);
                    }
                    result
                }
                Err(why) => Err(StoreError::CommitFailed(why)),
            };
            let _ = reply.send(outcome);
        });
        (succeeded, answer)
    }

    fn abandon(self: Box<Self>, why: String) {
        let _ = self.reply.send(Err(StoreError::CommitFailed(why)));
    }
}

/// A cloneable handle to the store's writer thread.
///
/// ```no_run
/// # async fn demo() -> Result<(), opticlaw_store::StoreError> {
/// let store = opticlaw_store::StoreHandle::open("/tmp/o.db".as_ref(), Default::default())?;
/// let stats = store.call(opticlaw_store::ops::stats).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StoreHandle {
    requests: mpsc::Sender<Box<dyn Request>>,
}

impl StoreHandle {
    /// Opens the store and starts its writer thread. The thread ends when
    /// the last handle is dropped.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let store = Store::open(path, synchronous)?;
        Ok(Self::spawn(store))
    }

    /// Like [`StoreHandle::open`], also migrating other crates' tables.
    pub fn open_with(
        path: &Path,
        synchronous: Synchronous,
        components: &[crate::Component],
    ) -> Result<Self, StoreError> {
        Ok(Self::spawn(Store::open_with(
            path,
            synchronous,
            components,
        )?))
    }

    pub fn spawn(store: Store) -> Self {
        let (requests, inbox) = mpsc::channel::<Box<dyn Request>>();
        std::thread::Builder::new()
            .name("opticlaw-store".into())
            .spawn(move || run_writer(store, inbox))
            .expect("spawning the store writer thread");
        Self { requests }
    }

    /// Runs `work` inside the next group transaction and answers once that
    /// transaction is committed. An error from `work` undoes only `work`'s
    /// own changes.
    pub async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(work, None).await
    }

    /// Like [`StoreHandle::call`], then runs `on_commit` with `work`'s
    /// result on the writer thread once its transaction has committed and
    /// before the caller is answered. Hooks run in commit order, so state
    /// kept in memory beside the store (the orchestrator's live task views)
    /// sees changes in the order the database does, and only committed ones.
    pub async fn call_then<T, F, G>(&self, work: F, on_commit: G) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        G: FnOnce(&T) + Send + 'static,
    {
        self.send(work, Some(Box::new(on_commit))).await
    }

    /// Like [`StoreHandle::call`], for a plain thread outside any async
    /// runtime (a sandbox's egress proxy observer): blocks it until the
    /// transaction is committed, without building a runtime to wait.
    pub fn call_blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(work, None)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    async fn send<T, F>(&self, work: F, on_commit: Option<OnCommit<T>>) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(work, on_commit)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Queues `work` for the writer; the receiver answers after its commit.
    fn enqueue<T, F>(
        &self,
        work: F,
        on_commit: Option<OnCommit<T>>,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Box::new(Call {
                work,
                reply,
                on_commit,
            }))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(answer)
    }
}

/// Runs a transaction-control statement through the statement cache: these
/// run for every request, and parsing them anew each time shows.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    control(conn, "SAVEPOINT job")?;
    let result = work(conn);
    if result.is_err() {
        control(conn, "ROLLBACK TO job")?;
    }
    control(conn, "RELEASE job")?;
    result
}

fn run_writer(store: Store, inbox: mpsc::Receiver<Box<dyn Request>>) {
    let conn = store.connection();
    let mut checkpointer = Checkpointer::start(conn);
    let mut batch: Vec<Box<dyn Request>> = Vec::with_capacity(MAX_BATCH);
    let mut answers: Vec<Answer> = Vec::with_capacity(MAX_BATCH);
    // Blocks without a timeout: an idle store thread never wakes.
    while let Ok(first) = inbox.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if let Err(err) = control(conn, "BEGIN IMMEDIATE") {
            let why = err.to_string();
            for request in batch.drain(..) {
                request.abandon(why.clone());
            }
            continue;
        }
        let all_succeeded = if batch.len() == 1 {
            let request = batch.pop().expect("one request");
            let (succeeded, answer) = request.run(conn, Isolation::Alone);
            answers.push(answer);
            succeeded
        } else {
            for request in batch.drain(..) {
                answers.push(request.run(conn, Isolation::Savepoint).1);
            }
            true
        };
        let committed = if all_succeeded {
            control(conn, "COMMIT").map_err(|err| {
                let _ = control(conn, "ROLLBACK");
                err.to_string()
            })
        } else {
            // The lone request failed: its own error is its answer.
            control(conn, "ROLLBACK").map_err(|err| err.to_string())
        };
        if all_succeeded && committed.is_ok() {
            checkpointer.committed();
        }
        for answer in answers.drain(..) {
            answer(committed.clone());
        }
        checkpointer.rewind_if_asked(conn);
    }
}
