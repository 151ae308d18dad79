//! Shared fixtures: a real store file with the security component migrated.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use opticlaw_store::rusqlite::Connection;
use opticlaw_store::{Store, Synchronous};

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("opticlaw.db"));
        Self { dir, store }
    }

    pub fn conn(&self) -> &Connection {
        self.store.connection()
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("opticlaw.db")
    }

    /// Closes and reopens the file, as a restarted daemon would.
    pub fn reopen(&mut self) {
        let path = self.path();
        self.store = open(&path);
    }
}

pub fn open(path: &Path) -> Store {
    Store::open_with(path, Synchronous::Normal, &[opticlaw_security::COMPONENT]).unwrap()
}

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}
