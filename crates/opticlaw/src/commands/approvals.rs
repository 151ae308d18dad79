//! `opticlaw approvals list|approve|deny`: actions waiting for the owner.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use opticlaw_security::approval;
use serde_json::json;

use crate::home::Home;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Actions waiting for approval (with --all, every request)
    List {
        #[arg(long)]
        all: bool,
    },
    /// Approve request ID; the daemon runs the action (tier 3: --code)
    Approve {
        id: String,
        /// The 6-digit TOTP code a tier 3 action needs
        #[arg(long)]
        code: Option<String>,
    },
    /// Deny request ID; its task stops and is rolled back
    Deny { id: String },
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            Command::List { all } => list(&home, all).await?,
            // Decisions go through the daemon, which then runs the node.
            Command::Approve { id, code } => {
                let path = format!("/v1/approvals/{id}/approve");
                super::ask_daemon(&home, &path, json!({ "code": code })).await?;
            }
            Command::Deny { id } => {
                let path = format!("/v1/approvals/{id}/deny");
                super::ask_daemon(&home, &path, json!({})).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn list(home: &Home, all: bool) -> Result<()> {
    let store = super::open_store(home)?;
    let now = chrono::Utc::now();
    let approvals = store
        .call(move |conn| Ok(approval::list(conn, !all, now)))
        .await??;
    if approvals.is_empty() {
        println!("no action is waiting for approval");
    }
    for a in approvals {
        println!(
            "{}  tier {}  {:?}  {} for {} in {}/{}  (expires {})\n    {}",
            a.id,
            a.tier.level(),
            a.status,
            a.tool,
            a.requested_for.user_id,
            a.requested_for.source,
            a.requested_for.chat_id,
            a.expires_at.format("%Y-%m-%d %H:%M UTC"),
            a.action["args"]
        );
    }
    Ok(())
}
