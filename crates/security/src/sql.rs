//! Small SQL helpers shared by the modules.

use opticlaw_store::rusqlite::{self, Connection};

/// Runs `f` inside a savepoint: all of it commits or none of it does. Works
/// whether or not the caller already holds a transaction.
pub(crate) fn atomically<T, E>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<rusqlite::Error>,
{
    // Cached: this runs around every audit record.
    conn.prepare_cached("SAVEPOINT opticlaw_security")?
        .execute([])?;
    match f(conn) {
        Ok(value) => {
            conn.prepare_cached("RELEASE opticlaw_security")?
                .execute([])?;
            Ok(value)
        }
        Err(error) => {
            // Best effort: the original error matters more than a failed rollback.
            let _ = conn.execute_batch("ROLLBACK TO opticlaw_security; RELEASE opticlaw_security");
            Err(error)
        }
    }
}

/// Milliseconds since the Unix epoch back to a UTC time.
pub(crate) fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
