//! `opticlaw security suite`: runs every attack case of
//! `opticlaw-security-suite` and prints one line per case, then the tally
//! as the last line: `attacks=N unauthorized=U leaked=L`.

use std::process::ExitCode;

use anyhow::{Result, anyhow};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run every attack case; exit 1 if any ran or leaked a secret
    Suite {
        /// Only cases whose id contains this text
        #[arg(long)]
        filter: Option<String>,
    },
}

pub fn run(command: Command) -> Result<ExitCode> {
    let Command::Suite { filter } = command;
    let env = opticlaw_security_suite::Env::new()
        .map_err(|e| anyhow!("setting up the attack suite: {e}"))?;
    // The daemon cases attack a real `opticlaw serve` of this very binary.
    let env = match std::env::current_exe() {
        Ok(binary) => env.with_daemon_binary(binary),
        Err(_) => env,
    };
    let cases: Vec<_> = opticlaw_security_suite::all_cases()
        .into_iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.id.contains(f)))
        .collect();
    let (_, tally) = opticlaw_security_suite::run(&env, &cases, |result| {
        let verdict = match (result.outcome.ran, result.outcome.leaked) {
            (false, false) => "stopped",
            (true, false) => "RAN",
            (false, true) => "LEAKED",
            (true, true) => "RAN+LEAKED",
        };
        println!(
            "{verdict:<10} {:<9} {}  {}",
            result.family.as_str(),
            result.id,
            result.outcome.detail
        );
    });
    println!("{tally}");
    Ok(if tally.unauthorized == 0 && tally.leaked == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
