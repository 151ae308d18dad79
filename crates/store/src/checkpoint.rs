//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses its
//! threshold, on the committing connection: every caller of that group
//! commit waited for the copy and the fsyncs (it was most of the gateway's
//! p95). Here the writer only counts its commits and, every
//! [`COMMITS_PER_CHECKPOINT`], nudges a helper thread with its own
//! connection that runs a PASSIVE checkpoint, which never blocks the writer.
//! Both threads block on channels with no timeout: an idle store never wakes.
//!
//! A PASSIVE checkpoint never rewinds the log while the writer keeps
//! appending: SQLite writes the log from its start again only when a write
//! transaction begins with every frame already copied, which under sustained
//! load never happens. The log then only grows (half a gigabyte in a
//! 10-second gateway bench), and every commit pays the file system for
//! extending it. So once the helper finds the log over
//! [`REWIND_ABOVE_FRAMES`], it asks the writer to rewind it: between two
//! batches the writer runs a PASSIVE checkpoint of its own, which copies
//! only the frames written since the helper's (a millisecond or two), and
//! its next transaction then starts the log over, on blocks already
//! allocated and cached. A reader still on old frames makes that checkpoint
//! stop short; the writer never waits for it and is asked again later.
//! See <https://www.sqlite.org/c3ref/wal_checkpoint_v2.html> and
//! <https://www.sqlite.org/wal.html#avoiding_excessively_large_wal_files>.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;

/// Commits between two nudges (SQLite's own threshold is 1,000 pages; a
/// commit here writes a few).
const COMMITS_PER_CHECKPOINT: u32 = 128;

/// Frames (pages) in the log above which the writer is asked to rewind it
/// (32 MiB of the store's 2 KiB pages, which stay in the page cache).
const REWIND_ABOVE_FRAMES: i64 = 16_384;

/// The writer's side: counts commits, nudges the helper, rewinds the log
/// when the helper asks.
pub(crate) struct Checkpointer {
    nudge: Option<mpsc::SyncSender<()>>,
    helper: Option<std::thread::JoinHandle<()>>,
    commits: u32,
    rewind: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the helper for the writer's database and turns the writer's
    /// automatic checkpoint off. Without a file (in-memory) or when the
    /// helper cannot start, the writer keeps checkpointing itself.
    pub(crate) fn start(writer: &Connection) -> Self {
        Self::start_rewinding_above(writer, REWIND_ABOVE_FRAMES)
    }

    fn start_rewinding_above(writer: &Connection, rewind_above_frames: i64) -> Self {
        let rewind = Arc::new(AtomicBool::new(false));
        let disabled = Self {
            nudge: None,
            helper: None,
            commits: 0,
            rewind: rewind.clone(),
        };
        let Some(path) = writer.path().filter(|p| !p.is_empty()).map(PathBuf::from) else {
            return disabled;
        };
        let helper = match Connection::open(&path) {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "no checkpoint helper; the writer checkpoints");
                return disabled;
            }
        };
        if let Err(error) = helper.busy_timeout(std::time::Duration::from_secs(5)) {
            tracing::warn!(%error, "no checkpoint helper; the writer checkpoints");
            return disabled;
        }
        let (nudge, nudged) = mpsc::sync_channel::<()>(1);
        let asked = rewind.clone();
        let spawned = std::thread::Builder::new()
            .name("opticlaw-store-ckpt".into())
            .spawn(move || run_helper(helper, nudged, &asked, rewind_above_frames));
        let helper = match spawned {
            Ok(helper) => helper,
            Err(error) => {
                tracing::warn!(%error, "no checkpoint helper; the writer checkpoints");
                return disabled;
            }
        };
        if let Err(error) = writer.pragma_update(None, "wal_autocheckpoint", 0) {
            tracing::warn!(%error, "could not turn the writer's autocheckpoint off");
        }
        Self {
            nudge: Some(nudge),
            helper: Some(helper),
            commits: 0,
            rewind,
        }
    }

    /// Called after every commit; nudges the helper every
    /// [`COMMITS_PER_CHECKPOINT`]. A nudge while the helper is busy is
    /// dropped: it will look at the whole log when it is done.
    pub(crate) fn committed(&mut self) {
        let Some(nudge) = &self.nudge else { return };
        self.commits += 1;
        if self.commits >= COMMITS_PER_CHECKPOINT {
            self.commits = 0;
            let _ = nudge.try_send(());
        }
    }

    /// Called between batches: when the helper found the log too long,
    /// copies what it has not, so the next transaction starts the log over.
    pub(crate) fn rewind_if_asked(&self, writer: &Connection) {
        if self.rewind.swap(false, Ordering::Relaxed)
            && let Err(error) = checkpoint(writer, "PASSIVE")
        {
            tracing::warn!(%error, "WAL checkpoint before a rewind failed");
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the helper once it has handled the nudge still queued, so the
    /// writer's thread ends after the last checkpoint, not during it.
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(helper) = self.helper.take()
            && helper.join().is_err()
        {
            tracing::warn!("the checkpoint helper panicked");
        }
    }
}

fn run_helper(
    conn: Connection,
    nudged: mpsc::Receiver<()>,
    rewind: &AtomicBool,
    rewind_above_frames: i64,
) {
    // Ends when the writer (and its sender) is gone.
    while nudged.recv().is_ok() {
        match checkpoint(&conn, "PASSIVE") {
            Ok(log_frames) if log_frames > rewind_above_frames => {
                rewind.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
    }
}

/// Runs one checkpoint; returns how many frames the log holds.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection in WAL mode on `db`, with a table `t (id, body)`.
    fn wal_writer(db: &std::path::Path) -> Connection {
        let writer = Connection::open(db).unwrap();
        writer
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        writer
    }

    /// Without any checkpoint every page stays in the log and the database
    /// file stays as created; the helper copies them while the writer never
    /// checkpoints itself.
    #[test]
    fn the_helper_checkpoints_and_the_writer_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ckpt.db");
        let writer = wal_writer(&db);
        let mut checkpointer = Checkpointer::start(&writer);
        let autocheckpoint: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, 0, "the writer must not checkpoint itself");
        let body = "x".repeat(3000);
        let commits = 1_000u32;
        for _ in 0..commits {
            writer
                .execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .unwrap();
            checkpointer.committed();
        }
        // The last nudge (at commit 896) is still queued or being handled.
        drop(checkpointer);
        let db_bytes = std::fs::metadata(&db).unwrap().len();
        let data = u64::from(commits) * 3000;
        assert!(
            db_bytes > data * 8 / 10,
            "database file is {db_bytes} bytes after {commits} commits of 3 KB: not checkpointed"
        );
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, i64::from(commits));
    }

    /// Under sustained writes the helper's passive checkpoints alone never
    /// rewind the log; with the writer's rewinds it stays near the threshold
    /// instead of holding every frame ever written.
    #[test]
    fn the_log_is_rewound_once_it_passes_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rewind.db");
        let writer = wal_writer(&db);
        let rewind_above = 256;
        let mut checkpointer = Checkpointer::start_rewinding_above(&writer, rewind_above);
        let body = "x".repeat(3000);
        let commits = 4_096u32;
        for _ in 0..commits {
            writer
                .execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .unwrap();
            checkpointer.committed();
            checkpointer.rewind_if_asked(&writer);
        }
        drop(checkpointer);
        let wal_bytes = std::fs::metadata(dir.path().join("rewind.db-wal"))
            .unwrap()
            .len();
        // Without rewinds the log holds every frame: more than 4,096 pages.
        let bound = 4 * (rewind_above as u64 + 2 * u64::from(COMMITS_PER_CHECKPOINT)) * 4096;
        assert!(
            wal_bytes < bound,
            "the log grew to {wal_bytes} bytes over {commits} commits (bound {bound})"
        );
    }

    #[test]
    fn an_in_memory_writer_keeps_checkpointing_itself() {
        let writer = Connection::open_in_memory().unwrap();
        let mut checkpointer = Checkpointer::start(&writer);
        assert!(checkpointer.nudge.is_none());
        checkpointer.committed();
    }
}
