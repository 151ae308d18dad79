//! The planner's tables in the daemon's SQLite file.

/// Migrated with the store as the `planner` component. Append only: a
/// shipped migration is never edited.
pub const COMPONENT: opticlaw_store::Component = opticlaw_store::Component {
    name: "planner",
    migrations: &[r#"
        CREATE TABLE planner_capabilities (
            tool        TEXT    NOT NULL,
            scope       TEXT    NOT NULL,
            successes   INTEGER NOT NULL DEFAULT 0,
            failures    INTEGER NOT NULL DEFAULT 0,
            prior       REAL,
            alternative TEXT,
            PRIMARY KEY (tool, scope)
        );
        CREATE TABLE planner_failure_signatures (
            tool       TEXT    NOT NULL,
            scope      TEXT    NOT NULL,
            signature  TEXT    NOT NULL,
            mitigation TEXT    NOT NULL,
            seen       INTEGER NOT NULL,
            PRIMARY KEY (tool, scope, signature)
        );
        CREATE TABLE planner_decisions (
            request_id TEXT    NOT NULL,
            seq        INTEGER NOT NULL,
            at_ms      INTEGER NOT NULL,
            stage      TEXT    NOT NULL,
            node       TEXT,
            decision   TEXT    NOT NULL,
            why        TEXT    NOT NULL,
            inputs     TEXT    NOT NULL,
            PRIMARY KEY (request_id, seq)
        );
    "#],
};
