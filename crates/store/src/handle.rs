//! The group-commit writer: one thread owns the connection and commits every
//! request that is waiting in a single transaction.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Store, StoreError, Synchronous};

/// Most requests committed together; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;

type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Answer + Send>;

/// A cloneable handle to the store's writer thread.
///
/// ```no_run
/// # async fn demo() -> Result<(), opticlaw_store::StoreError> {
/// let store = opticlaw_store::StoreHandle::open("/tmp/o.db".as_ref(), Default::default())?;
/// let stats = store.call(|conn| opticlaw_store::ops::stats(conn)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

impl StoreHandle {
    /// Opens the store and starts its writer thread. The thread ends when
    /// the last handle is dropped.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let store = Store::open(path, synchronous)?;
        Ok(Self::spawn(store))
    }

    pub fn spawn(store: Store) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("opticlaw-store".into())
            .spawn(move || run_writer(store, inbox))
            .expect("spawning the store writer thread");
        Self { jobs }
    }

    /// Runs `f` inside the next group transaction and answers once that
    /// transaction is committed. An error from `f` rolls back only `f`'s own
    /// changes (each request runs under its own savepoint).
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = run_in_savepoint(conn, f);
            Box::new(move |committed: Result<(), String>| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(why) => Err(StoreError::CommitFailed(why)),
                };
                let _ = reply.send(outcome);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn run_in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = f(conn);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end)?;
    result
}

fn run_writer(store: Store, inbox: mpsc::Receiver<Job>) {
    let conn = store.connection();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut answers: Vec<Answer> = Vec::with_capacity(MAX_BATCH);
    // Blocks without a timeout: an idle store thread never wakes.
    while let Ok(first) = inbox.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(err) = began {
            let why = err.to_string();
            for job in batch.drain(..) {
                job(conn)(Err(why.clone()));
            }
            continue;
        }
        answers.extend(batch.drain(..).map(|job| job(conn)));
        let committed = conn.execute_batch("COMMIT").map_err(|err| {
            let _ = conn.execute_batch("ROLLBACK");
            err.to_string()
        });
        for answer in answers.drain(..) {
            answer(committed.clone());
        }
    }
}
