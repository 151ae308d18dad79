//! `opticlaw models list|add|test|usage`: the `[models]` section of
//! config.toml and what the models cost.
//!
//! `add` edits config.toml with `toml_edit`, so comments and layout are
//! kept, and validates the result as the daemon would before writing it.
//! `test` sends one tiny request straight to a tier's provider (no gate, no
//! budget) and records it in `model_usage` with reason `models test`, so
//! its tokens and cost show in `usage`. `usage` reads the store's `model_usage` table
//! (the daemon may be running; nothing is written).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use opticlaw_models::accounting::{self, UsageSummary};
use opticlaw_models::{
    ChatRequest, HttpProvider, Locality, Message, ModelError, ModelsConfig, Protocol, Provider,
    ProviderConfig, Secret, SecretSource, Tier, TierConfig, Usage, UsageRecord, providers, router,
    secret,
};
use opticlaw_store::rusqlite::{self, OpenFlags};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::config::Config;
use crate::home::Home;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List configured providers and model tiers, in fallback order
    List,
    /// Add a model tier (and its provider, if new) to config.toml
    Add(AddArgs),
    /// Send a tiny real request to each tier (or the ones named) and report latency and tokens
    Test(TestArgs),
    /// Tokens, cost and calls by day, model and reason, from the store
    Usage(UsageArgs),
}

/// `opticlaw models add`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    opticlaw models add --tier local_small --provider ollama --protocol ollama --model qwen2.5:1.5b\n  \
    opticlaw models add --tier cloud_primary --provider openai --protocol openai \\\n      \
    --api-key-env OPENAI_API_KEY --model gpt-4o --price-in 2.5 --price-out 10\n  \
    read -rs KEY && printf '%s\\n' \"$KEY\" | opticlaw models add --tier cloud_secondary \\\n      \
    --provider anthropic --protocol anthropic --api-key-keyring anthropic --key-from-stdin \\\n      \
    --model claude-sonnet-4-5 --price-in 3 --price-out 15")]
pub struct AddArgs {
    /// Rung of the fallback ladder: local_small, local_medium, cloud_primary or cloud_secondary
    #[arg(long, value_parser = parse_tier)]
    tier: Tier,
    /// Model name as the provider knows it (e.g. qwen2.5:1.5b, gpt-4o)
    #[arg(long)]
    model: String,
    /// Provider name; a new one needs --protocol (and --base-url unless the protocol has a default)
    #[arg(long)]
    provider: String,
    /// Wire protocol of a new provider: ollama, openai_compatible, openai or anthropic
    #[arg(long, value_parser = parse_protocol)]
    protocol: Option<Protocol>,
    /// Base URL of a new provider [default: the protocol's usual address]
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Environment variable holding a new provider's API key
    #[arg(long, value_name = "VAR", conflicts_with_all = ["api_key_file", "api_key_keyring"])]
    api_key_env: Option<String>,
    /// Name of the OS keyring entry holding a new provider's API key (Linux kernel keyring)
    #[arg(long, value_name = "NAME", conflicts_with = "api_key_file")]
    api_key_keyring: Option<String>,
    /// Read the API key from standard input (one line) and store it in the keyring entry of --api-key-keyring
    #[arg(long, requires = "api_key_keyring")]
    key_from_stdin: bool,
    /// File (mode 0600) holding a new provider's API key
    #[arg(long, value_name = "PATH")]
    api_key_file: Option<PathBuf>,
    /// Where a new provider runs, if not what its protocol suggests: local or cloud
    #[arg(long, value_parser = parse_locality)]
    locality: Option<Locality>,
    /// A new provider's timeout for the reply to start, in milliseconds
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Hardest task complexity (0..1) the model is trusted with [default: by tier]
    #[arg(long)]
    capability: Option<f32>,
    /// Typical time to a complete reply, in milliseconds [default: by tier]
    #[arg(long, value_name = "MS")]
    typical_latency_ms: Option<u64>,
    /// Output cap sent as max_tokens
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Sampling temperature
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// The model has no native tool calls (tools are described in the prompt)
    #[arg(long)]
    no_native_tools: bool,
    /// Price in US dollars per million input tokens (omit for a free local model)
    #[arg(long, value_name = "USD", requires = "price_out")]
    price_in: Option<f64>,
    /// Price in US dollars per million output tokens
    #[arg(long, value_name = "USD", requires = "price_in")]
    price_out: Option<f64>,
    /// Replace the tier if it is already configured
    #[arg(long)]
    replace: bool,
}

/// `opticlaw models test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Tiers to test (local_small, ...) [default: every configured tier]
    #[arg(value_parser = parse_tier)]
    tiers: Vec<Tier>,
    /// Give up on a reply after this many milliseconds [default: the provider's timeout_ms]
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
}

/// `opticlaw models usage`.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// How many days back, today included
    #[arg(long, default_value_t = 7, conflicts_with = "since")]
    days: u32,
    /// First day to show (YYYY-MM-DD, UTC) instead of --days
    #[arg(long, value_name = "DAY")]
    since: Option<String>,
    /// Print JSON lines instead of a table
    #[arg(long)]
    json: bool,
}

pub fn run(home: Option<&Path>, command: Command) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    match command {
        Command::List => list(&home),
        Command::Add(args) => add(&home, args),
        Command::Test(args) => test(&home, args),
        Command::Usage(args) => usage(&home, args),
    }
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    serde_json::from_value(serde_json::Value::from(text.replace('-', "_"))).map_err(|_| {
        format!(
            "\"{text}\" is not a tier: local_small, local_medium, cloud_primary, cloud_secondary"
        )
    })
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    serde_json::from_value(serde_json::Value::from(text.replace('-', "_"))).map_err(|_| {
        format!("\"{text}\" is not a protocol: ollama, openai_compatible, openai, anthropic")
    })
}

fn parse_locality(text: &str) -> Result<Locality, String> {
    serde_json::from_value(serde_json::Value::from(text))
        .map_err(|_| format!("\"{text}\" is not a locality: local or cloud"))
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Ollama => "ollama",
        Protocol::OpenaiCompatible => "openai_compatible",
        Protocol::Openai => "openai",
        Protocol::Anthropic => "anthropic",
    }
}

/// The usual address of a protocol's server, when it has one.
fn default_base_url(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Ollama => Some("http://127.0.0.1:11434"),
        Protocol::Openai => Some("https://api.openai.com"),
        Protocol::Anthropic => Some("https://api.anthropic.com"),
        Protocol::OpenaiCompatible => None,
    }
}

/// Defaults by rung: `(capability, typical_latency_ms)`.
fn tier_defaults(tier: Tier) -> (f32, u64) {
    match tier {
        Tier::LocalSmall => (0.35, 700),
        Tier::LocalMedium => (0.6, 1_500),
        Tier::CloudPrimary => (0.9, 3_000),
        Tier::CloudSecondary => (0.85, 3_000),
    }
}

/// The `[models]` section, or `None` when config.toml has none.
fn load_models(home: &Home) -> Result<(Config, Option<ModelsConfig>)> {
    let config = Config::load(&home.config_file())?;
    let models = config.models.clone();
    Ok((config, models))
}

/// Where a provider's key comes from, and whether it is there (never the key).
fn key_status(provider: &ProviderConfig) -> String {
    match provider.key_source() {
        Some(SecretSource::Env(var)) => match std::env::var_os(&var) {
            Some(v) if !v.is_empty() => format!("key from ${var} (set)"),
            _ => format!("key from ${var} (NOT set in this shell)"),
        },
        Some(SecretSource::Keyring(name)) => match secret::keyring_has(&name) {
            Ok(true) => format!("key from keyring entry {name} (present)"),
            Ok(false) => format!("key from keyring entry {name} (MISSING)"),
            Err(err) => format!("key from keyring entry {name} (unreadable: {err})"),
        },
        Some(SecretSource::File(path)) if path.exists() => {
            format!("key from {}", path.display())
        }
        Some(SecretSource::File(path)) => format!("key from {} (MISSING)", path.display()),
        None => "no key".to_owned(),
    }
}

fn list(home: &Home) -> Result<ExitCode> {
    let (_, models) = load_models(home)?;
    let Some(models) = models.filter(|m| !m.providers.is_empty() || !m.tiers.is_empty()) else {
        println!(
            "No models are configured in {}: messages no rule answers get a notice instead.",
            home.config_file().display()
        );
        println!(
            "Add one with `opticlaw models add --tier local_small --provider ollama --protocol ollama --model qwen2.5:1.5b`."
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!("providers:");
    for p in &models.providers {
        let locality = p.locality.unwrap_or(p.protocol.default_locality());
        println!(
            "  {:<12} {:<18} {:<32} {:<6} timeout {} ms, {}",
            p.name,
            protocol_name(p.protocol),
            p.base_url,
            match locality {
                Locality::Local => "local",
                Locality::Cloud => "cloud",
            },
            p.timeout_ms,
            key_status(p)
        );
    }
    println!("tiers (fallback order):");
    let mut tiers = models.tiers.clone();
    tiers.sort_by_key(|t| t.tier);
    if tiers.is_empty() {
        println!("  none: add one with `opticlaw models add`");
    }
    for t in &tiers {
        let price = match models.prices.get(&t.model) {
            Some(p) => format!(
                "${}/${} per Mtok in/out",
                p.input_per_mtok, p.output_per_mtok
            ),
            None => "free".to_owned(),
        };
        println!(
            "  {:<16} {:<28} capability {:.2}, ~{} ms, max {} tokens, tools {}, {price}",
            t.tier.as_str(),
            format!("{}/{}", t.provider, t.model),
            t.capability,
            t.typical_latency_ms,
            t.max_tokens,
            if t.native_tools { "native" } else { "prompted" },
        );
    }
    let cap = |c: Option<f64>| c.map_or("none".to_owned(), |usd| format!("${usd:.2}/day"));
    println!(
        "budget: per user {}, in total {}",
        cap(models.budget.per_user_daily_usd),
        cap(models.budget.daily_usd)
    );
    println!(
        "private data to cloud models: {}",
        if models.allow_private_cloud {
            "allowed"
        } else {
            "never"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The `models` table of the document, created (implicit) when absent.
fn models_table(doc: &mut DocumentMut) -> Result<&mut Table> {
    let item = doc.as_table_mut().entry("models").or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    item.as_table_mut()
        .context("`models` in config.toml is not a table; edit it by hand")
}

/// The array of tables `models.<key>`, created when absent.
fn tables<'a>(models: &'a mut Table, key: &str) -> Result<&'a mut ArrayOfTables> {
    models
        .entry(key)
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .with_context(|| {
            format!(
                "`models.{key}` in config.toml is not written as [[models.{key}]]; edit it by hand"
            )
        })
}

fn string_of<'a>(table: &'a Table, key: &str) -> Option<&'a str> {
    table.get(key).and_then(|v| v.as_str())
}

/// Applies `args` to the config text; returns the new text and what was done.
fn add_to(text: &str, args: &AddArgs) -> Result<(String, Vec<String>)> {
    let mut doc: DocumentMut = text.parse().context("config.toml is not valid TOML")?;
    let mut done = Vec::new();
    let models = models_table(&mut doc)?;

    // The provider: reuse one of that name, or add it.
    let providers = tables(models, "providers")?;
    let existing = providers
        .iter()
        .find(|t| string_of(t, "name") == Some(args.provider.as_str()));
    match existing {
        Some(table) => {
            let protocol = string_of(table, "protocol").unwrap_or("?");
            if let Some(wanted) = args.protocol
                && protocol_name(wanted) != protocol
            {
                bail!(
                    "provider `{}` is already configured with protocol {protocol}; omit --protocol or pick another --provider name",
                    args.provider
                );
            }
            if let Some(url) = &args.base_url
                && string_of(table, "base_url") != Some(url.as_str())
            {
                bail!(
                    "provider `{}` is already configured with base_url {}; omit --base-url or pick another --provider name",
                    args.provider,
                    string_of(table, "base_url").unwrap_or("?")
                );
            }
        }
        None => {
            let Some(protocol) = args.protocol else {
                bail!(
                    "provider `{}` is new: say which --protocol it speaks (ollama, openai_compatible, openai, anthropic)",
                    args.provider
                );
            };
            let base_url = match (&args.base_url, default_base_url(protocol)) {
                (Some(url), _) => url.clone(),
                (None, Some(url)) => url.to_owned(),
                (None, None) => bail!(
                    "provider `{}` speaks {} and has no usual address: give --base-url (e.g. http://127.0.0.1:8080)",
                    args.provider,
                    protocol_name(protocol)
                ),
            };
            let mut table = Table::new();
            table.insert("name", value(args.provider.as_str()));
            table.insert("protocol", value(protocol_name(protocol)));
            table.insert("base_url", value(base_url.as_str()));
            if let Some(var) = &args.api_key_env {
                table.insert("api_key_env", value(var.as_str()));
            }
            if let Some(name) = &args.api_key_keyring {
                table.insert("api_key_keyring", value(name.as_str()));
            }
            if let Some(path) = &args.api_key_file {
                table.insert("api_key_file", value(path.display().to_string()));
            }
            if let Some(locality) = args.locality {
                table.insert(
                    "locality",
                    value(match locality {
                        Locality::Local => "local",
                        Locality::Cloud => "cloud",
                    }),
                );
            }
            if let Some(ms) = args.timeout_ms {
                table.insert("timeout_ms", value(ms as i64));
            }
            providers.push(table);
            done.push(format!(
                "added provider `{}` ({} at {base_url})",
                args.provider,
                protocol_name(protocol)
            ));
        }
    }

    // The tier.
    let (capability, latency) = tier_defaults(args.tier);
    let mut tier = Table::new();
    tier.insert("tier", value(args.tier.as_str()));
    tier.insert("provider", value(args.provider.as_str()));
    tier.insert("model", value(args.model.as_str()));
    tier.insert(
        "capability",
        value(round2(args.capability.unwrap_or(capability))),
    );
    tier.insert(
        "typical_latency_ms",
        value(args.typical_latency_ms.unwrap_or(latency) as i64),
    );
    tier.insert("max_tokens", value(i64::from(args.max_tokens)));
    tier.insert("native_tools", value(!args.no_native_tools));
    tier.insert("temperature", value(round2(args.temperature)));
    let tiers = tables(models, "tiers")?;
    let at = tiers
        .iter()
        .position(|t| string_of(t, "tier") == Some(args.tier.as_str()));
    match at {
        Some(index) if args.replace => {
            *tiers.get_mut(index).expect("found above") = tier;
            done.push(format!(
                "replaced tier {} with {}/{}",
                args.tier.as_str(),
                args.provider,
                args.model
            ));
        }
        Some(index) => {
            let old = tiers.get(index).expect("found above");
            bail!(
                "tier {} is already configured ({}/{}); add --replace to replace it",
                args.tier.as_str(),
                string_of(old, "provider").unwrap_or("?"),
                string_of(old, "model").unwrap_or("?")
            );
        }
        None => {
            tiers.push(tier);
            done.push(format!(
                "added tier {} ({}/{})",
                args.tier.as_str(),
                args.provider,
                args.model
            ));
        }
    }

    // Its price, if it has one.
    if let (Some(input), Some(output)) = (args.price_in, args.price_out) {
        let prices = models
            .entry("prices")
            .or_insert_with(|| {
                let mut table = Table::new();
                table.set_implicit(true);
                Item::Table(table)
            })
            .as_table_mut()
            .context("`models.prices` in config.toml is not a table; edit it by hand")?;
        let mut price = Table::new();
        price.insert("input_per_mtok", value(input));
        price.insert("output_per_mtok", value(output));
        prices.insert(&args.model, Item::Table(price));
        done.push(format!(
            "priced {} at ${input}/${output} per million tokens in/out",
            args.model
        ));
    }
    Ok((doc.to_string(), done))
}

/// Two decimals, so `0.35` is not written as `0.3499999940395355`.
fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

/// What `add` checks beyond what the daemon's config validation does.
fn check_models(models: &ModelsConfig) -> Result<()> {
    for (index, t) in models.tiers.iter().enumerate() {
        if !(0.0..=1.0).contains(&t.capability) {
            bail!(
                "models.tiers[{index}].capability: {} is not between 0 and 1",
                t.capability
            );
        }
        if t.max_tokens == 0 {
            bail!("models.tiers[{index}].max_tokens: must be at least 1");
        }
    }
    for (index, p) in models.providers.iter().enumerate() {
        if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
            bail!(
                "models.providers[{index}].base_url: \"{}\" must start with http:// or https://",
                p.base_url
            );
        }
    }
    Ok(())
}

fn add(home: &Home, args: AddArgs) -> Result<ExitCode> {
    let path = home.config_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (run `opticlaw init` first)", path.display()))?;
    let (new_text, done) = add_to(&text, &args)?;
    // Validate as the daemon will, before anything is written.
    let config = Config::parse(&new_text, &path)
        .context("the change would make config.toml invalid; nothing was written")?;
    let models = config.models.unwrap_or_default();
    check_models(&models).context("nothing was written")?;
    if args.key_from_stdin {
        let name = args.api_key_keyring.as_deref().unwrap_or_default();
        let key = read_key_from_stdin()?;
        secret::store_in_keyring(name, &key)
            .context("storing the key in the OS keyring; nothing was written")?;
        println!("stored the key in the OS keyring as entry {name}");
    }
    write_atomically(&path, &new_text)?;
    for line in &done {
        println!("{line}");
    }
    println!("wrote {}", path.display());
    if let Some(provider) = models.providers.iter().find(|p| p.name == args.provider) {
        if provider.key_source().is_some() {
            println!("{}", key_status(provider));
        }
        if provider.base_url.starts_with("https://") {
            println!(
                "note: this build speaks plain HTTP; an https:// provider needs opticlaw built with opticlaw-models' `tls` feature"
            );
        }
    }
    println!(
        "next: `opticlaw models test {}`, then restart `opticlaw serve`",
        args.tier.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of standard input, as a secret (the line is never echoed).
fn read_key_from_stdin() -> Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the key from standard input")?;
    let key = Secret::new(line.trim());
    if key.expose().is_empty() {
        bail!("--key-from-stdin: standard input held no key; nothing was written");
    }
    Ok(key)
}

/// Writes `text` to a sibling temporary file with `path`'s permissions, then
/// renames it over `path`: a crash leaves the old or the new file, whole.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(text.as_bytes())?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(file.path(), meta.permissions())?;
    }
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// What a test request asks: one short word, a few tokens.
fn test_request() -> ChatRequest {
    ChatRequest {
        model: String::new(),
        messages: vec![
            Message::system("You are a connectivity check. Reply with one word."),
            Message::user("Say OK."),
        ],
        tools: Vec::new(),
        max_tokens: 16,
        temperature: 0.0,
        stream: true,
    }
}

fn test(home: &Home, args: TestArgs) -> Result<ExitCode> {
    let (config, models) = load_models(home)?;
    let models = models.unwrap_or_default();
    if models.tiers.is_empty() {
        bail!(
            "no model tiers are configured in {}; add one with `opticlaw models add`",
            home.config_file().display()
        );
    }
    let mut tiers: Vec<TierConfig> = models
        .tiers
        .iter()
        .filter(|t| args.tiers.is_empty() || args.tiers.contains(&t.tier))
        .cloned()
        .collect();
    tiers.sort_by_key(|t| t.tier);
    for wanted in &args.tiers {
        if !tiers.iter().any(|t| t.tier == *wanted) {
            bail!(
                "tier {} is not configured; see `opticlaw models list`",
                wanted.as_str()
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = opticlaw_store::Store::open_with(
        &home.store_file(),
        config.store.synchronous,
        &crate::store_components(),
    )
    .context("opening the store to record the test calls")?;
    let mut failed = 0;
    for tier in &tiers {
        let label = format!("{} {}/{}", tier.tier.as_str(), tier.provider, tier.model);
        let started = Instant::now();
        let result = runtime.block_on(test_tier(&models, tier, args.timeout_ms));
        let record = test_usage(tier, &result, started.elapsed().as_millis() as u64);
        if let Err(err) = accounting::record_usage(store.connection(), &record) {
            eprintln!("warning: recording the test call of {label} in model_usage failed: {err}");
        }
        match result {
            Ok(done) => println!("{label}: ok, {}", done.report),
            Err(err) => {
                failed += 1;
                println!("{label}: FAILED: {err:#}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What one test call produced.
struct TestCall {
    usage: Usage,
    cost_usd: f64,
    /// Latency, tokens, cost and the start of the reply, for the user.
    report: String,
}

/// The `model_usage` row of one test call, failed or not (a failed call
/// may still have cost the provider's time; its tokens are unknown: 0).
fn test_usage(tier: &TierConfig, result: &Result<TestCall>, latency_ms: u64) -> UsageRecord {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let (usage, cost_usd, outcome) = match result {
        Ok(done) => (done.usage, done.cost_usd, "ok"),
        Err(err) => (
            Usage::default(),
            0.0,
            err.downcast_ref::<ModelError>()
                .map_or("error", ModelError::kind),
        ),
    };
    UsageRecord {
        at_ms,
        day: router::day_string(at_ms),
        task_id: format!("models-test-{at_ms}"),
        user_id: "cli".to_owned(),
        domain: "test".to_owned(),
        provider: tier.provider.clone(),
        model: tier.model.clone(),
        tier: tier.tier.as_str().to_owned(),
        reason: "models test".to_owned(),
        outcome: outcome.to_owned(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost_usd,
        latency_ms,
    }
}

/// One request to one tier's provider: latency, tokens, cost and the reply.
async fn test_tier(
    models: &ModelsConfig,
    tier: &TierConfig,
    timeout: Option<u64>,
) -> Result<TestCall> {
    let mut config = models
        .providers
        .iter()
        .find(|p| p.name == tier.provider)
        .cloned()
        .with_context(|| format!("provider `{}` is not configured", tier.provider))?;
    if let Some(ms) = timeout {
        config.timeout_ms = ms;
    }
    let provider = HttpProvider::from_config(&config)?;
    let mut request = test_request();
    request.model = tier.model.clone();
    request.max_tokens = request.max_tokens.min(tier.max_tokens.max(1));
    let started = Instant::now();
    let response = providers::collect(provider.name(), provider.stream(&request).await?).await?;
    let latency = started.elapsed().as_millis();
    let usage = response.usage;
    let cost = models
        .prices
        .get(&tier.model)
        .map_or(0.0, |p| p.cost(usage.input_tokens, usage.output_tokens));
    let mut reply: String = response.text.trim().chars().take(60).collect();
    if reply.len() < response.text.trim().len() {
        reply.push('…');
    }
    Ok(TestCall {
        usage,
        cost_usd: cost,
        report: format!(
            "{latency} ms, {} tokens in, {} out, ${cost:.6}: {reply:?}",
            usage.input_tokens, usage.output_tokens
        ),
    })
}

fn usage(home: &Home, args: UsageArgs) -> Result<ExitCode> {
    let since = match &args.since {
        Some(day) => {
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .with_context(|| format!("--since {day}: not a date like 2026-01-31"))?;
            day.clone()
        }
        None => {
            let first = chrono::Utc::now().date_naive()
                - chrono::Days::new(u64::from(args.days.max(1) - 1));
            first.format("%Y-%m-%d").to_string()
        }
    };
    let rows = read_usage(&home.store_file(), &since)?;
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("No model calls recorded since {since} (UTC).");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", usage_table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// The usage rows from `since` on. Opens the store without creating or
/// migrating it, so a running daemon is not disturbed.
fn read_usage(store: &Path, since: &str) -> Result<Vec<UsageSummary>> {
    if !store.exists() {
        bail!(
            "no store at {} yet (run `opticlaw init` or `opticlaw serve`)",
            store.display()
        );
    }
    let conn = rusqlite::Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the store at {}", store.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_usage')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(Vec::new());
    }
    accounting::usage_summary(&conn, since).context("reading model usage from the store")
}

fn usage_table(rows: &[UsageSummary]) -> String {
    let mut out = format!(
        "{:<10}  {:<24} {:<36} {:>6} {:>10} {:>10} {:>10}\n",
        "day", "model", "reason", "calls", "tokens_in", "tokens_out", "cost_usd"
    );
    let (mut calls, mut input, mut output, mut cost) = (0, 0, 0, 0.0);
    for r in rows {
        out.push_str(&format!(
            "{:<10}  {:<24} {:<36} {:>6} {:>10} {:>10} {:>10.4}\n",
            r.day, r.model, r.reason, r.calls, r.input_tokens, r.output_tokens, r.cost_usd
        ));
        calls += r.calls;
        input += r.input_tokens;
        output += r.output_tokens;
        cost += r.cost_usd;
    }
    out.push_str(&format!(
        "{:<10}  {:<24} {:<36} {:>6} {:>10} {:>10} {:>10.4}\n",
        "total", "", "", calls, input, output, cost
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn add_args(line: &str) -> AddArgs {
        let argv = std::iter::once("x").chain(line.split_whitespace());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Add(args) => args,
            _ => unreachable!(),
        }
    }

    const BASE: &str = "# my config\n[server]\nbind = \"127.0.0.1:7420\" # keep me\n";

    #[test]
    fn add_keeps_comments_and_yields_a_valid_models_section() {
        let args = add_args(
            "add --tier local_small --provider ollama --protocol ollama --model qwen2.5:1.5b",
        );
        let (text, done) = add_to(BASE, &args).unwrap();
        assert!(text.starts_with(BASE), "{text}");
        assert_eq!(done.len(), 2, "{done:?}");
        let config = Config::parse(&text, Path::new("config.toml")).unwrap();
        let models = config.models.unwrap();
        assert_eq!(models.providers[0].base_url, "http://127.0.0.1:11434");
        assert_eq!(models.tiers[0].tier, Tier::LocalSmall);
        assert_eq!(models.tiers[0].capability, 0.35);

        // A second tier on a new cloud provider, priced.
        let args = add_args(
            "add --tier cloud_primary --provider openai --protocol openai --api-key-env OPENAI_API_KEY --model gpt-4o --price-in 2.5 --price-out 10",
        );
        let (text, _) = add_to(&text, &args).unwrap();
        let models = Config::parse(&text, Path::new("config.toml"))
            .unwrap()
            .models
            .unwrap();
        assert_eq!(models.providers.len(), 2);
        assert_eq!(models.tiers.len(), 2);
        assert_eq!(models.prices["gpt-4o"].output_per_mtok, 10.0);
        assert!(text.contains("# keep me"));
    }

    #[test]
    fn add_refuses_duplicates_and_missing_facts() {
        let args = add_args("add --tier local_small --provider ollama --protocol ollama --model a");
        let (text, _) = add_to(BASE, &args).unwrap();
        let again = add_args("add --tier local_small --provider ollama --model b");
        let err = add_to(&text, &again).unwrap_err().to_string();
        assert!(err.contains("--replace"), "{err}");
        let replace = add_args("add --tier local_small --provider ollama --model b --replace");
        let (text, _) = add_to(&text, &replace).unwrap();
        let models = Config::parse(&text, Path::new("c"))
            .unwrap()
            .models
            .unwrap();
        assert_eq!(models.tiers.len(), 1);
        assert_eq!(models.tiers[0].model, "b");

        let new = add_args("add --tier local_medium --provider vllm --model m");
        let err = add_to(BASE, &new).unwrap_err().to_string();
        assert!(err.contains("--protocol"), "{err}");
        let new = add_args(
            "add --tier local_medium --provider vllm --protocol openai_compatible --model m",
        );
        let err = add_to(BASE, &new).unwrap_err().to_string();
        assert!(err.contains("--base-url"), "{err}");
        let clash =
            add_args("add --tier local_medium --provider ollama --protocol anthropic --model m");
        let err = add_to(&text, &clash).unwrap_err().to_string();
        assert!(
            err.contains("already configured with protocol ollama"),
            "{err}"
        );
    }

    #[test]
    fn usage_table_totals_every_column() {
        let row = |model: &str, calls, cost| UsageSummary {
            day: "2026-01-01".into(),
            model: model.into(),
            reason: "selected".into(),
            calls,
            input_tokens: 10 * calls,
            output_tokens: calls,
            cost_usd: cost,
        };
        let table = usage_table(&[row("a", 2, 0.5), row("b", 3, 0.25)]);
        let total = table.lines().last().unwrap();
        assert!(total.starts_with("total"), "{table}");
        let cells: Vec<&str> = total.split_whitespace().collect();
        assert_eq!(cells, ["total", "5", "50", "5", "0.7500"], "{table}");
    }
}
