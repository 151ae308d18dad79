use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use opticlaw_store::{Store, ops};

use crate::client::Client;
use crate::config::Config;
use crate::home::Home;

pub fn run(home: Option<&Path>) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let client = Client::for_home(&home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(client.status()) {
        Ok(status) => {
            let mb = status["rss_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0;
            println!(
                "daemon:     running at {} (pid {}, {mb:.1} MB RSS)",
                client.base(),
                status["pid"]
            );
            println!("state:      {}", status["state"].as_str().unwrap_or("?"));
            println!(
                "uptime:     {}s",
                status["uptime_ms"].as_u64().unwrap_or(0) / 1000
            );
            let q = &status["queue"];
            println!(
                "queue:      user_blocking {} · interactive {} · background {} · maintenance {}",
                q["user_blocking"], q["interactive"], q["background"], q["maintenance"]
            );
            println!(
                "events:     {} handled this run, {} duplicates, {} shed, {} refused busy",
                status["processed"], status["duplicates"], status["shed"], status["refused_busy"]
            );
            print_store(&status["store"]);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            println!("daemon:     not running ({err:#})");
            println!("            start it with `opticlaw serve`");
            let config = Config::load(&home.config_file())?;
            let store = Store::open(&home.store_file(), config.store.synchronous)?;
            print_store(&serde_json::to_value(ops::stats(store.connection())?)?);
            Ok(ExitCode::from(1))
        }
    }
}

fn print_store(stats: &serde_json::Value) {
    println!(
        "store:      {} events ({} pending), {} replies, schema v{}",
        stats["events_total"],
        stats["events_pending"],
        stats["replies_total"],
        stats["schema_version"]
    );
    let next = stats["next_wake_at_ms"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format(" — next at %H:%M:%S on %a %-d %b")
                .to_string()
        })
        .unwrap_or_default();
    println!("reminders:  {} pending{next}", stats["deferred_pending"]);
}
