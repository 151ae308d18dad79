//! `opticlaw channels list|add|test|remove`: the chat accounts in the
//! `[gateway]` section of config.toml.
//!
//! `add` and `remove` edit config.toml with `toml_edit`, so comments and
//! layout are kept, and validate the result as the daemon would before
//! writing it. A platform with one account is a table (`[gateway.telegram]`,
//! the account `default`); a second account turns it into an array of
//! tables (`[[gateway.telegram]]`), each with an `account` name. `test`
//! makes one real read-only call per account that proves its credentials
//! (`opticlaw_gateway::probe`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use opticlaw_gateway::{Channel, DEFAULT_ACCOUNT, GatewayConfig, Platform};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::commands::models::write_atomically;
use crate::config::Config;
use crate::home::Home;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List chat accounts: how each receives (webhook route or long-poll) and who may talk
    List,
    /// Add a chat account to config.toml (comments are kept)
    Add(AddArgs),
    /// Prove each account's credentials with one real read-only call to its platform
    Test(TestArgs),
    /// Remove a chat account from config.toml
    Remove(RemoveArgs),
}

/// `opticlaw channels add`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    TG_TOKEN=123:abc opticlaw channels add telegram --secret-env bot_token=TG_TOKEN --set long_poll=true\n  \
    opticlaw channels add slack --account work --secret-env signing_secret=SLACK_SIGNING \\\n      \
    --secret-env bot_token=SLACK_BOT --set 'allow_from=[\"U012ABCDEF\"]'\n\n\
    Keys per platform are those of [gateway.<platform>] in the README.")]
pub struct AddArgs {
    /// slack, telegram, discord, whatsapp or matrix
    #[arg(value_parser = parse_platform)]
    platform: Platform,
    /// The account's name (its webhook route is /hooks/<platform>/<account>)
    #[arg(long, default_value = DEFAULT_ACCOUNT)]
    account: String,
    /// A setting, KEY=VALUE; VALUE is TOML (true, 50, ["*"]) or else a string
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    set: Vec<(String, String)>,
    /// A secret read from an environment variable, KEY=VAR (keeps it out of shell history)
    #[arg(long = "secret-env", value_name = "KEY=VAR", value_parser = parse_pair)]
    secret_env: Vec<(String, String)>,
    /// Replace the account if it is already configured
    #[arg(long)]
    replace: bool,
}

/// `opticlaw channels test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Accounts to probe, as platform or platform/account [default: every account]
    channels: Vec<String>,
}

/// `opticlaw channels remove`.
#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    #[arg(value_parser = parse_platform)]
    platform: Platform,
    #[arg(long, default_value = DEFAULT_ACCOUNT)]
    account: String,
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    match command {
        Command::List => list(&home),
        Command::Add(args) => edit(&home, |text| add_to(text, &args)),
        Command::Test(args) => test(&home, &args),
        Command::Remove(args) => edit(&home, |text| {
            remove_from(text, args.platform, &args.account)
        }),
    }
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    Platform::parse(&text.to_ascii_lowercase()).ok_or_else(|| {
        format!("\"{text}\" is not a platform: slack, telegram, discord, whatsapp, matrix")
    })
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("\"{text}\" is not KEY=VALUE"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}

fn gateway_of(home: &Home) -> Result<GatewayConfig> {
    Ok(Config::load(&home.config_file())?
        .gateway
        .unwrap_or_default())
}

fn list(home: &Home) -> Result<ExitCode> {
    let gateway = gateway_of(home)?;
    let accounts = gateway.accounts();
    if accounts.is_empty() {
        println!("no chat accounts; add one with `opticlaw channels add --help`");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<12} {:<44} allow_from",
        "platform", "account", "receives by"
    );
    for (channel, allow) in accounts {
        let long_poll = gateway.telegram.iter().any(|c| {
            c.long_poll && c.account == channel.account && channel.platform == Platform::Telegram
        });
        let sync = gateway.matrix.iter().any(|c| {
            c.sync && c.account == channel.account && channel.platform == Platform::Matrix
        });
        let receives = if long_poll {
            "getUpdates long-poll".to_owned()
        } else if sync {
            "/sync long-poll".to_owned()
        } else {
            format!("webhook {}", channel.route())
        };
        let allow = if allow.is_empty() {
            "(pairing only)".to_owned()
        } else {
            allow.join(", ")
        };
        println!(
            "{:<10} {:<12} {receives:<44} {allow}",
            channel.platform.as_str(),
            channel.account
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies `change` to config.toml, validates the result, writes it.
fn edit(home: &Home, change: impl FnOnce(&str) -> Result<(String, String)>) -> Result<ExitCode> {
    let path = home.config_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (run `opticlaw init` first)", path.display()))?;
    let (new_text, done) = change(&text)?;
    Config::parse(&new_text, &path)
        .context("the change would make config.toml invalid; nothing was written")?;
    write_atomically(&path, &new_text)?;
    println!("{done}; wrote {}", path.display());
    println!("restart `opticlaw serve` to apply it");
    Ok(ExitCode::SUCCESS)
}

fn account_of(table: &Table) -> &str {
    table
        .get("account")
        .and_then(Item::as_str)
        .unwrap_or(DEFAULT_ACCOUNT)
}

/// The `[gateway]` table, created (implicit, so it prints no header) if missing.
fn gateway_table(doc: &mut DocumentMut) -> Result<&mut Table> {
    let gateway = doc
        .entry("gateway")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .context("`gateway` in config.toml is not a table")?;
    Ok(gateway)
}

/// `config.toml` text with one more account; also says what was done.
fn add_to(text: &str, args: &AddArgs) -> Result<(String, String)> {
    let mut doc: DocumentMut = text.parse().context("config.toml is not valid TOML")?;
    let mut table = Table::new();
    if args.account != DEFAULT_ACCOUNT {
        table["account"] = toml_edit::value(&args.account);
    }
    for (key, raw) in &args.set {
        let value = raw
            .parse::<Value>()
            .unwrap_or_else(|_| Value::from(raw.as_str()));
        table[key.as_str()] = Item::Value(value);
    }
    for (key, var) in &args.secret_env {
        let secret = std::env::var(var)
            .with_context(|| format!("--secret-env {key}={var}: ${var} is not set"))?;
        table[key.as_str()] = toml_edit::value(secret);
    }
    let name = args.platform.as_str();
    let gateway = gateway_table(&mut doc)?;
    match gateway.remove(name) {
        None if args.account == DEFAULT_ACCOUNT => {
            gateway.insert(name, Item::Table(table));
        }
        None => {
            let mut array = ArrayOfTables::new();
            array.push(table);
            gateway.insert(name, Item::ArrayOfTables(array));
        }
        Some(Item::Table(existing)) => {
            if account_of(&existing) == args.account {
                if !args.replace {
                    bail!(
                        "{name}/{} is already configured; pass --replace to overwrite it",
                        args.account
                    );
                }
                gateway.insert(name, Item::Table(table));
            } else {
                let mut existing = existing;
                existing.set_implicit(false);
                let mut array = ArrayOfTables::new();
                array.push(existing);
                array.push(table);
                gateway.insert(name, Item::ArrayOfTables(array));
            }
        }
        Some(Item::ArrayOfTables(mut array)) => {
            let found = array.iter().position(|t| account_of(t) == args.account);
            match found {
                Some(_) if !args.replace => {
                    gateway.insert(name, Item::ArrayOfTables(array));
                    bail!(
                        "{name}/{} is already configured; pass --replace to overwrite it",
                        args.account
                    );
                }
                Some(i) => {
                    if let Some(slot) = array.get_mut(i) {
                        *slot = table;
                    }
                }
                None => array.push(table),
            }
            gateway.insert(name, Item::ArrayOfTables(array));
        }
        Some(_) => bail!("gateway.{name} in config.toml is neither a table nor an array of tables"),
    }
    let channel = Channel::new(args.platform, &args.account);
    Ok((
        doc.to_string(),
        format!("added {channel}; its webhook route is {}", channel.route()),
    ))
}

/// `config.toml` text without one account.
fn remove_from(text: &str, platform: Platform, account: &str) -> Result<(String, String)> {
    let mut doc: DocumentMut = text.parse().context("config.toml is not valid TOML")?;
    let name = platform.as_str();
    let channel = Channel::new(platform, account);
    let gateway = gateway_table(&mut doc)?;
    let removed = match gateway.get_mut(name) {
        Some(Item::Table(existing)) if account_of(existing) == account => {
            gateway.remove(name);
            true
        }
        Some(Item::ArrayOfTables(array)) => {
            let before = array.len();
            array.retain(|t| account_of(t) != account);
            let removed = array.len() < before;
            if array.is_empty() {
                gateway.remove(name);
            }
            removed
        }
        _ => false,
    };
    if !removed {
        bail!("{channel} is not configured (see `opticlaw channels list`)");
    }
    if gateway.is_empty() {
        doc.remove("gateway");
    }
    Ok((doc.to_string(), format!("removed {channel}")))
}

fn test(home: &Home, args: &TestArgs) -> Result<ExitCode> {
    let gateway = gateway_of(home)?;
    let mut wanted = Vec::new();
    for spec in &args.channels {
        let (platform, account) = spec.split_once('/').unwrap_or((spec, DEFAULT_ACCOUNT));
        let platform = parse_platform(platform).map_err(anyhow::Error::msg)?;
        wanted.push(Channel::new(platform, account));
    }
    if wanted.is_empty() {
        wanted = gateway.accounts().into_iter().map(|(c, _)| c).collect();
    }
    if wanted.is_empty() {
        bail!("no chat accounts to test; add one with `opticlaw channels add --help`");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = opticlaw_models::providers::no_idle_pool_client();
    let mut failed = 0;
    for channel in &wanted {
        let started = Instant::now();
        let result = runtime.block_on(opticlaw_gateway::probe::probe(&client, &gateway, channel));
        let ms = started.elapsed().as_millis();
        match result {
            Ok(identity) => println!("{channel}: ok, {identity} ({ms} ms)"),
            Err(err) => {
                failed += 1;
                println!("{channel}: FAILED: {err}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# my settings\n[server]\nbind = \"127.0.0.1:7420\" # keep this\n\n# Telegram, home bot\n[gateway.telegram]\nbot_token = \"1:A\"\nwebhook_secret = \"s\"\n";

    fn add_args(line: &str) -> AddArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: AddArgs,
        }
        let words = std::iter::once("add").chain(line.split_whitespace());
        Cli::try_parse_from(words).unwrap().args
    }

    #[test]
    fn a_second_account_turns_the_table_into_an_array_and_keeps_comments() {
        let args = add_args("telegram --account work --set bot_token=2:B --set long_poll=true");
        let (text, done) = add_to(CONFIG, &args).unwrap();
        assert!(
            text.contains("# my settings") && text.contains("# keep this"),
            "{text}"
        );
        assert!(text.contains("# Telegram, home bot"), "{text}");
        assert_eq!(text.matches("[[gateway.telegram]]").count(), 2, "{text}");
        assert!(done.contains("route is /hooks/telegram/work"), "{done}");
        let config = Config::parse(&text, Path::new("config.toml")).unwrap();
        let gateway = config.gateway.unwrap();
        let accounts: Vec<(&str, bool)> = gateway
            .telegram
            .iter()
            .map(|t| (t.account.as_str(), t.long_poll))
            .collect();
        assert_eq!(accounts, [("default", false), ("work", true)]);

        // And back: removing it leaves the other account.
        let (text, _) = remove_from(&text, Platform::Telegram, "work").unwrap();
        let config = Config::parse(&text, Path::new("config.toml")).unwrap();
        assert_eq!(config.gateway.unwrap().telegram.len(), 1);
        assert!(text.contains("# keep this"));
        let (text, _) = remove_from(&text, Platform::Telegram, "default").unwrap();
        assert!(!text.contains("gateway"), "{text}");
    }

    #[test]
    fn duplicates_and_unknown_accounts_are_named() {
        let err = add_to(CONFIG, &add_args("telegram --set bot_token=2:B"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("telegram/default is already configured"),
            "{err}"
        );
        let err = remove_from(CONFIG, Platform::Slack, "default")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slack/default is not configured"), "{err}");
    }

    #[test]
    fn a_missing_secret_variable_is_named() {
        let args = add_args("slack --secret-env bot_token=OPTICLAW_TEST_SURELY_UNSET_VAR");
        let err = add_to(CONFIG, &args).unwrap_err().to_string();
        assert!(
            err.contains("OPTICLAW_TEST_SURELY_UNSET_VAR is not set"),
            "{err}"
        );
    }
}
