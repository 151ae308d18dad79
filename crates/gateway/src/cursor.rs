//! Where long-poll receivers keep their position (Telegram's `getUpdates`
//! offset, Matrix's `/sync` `next_batch`), so a restart neither loses nor
//! re-processes an update. A cursor is saved only after every event before
//! it is stored; the store's dedupe on `(source, event_id)` absorbs the
//! events fetched again after a crash between the two.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::SinkError;

/// Durable named cursors; the daemon backs it with SQLite.
pub trait CursorStore: Send + Sync + 'static {
    /// The saved value of `name`, if any.
    fn load(&self, name: &str) -> impl Future<Output = Result<Option<String>, SinkError>> + Send;
    /// Saves `value` as `name` (durably, before returning).
    fn save(&self, name: &str, value: &str) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A [`CursorStore`] in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryCursors {
    values: Mutex<HashMap<String, String>>,
}

impl MemoryCursors {
    /// No cursors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if saved.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.lock().expect("cursor lock").get(name).cloned()
    }
}

impl CursorStore for MemoryCursors {
    async fn load(&self, name: &str) -> Result<Option<String>, SinkError> {
        Ok(self.get(name))
    }

    async fn save(&self, name: &str, value: &str) -> Result<(), SinkError> {
        self.values
            .lock()
            .expect("cursor lock")
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}
