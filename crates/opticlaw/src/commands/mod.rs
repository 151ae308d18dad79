pub mod approvals;
pub mod audit;
pub mod channels;
pub mod chat;
pub mod dlq;
pub mod doctor;
pub mod explain;
pub mod init;
pub mod memory;
pub mod models;
pub mod pairing;
pub mod security;
pub mod serve;
pub mod status;
pub mod triage;

/// Opens the daemon's store (safe beside a running daemon: SQLite WAL).
pub fn open_store(home: &crate::home::Home) -> anyhow::Result<opticlaw_store::StoreHandle> {
    let config = crate::config::Config::load(&home.config_file())?;
    Ok(opticlaw_store::StoreHandle::open_with(
        &home.store_file(),
        config.store.synchronous,
        &crate::store_components(),
    )?)
}

/// Asks the running daemon to act (decisions and replays run there, so the
/// node runs in the daemon) and prints its message.
pub async fn ask_daemon(
    home: &crate::home::Home,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let client = crate::client::Client::for_home(home)?;
    let answer = client.post_json(path, &body).await?;
    println!("{}", answer["message"].as_str().unwrap_or_default());
    Ok(())
}
