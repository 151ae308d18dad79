use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config::DEFAULT_CONFIG;
use crate::home::Home;

#[derive(clap::Args, Default)]
pub struct Args {
    /// Overwrite an existing config file (the store and token are kept)
    #[arg(long)]
    force: bool,
    /// Port for the daemon to listen on (0: any free port)
    #[arg(long)]
    port: Option<u16>,
}

pub fn run(home: Option<&Path>, args: Args) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    initialize(&home, args, &mut std::io::stdout())?;
    println!("next: `opticlaw serve`, then `opticlaw chat` in another terminal");
    Ok(ExitCode::SUCCESS)
}

/// Creates whatever of the home is missing; `serve` calls it on first run.
pub fn initialize(home: &Home, args: Args, out: &mut dyn std::io::Write) -> Result<()> {
    std::fs::create_dir_all(home.data_dir())
        .with_context(|| format!("cannot create {}", home.data_dir().display()))?;
    let config_path = home.config_file();
    if config_path.exists() && !args.force {
        writeln!(
            out,
            "{} already exists (use --force to rewrite it)",
            config_path.display()
        )?;
    } else {
        let mut text = DEFAULT_CONFIG.to_owned();
        if let Some(port) = args.port {
            text = text.replace("127.0.0.1:7420", &format!("127.0.0.1:{port}"));
        }
        std::fs::write(&config_path, text)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        writeln!(out, "wrote {}", config_path.display())?;
    }
    if !home.token_file().exists() {
        home.write_new_token()?;
        writeln!(out, "wrote {} (mode 0600)", home.token_file().display())?;
    }
    // Opening the store creates it and applies the migrations.
    opticlaw_store::Store::open(&home.store_file(), Default::default())?;
    writeln!(out, "store ready at {}", home.store_file().display())?;
    Ok(())
}
