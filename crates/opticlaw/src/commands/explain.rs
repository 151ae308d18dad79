//! `opticlaw explain REQUEST_ID`: why the assistant did what it did for one
//! message (the request id is the event id of the message): triage's
//! stored outcome, then every planning decision with its reason.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use opticlaw_planner::decision;
use opticlaw_store::Store;
use opticlaw_store::rusqlite::OptionalExtension;

use crate::config::Config;
use crate::home::Home;

#[derive(clap::Args)]
pub struct Args {
    /// The event id of the message (as `opticlaw chat` and the API report it)
    pub request_id: String,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let config = Config::load(&home.config_file())?;
    let store = Store::open_with(
        &home.store_file(),
        config.store.synchronous,
        &crate::store_components(),
    )
    .context("opening the store")?;
    let conn = store.connection();
    let outcome: Option<Option<String>> = conn
        .query_row(
            "SELECT outcome FROM events WHERE event_id = ?1 ORDER BY seq DESC LIMIT 1",
            [&args.request_id],
            |row| row.get(0),
        )
        .optional()?;
    let records = decision::for_request(conn, &args.request_id)?;
    if outcome.is_none() && records.is_empty() {
        eprintln!(
            "no request {:?} is known: no event and no planning decision carry that id",
            args.request_id
        );
        return Ok(ExitCode::from(1));
    }
    println!("request {}", args.request_id);
    if let Some(outcome) = outcome {
        println!(
            "triage: {}",
            outcome.as_deref().unwrap_or("(not processed yet)")
        );
    }
    if records.is_empty() {
        println!("no planning decision: the request did not need a plan");
    } else {
        print!("{}", decision::render(&records));
    }
    Ok(ExitCode::SUCCESS)
}
