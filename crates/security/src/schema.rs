//! The security core's tables in the daemon's SQLite file.

/// The security core's tables, migrated with the store as their own
/// component (`security`). Append only: a shipped migration is never edited.
pub const COMPONENT: opticlaw_store::Component = opticlaw_store::Component {
    name: "security",
    migrations: &[r#"
        CREATE TABLE security_audit (
            seq       INTEGER PRIMARY KEY,
            at_ms     INTEGER NOT NULL,
            kind      TEXT    NOT NULL,
            actor     TEXT    NOT NULL,
            action    TEXT    NOT NULL,
            prev_hash TEXT    NOT NULL,
            hash      TEXT    NOT NULL
        );
        CREATE TRIGGER security_audit_no_update BEFORE UPDATE ON security_audit
        BEGIN SELECT RAISE(ABORT, 'security_audit is append-only'); END;
        CREATE TRIGGER security_audit_no_delete BEFORE DELETE ON security_audit
        BEGIN SELECT RAISE(ABORT, 'security_audit is append-only'); END;

        CREATE TABLE security_audit_head (
            id   INTEGER PRIMARY KEY CHECK (id = 1),
            seq  INTEGER NOT NULL,
            hash TEXT    NOT NULL
        );

        CREATE TABLE security_revoked (
            revocation_id TEXT    PRIMARY KEY,
            revoked_ms    INTEGER NOT NULL,
            reason        TEXT    NOT NULL
        );

        CREATE TABLE security_approvals (
            id           TEXT    PRIMARY KEY,
            tool         TEXT    NOT NULL,
            scope        TEXT    NOT NULL,
            tier         INTEGER NOT NULL CHECK (tier IN (2, 3)),
            action       TEXT    NOT NULL,
            action_hash  TEXT    NOT NULL,
            source       TEXT    NOT NULL,
            user_id      TEXT    NOT NULL,
            chat_id      TEXT    NOT NULL,
            status       TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'approved', 'denied')),
            requested_ms INTEGER NOT NULL,
            expires_ms   INTEGER NOT NULL,
            decided_ms   INTEGER,
            totp_step    INTEGER
        );
        CREATE INDEX security_approvals_pending ON security_approvals (requested_ms)
            WHERE status = 'pending';

        CREATE TABLE security_totp_used (
            user_id TEXT    NOT NULL,
            step    INTEGER NOT NULL,
            used_ms INTEGER NOT NULL,
            PRIMARY KEY (user_id, step)
        );

        CREATE TABLE security_idempotency (
            key         TEXT    PRIMARY KEY,
            state       TEXT    NOT NULL CHECK (state IN ('started', 'done')),
            attempts    INTEGER NOT NULL,
            started_ms  INTEGER NOT NULL,
            finished_ms INTEGER,
            result      TEXT
        );
    "#],
};
