//! `opticlaw pairing list|approve|deny`: who may talk to the assistant.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use opticlaw_gateway::PairingStore;
use opticlaw_store::StoreHandle;

use crate::channels::SqlitePairing;
use crate::config::Config;
use crate::home::Home;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Senders waiting for approval, with their codes
    List,
    /// Let the sender holding CODE talk to the assistant
    Approve { code: String },
    /// Ignore the sender holding CODE from now on
    Deny { code: String },
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let config = Config::load(&home.config_file())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = StoreHandle::open_with(
            &home.store_file(),
            config.store.synchronous,
            &crate::store_components(),
        )?;
        let pairing = SqlitePairing(store);
        let now = chrono::Utc::now();
        match command {
            Command::List => {
                let pending = pairing.list(now).await?;
                if pending.is_empty() {
                    println!("no sender is waiting for approval");
                }
                for request in pending {
                    println!(
                        "{}  {:<9} {}  (asked {}, expires {})",
                        request.code,
                        request.platform.as_str(),
                        request.user_id,
                        request.requested_at.format("%Y-%m-%d %H:%M"),
                        request.expires_at.format("%H:%M")
                    );
                }
            }
            Command::Approve { code } => {
                let request = pairing.approve(&code, now).await?;
                println!(
                    "approved {} on {}",
                    request.user_id,
                    request.platform.as_str()
                );
            }
            Command::Deny { code } => {
                let request = pairing.deny(&code, now).await?;
                println!(
                    "denied {} on {}",
                    request.user_id,
                    request.platform.as_str()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
