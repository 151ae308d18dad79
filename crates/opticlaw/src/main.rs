//! `opticlaw`: the daemon and its command line. This crate only wires the
//! library crates together: arguments, config, and the HTTP edge.

mod benches;
mod channels;
mod client;
mod commands;
mod config;
mod home;
mod memory;
mod model_answerer;
mod orchestration;
mod planning;
mod procfs;
mod reasoning;
mod sandbox_runner;
mod server;
mod webchat;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// OptiClaw: a local-first, event-driven personal assistant.
#[derive(Parser)]
#[command(name = "opticlaw", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    /// Directory for config, data and the API token [default: $OPTICLAW_HOME or ~/.opticlaw]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the config file, the data directory and the API token
    Init(commands::init::Args),
    /// Run the assistant daemon (HTTP on 127.0.0.1)
    Serve(commands::serve::Args),
    /// Chat with the running daemon in the terminal
    Chat(commands::chat::Args),
    /// Show what the daemon is doing
    Status,
    /// Check config, store, token and port, and say how to fix each problem
    Doctor,
    /// Approve or deny chat-platform senders waiting with a pairing code
    #[command(subcommand)]
    Pairing(commands::pairing::Command),
    /// Chat accounts (Telegram, Slack, Discord, WhatsApp, Matrix): list, add, test, remove
    #[command(subcommand)]
    Channels(commands::channels::Command),
    /// Model providers and tiers: list, add, test, usage
    #[command(subcommand)]
    Models(commands::models::Command),
    /// The cheap path's classifier: train it, explain a decision
    #[command(subcommand)]
    Triage(commands::triage::Command),
    /// Actions waiting for approval: list, approve, deny
    #[command(subcommand)]
    Approvals(commands::approvals::Command),
    /// The hash-chained audit log: verify it
    #[command(subcommand)]
    Audit(commands::audit::Command),
    /// Tasks that ran out of retries: list, show, replay
    #[command(subcommand)]
    Dlq(commands::dlq::Command),
    /// What the assistant remembers: search, add, show, pin, forget, export, import, stats
    #[command(subcommand)]
    Memory(commands::memory::Command),
    /// Measure the assistant
    #[command(subcommand)]
    Bench(benches::BenchCommand),
    /// Why this action? Every decision made for one request
    Explain(commands::explain::Args),
    /// Attack the security core: tokens, approvals, sandbox, prompt injection
    #[command(subcommand)]
    Security(commands::security::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Init(args) => commands::init::run(cli.home.as_deref(), args),
        Command::Serve(args) => commands::serve::run(cli.home.as_deref(), args),
        Command::Chat(args) => commands::chat::run(cli.home.as_deref(), args),
        Command::Status => commands::status::run(cli.home.as_deref()),
        Command::Doctor => commands::doctor::run(cli.home.as_deref()),
        Command::Pairing(command) => commands::pairing::run(cli.home.as_deref(), command),
        Command::Channels(command) => commands::channels::run(cli.home.as_deref(), command),
        Command::Models(command) => commands::models::run(cli.home.as_deref(), command),
        Command::Triage(command) => commands::triage::run(command),
        Command::Approvals(command) => commands::approvals::run(cli.home.as_deref(), command),
        Command::Audit(command) => commands::audit::run(cli.home.as_deref(), command),
        Command::Dlq(command) => commands::dlq::run(cli.home.as_deref(), command),
        Command::Memory(command) => commands::memory::run(cli.home.as_deref(), command),
        Command::Bench(bench) => benches::run(bench),
        Command::Explain(args) => commands::explain::run(cli.home.as_deref(), args),
        Command::Security(command) => commands::security::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Every crate's tables that live in the daemon's store file, migrated at open.
pub fn store_components() -> [opticlaw_store::Component; 5] {
    [
        channels::COMPONENT,
        opticlaw_security::COMPONENT,
        opticlaw_orchestrator::COMPONENT,
        opticlaw_store::Component {
            name: "models",
            migrations: opticlaw_models::accounting::MIGRATIONS,
        },
        opticlaw_planner::COMPONENT,
    ]
}

/// Logs go to stderr through `tracing`; `OPTICLAW_LOG` (or `RUST_LOG`) sets
/// the filter. Only the daemon logs at info by default.
fn init_logging(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if daemon { "info" } else { "warn" };
    let filter = std::env::var("OPTICLAW_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
