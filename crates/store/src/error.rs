#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store migration to version {version} failed: {source}")]
    Migration {
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the store at {path} has schema version {found}, newer than this build knows ({known}); upgrade opticlaw"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event seq {0}")]
    UnknownEvent(i64),
    #[error("the store's writer thread has stopped")]
    WriterGone,
    #[error("the transaction could not be committed: {0}")]
    CommitFailed(String),
}
