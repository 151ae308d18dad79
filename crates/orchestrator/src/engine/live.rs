//! The folded state of every running task, kept in memory and brought up
//! to date from each committed transaction, so that a step costs no read
//! of the task's log. The log stays the truth: a task not in memory (after
//! a restart, or once it has finished) is rebuilt from it, and every
//! transition still checks the state it starts from in the database.

use std::collections::HashMap;
use std::sync::Mutex;

use opticlaw_store::rusqlite::Connection;
use serde_json::Value;

use super::now_ms;
use crate::journal::{self, JournalError, TaskView, TransitionRecord};
use crate::state::State;

/// Live views of unfinished tasks, by task id.
///
/// Changed only on the store's writer thread, by the hooks that run right
/// after a transaction commits (in commit order, so in log order), and by
/// nothing else: a view never shows an uncommitted or rolled-back change.
#[derive(Default)]
pub(super) struct LiveViews(Mutex<HashMap<String, TaskView>>);

impl LiveViews {
    /// Runs `read` on the task's view when it is in memory; gives `read`
    /// back otherwise.
    pub(super) fn read<R, F: FnOnce(&TaskView) -> R>(&self, task: &str, read: F) -> Result<R, F> {
        match self.0.lock().expect("live views").get(task) {
            Some(view) => Ok(read(view)),
            None => Err(read),
        }
    }

    /// Keeps a view read from the log (or just planned), unless the task
    /// is finished or a view of it is already kept: that one has seen
    /// every commit since, as this one has.
    pub(super) fn adopt(&self, view: &TaskView) {
        if view.state.is_terminal() {
            return;
        }
        self.0
            .lock()
            .expect("live views")
            .entry(view.task_id.clone())
            .or_insert_with(|| view.clone());
    }

    /// Folds committed records into the views they belong to; a finished
    /// task leaves memory (a replay or a late step reads it from the log).
    pub(super) fn apply(&self, appended: &[(String, TransitionRecord)]) {
        let mut views = self.0.lock().expect("live views");
        for (task, record) in appended {
            let Some(view) = views.get_mut(task) else {
                continue;
            };
            if let Err(error) = view.apply(record) {
                // Cannot happen for records this process appended; if it
                // did, the log is the truth: read it again next time.
                tracing::error!(task, %error, "a live task view fell out of step; dropped");
                views.remove(task);
                continue;
            }
            if record.node_id.is_none() && record.to.is_terminal() {
                views.remove(task);
            }
        }
    }

    /// Forgets every view: after a commit failed, memory may hold changes
    /// the database does not, and the log is read again.
    pub(super) fn clear(&self) {
        self.0.lock().expect("live views").clear();
    }
}

/// A transaction of the orchestrator: the connection, every transition
/// appended through it (folded into the live views once committed) and
/// every token revoked in it (added to the runners' list once committed).
pub(super) struct Tx<'c> {
    pub(super) conn: &'c Connection,
    pub(super) appended: Vec<(String, TransitionRecord)>,
    pub(super) revoked: Vec<String>,
}

impl<'c> Tx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            appended: Vec::new(),
            revoked: Vec::new(),
        }
    }

    /// Revokes every unexpired token minted for `task` and returns their
    /// revocation ids.
    pub(super) fn revoke_task_tokens(
        &mut self,
        task: &str,
        reason: &str,
    ) -> Result<Vec<String>, super::OrchError> {
        let now = chrono::Utc::now();
        let ids = journal::live_tokens(self.conn, task, now.timestamp_millis())?;
        for id in &ids {
            opticlaw_security::token::revoke_id(self.conn, id, reason, now).map_err(|e| {
                super::OrchError::Store(opticlaw_store::StoreError::CommitFailed(format!(
                    "revoking a token: {e}"
                )))
            })?;
        }
        self.revoked.extend(ids.iter().cloned());
        Ok(ids)
    }

    /// [`journal::transition`], remembering the record.
    pub(super) fn transition(
        &mut self,
        task: &str,
        node: Option<&str>,
        expected: Option<State>,
        to: State,
        detail: &Value,
    ) -> Result<(), JournalError> {
        let record = journal::transition(self.conn, task, node, expected, to, detail, now_ms())?;
        self.appended.push((task.to_owned(), record));
        Ok(())
    }

    /// The current state of a task or node, as the database has it.
    pub(super) fn current(
        &self,
        task: &str,
        node: Option<&str>,
    ) -> Result<Option<State>, JournalError> {
        journal::current(self.conn, task, node)
    }
}
