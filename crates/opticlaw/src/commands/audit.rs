//! `opticlaw audit verify`: walks the hash-chained audit log.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use opticlaw_security::audit;

use crate::home::Home;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check every record's hash and link, and the recorded head; exits 1
    /// naming the first edited, deleted or inserted record
    Verify,
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    match command {
        Command::Verify => {
            // Read straight from the file: verification must not go
            // through (or be blocked by) the daemon it checks.
            let conn = opticlaw_store::rusqlite::Connection::open_with_flags(
                home.store_file(),
                opticlaw_store::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            let report = audit::verify(&conn)?;
            let head = report
                .head
                .as_ref()
                .map(|h| format!("head seq {} hash {}", h.seq, h.hash))
                .unwrap_or_else(|| "empty log".into());
            match report.first_bad {
                None => {
                    println!("audit log intact: {} records, {head}", report.records);
                    Ok(ExitCode::SUCCESS)
                }
                Some(bad) => {
                    println!(
                        "audit log TAMPERED: record {} is {:?} ({} records verified before it)",
                        bad.seq, bad.problem, report.records
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
