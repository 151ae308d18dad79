//! `opticlaw dlq list|show|replay`: tasks that ran out of retries.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use opticlaw_orchestrator::journal;
use serde_json::json;

use crate::home::Home;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Dead letters not yet replayed (with --all, every one)
    List {
        #[arg(long)]
        all: bool,
    },
    /// One task's plan and every state change it went through
    Show { task: String },
    /// Plan the task's failed steps again (fresh idempotency keys) and run it
    Replay { task: String },
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            Command::List { all } => {
                let store = super::open_store(&home)?;
                let letters = store
                    .call(move |conn| Ok(journal::dead_letters(conn, !all)))
                    .await??;
                if letters.is_empty() {
                    println!("the dead-letter queue is empty");
                }
                for l in letters {
                    let at = chrono::DateTime::from_timestamp_millis(l.at_ms).unwrap_or_default();
                    let replayed = if l.replayed_ms.is_some() {
                        "  (replayed)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {}  node {}: {}{replayed}",
                        l.task_id,
                        at.format("%Y-%m-%d %H:%M:%S UTC"),
                        l.node_id,
                        l.reason
                    );
                }
            }
            Command::Show { task } => {
                let store = super::open_store(&home)?;
                let (view, history) = store
                    .call(move |conn| {
                        Ok(journal::load(conn, &task)
                            .and_then(|v| Ok((v, journal::history(conn, &task)?))))
                    })
                    .await??;
                println!(
                    "task {}: {} ({})",
                    view.task_id, view.graph.goal, view.state
                );
                for node in &view.graph.nodes {
                    let state = view.node(&node.id);
                    println!(
                        "  node {} [{}] {} attempt {}{}",
                        node.id,
                        state.state.map_or("?", |s| s.as_str()),
                        node.params["tool"].as_str().unwrap_or("-"),
                        state.attempt,
                        state
                            .error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                }
                println!("history:");
                for record in history {
                    let at =
                        chrono::DateTime::from_timestamp_millis(record.at_ms).unwrap_or_default();
                    println!(
                        "  {} {:<6} {} -> {}  {}",
                        at.format("%H:%M:%S%.3f"),
                        record.node_id.as_deref().unwrap_or("(task)"),
                        record.from.map_or("-", |s| s.as_str()),
                        record.to,
                        record.detail
                    );
                }
            }
            Command::Replay { task } => {
                super::ask_daemon(&home, &format!("/v1/dlq/{task}/replay"), json!({})).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
