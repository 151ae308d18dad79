//! The orchestrator's tables in the daemon's SQLite file.

/// The orchestrator's tables, migrated with the store as their own component
/// (`orchestrator`). Append only: a shipped migration is never edited.
///
/// `orch_transitions` is the event log: every state change of a task (with
/// `node_id = ''`) or of a node is one appended row, and the current state
/// of anything is the `to_state` of its last row. Triggers make the log
/// append-only.
pub const COMPONENT: opticlaw_store::Component = opticlaw_store::Component {
    name: "orchestrator",
    migrations: &[
        r#"
        CREATE TABLE orch_tasks (
            task_id    TEXT    PRIMARY KEY,
            graph      TEXT    NOT NULL,
            principal  TEXT    NOT NULL,
            created_ms INTEGER NOT NULL
        );

        CREATE TABLE orch_transitions (
            seq        INTEGER PRIMARY KEY,
            task_id    TEXT    NOT NULL REFERENCES orch_tasks (task_id),
            node_id    TEXT    NOT NULL,
            from_state TEXT,
            to_state   TEXT    NOT NULL,
            detail     TEXT    NOT NULL,
            at_ms      INTEGER NOT NULL
        );
        CREATE INDEX orch_transitions_by_subject ON orch_transitions (task_id, node_id, seq);
        CREATE TRIGGER orch_transitions_no_update BEFORE UPDATE ON orch_transitions
        BEGIN SELECT RAISE(ABORT, 'orch_transitions is append-only'); END;
        CREATE TRIGGER orch_transitions_no_delete BEFORE DELETE ON orch_transitions
        BEGIN SELECT RAISE(ABORT, 'orch_transitions is append-only'); END;

        CREATE TABLE orch_approvals (
            approval_id TEXT PRIMARY KEY,
            task_id     TEXT NOT NULL,
            node_id     TEXT NOT NULL
        );

        CREATE TABLE orch_dead_letters (
            task_id     TEXT    PRIMARY KEY,
            node_id     TEXT    NOT NULL,
            reason      TEXT    NOT NULL,
            at_ms       INTEGER NOT NULL,
            replayed_ms INTEGER
        );
        CREATE INDEX orch_dead_letters_open ON orch_dead_letters (at_ms)
            WHERE replayed_ms IS NULL;

        CREATE TABLE orch_prepared (
            key  TEXT PRIMARY KEY,
            args TEXT NOT NULL
        );
    "#,
        // Every capability token minted for a call, recorded before the call:
        // what a cancelled or denied task revokes.
        r#"
        CREATE TABLE orch_tokens (
            revocation_id TEXT    PRIMARY KEY,
            task_id       TEXT    NOT NULL,
            node_id       TEXT    NOT NULL,
            key           TEXT    NOT NULL,
            expires_ms    INTEGER NOT NULL
        );
        CREATE INDEX orch_tokens_by_task ON orch_tokens (task_id, expires_ms);
    "#,
    ],
};
