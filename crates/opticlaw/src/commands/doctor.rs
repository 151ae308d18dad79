//! `opticlaw doctor`: every check says what it found and, when it fails,
//! the one thing to do about it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use opticlaw_store::{Store, ops};

use crate::client::Client;
use crate::config::Config;
use crate::home::Home;

enum Verdict {
    Ok(String),
    Warn(String, String),
    Fail(String, String),
}

pub fn run(home: Option<&Path>) -> Result<ExitCode> {
    let home = Home::locate(home)?;
    let mut verdicts = Vec::new();
    let mut push = |name: &str, verdict: Verdict| verdicts.push((name.to_owned(), verdict));

    push("home", check_home(&home));
    let config = match Config::load(&home.config_file()) {
        Ok(config) => {
            push(
                "config",
                Verdict::Ok(format!("{} is valid", home.config_file().display())),
            );
            Some(config)
        }
        Err(err) => {
            push(
                "config",
                Verdict::Fail(
                    format!("{err}"),
                    "fix that line, or run `opticlaw init --force` to start over".into(),
                ),
            );
            None
        }
    };
    push("token", check_token(&home));
    push("store", check_store(&home, config.as_ref()));
    if let Some(config) = &config {
        push("port", check_port(&home, config));
        push("model", check_model(config));
        push("memory", check_memory(config));
        push("sandbox", check_sandbox(config));
    }

    let mut failed = false;
    for (name, verdict) in &verdicts {
        match verdict {
            Verdict::Ok(found) => println!("✓ {name:<7} {found}"),
            Verdict::Warn(found, fix) => println!("! {name:<7} {found}\n          → {fix}"),
            Verdict::Fail(found, fix) => {
                failed = true;
                println!("✗ {name:<7} {found}\n          → {fix}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check_home(home: &Home) -> Verdict {
    let probe = home.data_dir().join(".doctor-probe");
    match std::fs::write(&probe, b"ok") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Verdict::Ok(format!("{} is writable", home.root.display()))
        }
        Err(err) => Verdict::Fail(
            format!("cannot write in {}: {err}", home.data_dir().display()),
            "run `opticlaw init` (or set OPTICLAW_HOME to a writable directory)".into(),
        ),
    }
}

fn check_token(home: &Home) -> Verdict {
    let path = home.token_file();
    let Ok(meta) = std::fs::metadata(&path) else {
        return Verdict::Fail(
            format!("no API token at {}", path.display()),
            "run `opticlaw init`".into(),
        );
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Verdict::Fail(
                format!("{} is readable by others (mode {mode:o})", path.display()),
                format!("chmod 600 {}", path.display()),
            );
        }
    }
    let _ = meta;
    Verdict::Ok(format!("{} is private", path.display()))
}

fn check_store(home: &Home, config: Option<&Config>) -> Verdict {
    let path = home.store_file();
    if !path.exists() {
        return Verdict::Fail(
            format!("no store at {}", path.display()),
            "run `opticlaw init`".into(),
        );
    }
    let sync = config.map(|c| c.store.synchronous).unwrap_or_default();
    let store = match Store::open(&path, sync) {
        Ok(store) => store,
        Err(err) => {
            return Verdict::Fail(
                err.to_string(),
                "move the file aside and run `opticlaw init` to start a new store".into(),
            );
        }
    };
    let check: Result<String, _> = store
        .connection()
        .query_row("PRAGMA quick_check", [], |row| row.get(0));
    match (check, ops::stats(store.connection())) {
        (Ok(result), Ok(stats)) if result == "ok" => Verdict::Ok(format!(
            "{} is healthy (schema v{}, {} events, {} pending reminders)",
            path.display(),
            stats.schema_version,
            stats.events_total,
            stats.deferred_pending
        )),
        (Ok(result), _) => Verdict::Fail(
            format!("{} failed its integrity check: {result}", path.display()),
            "restore it from a backup, or move it aside and run `opticlaw init`".into(),
        ),
        (Err(err), _) => Verdict::Fail(
            format!("cannot check {}: {err}", path.display()),
            "see the error above".into(),
        ),
    }
}

fn check_port(home: &Home, config: &Config) -> Verdict {
    let addr = config.bind_addr();
    let running = Client::for_home(home).ok().is_some_and(|client| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(client.healthy()))
            .unwrap_or(false)
    });
    if running {
        return Verdict::Ok(format!("the daemon is running on {addr}"));
    }
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Verdict::Ok(format!("{addr} is free for `opticlaw serve`")),
        Err(err) => Verdict::Fail(
            format!("{addr} is taken by another program: {err}"),
            "set another port in server.bind, or stop the program using it".into(),
        ),
    }
}

/// Memory works without an embedding model (full text + graph); say so.
fn check_memory(config: &Config) -> Verdict {
    use opticlaw_memory::embed::{MODEL_FILES, find_model_dir};
    if !config.memory.enabled {
        return Verdict::Ok("disabled ([memory] enabled = false)".into());
    }
    const FETCH: &str =
        "run scripts/fetch-embedding-model in the repository, or set [memory] embedding_model_dir";
    if !cfg!(feature = "embeddings") {
        return Verdict::Warn(
            "this build has no in-process embeddings: memory search uses full text + graph".into(),
            "build with `--features embeddings` for semantic search".into(),
        );
    }
    let Some(dir) = config
        .memory
        .embedding_model_dir
        .clone()
        .or_else(find_model_dir)
    else {
        return Verdict::Warn(
            "no embedding model found: memory still works with full text + graph, without semantic matches".into(),
            FETCH.into(),
        );
    };
    let missing: Vec<&str> = MODEL_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Verdict::Ok(format!(
            "full text + graph + embeddings ({}), context up to {} tokens",
            dir.display(),
            config.memory.context_token_budget
        ))
    } else {
        Verdict::Warn(
            format!(
                "the embedding model at {} lacks {}: memory uses full text + graph only",
                dir.display(),
                missing.join(", ")
            ),
            FETCH.into(),
        )
    }
}

/// Whether the configured runner can start, and whether the microVM
/// runner could (QEMU, guest kernel, KVM or not).
fn check_sandbox(config: &Config) -> Verdict {
    use crate::config::SandboxRunner;
    use crate::sandbox_runner::microvm_summary;
    const INSTALL: &str =
        "run scripts/install-microvm in the repository, or set [sandbox] runner = \"namespace\"";
    let microvm = microvm_summary(&config.sandbox);
    match (config.sandbox.runner, microvm) {
        (SandboxRunner::Microvm, Ok(found)) => Verdict::Ok(format!("microvm runner: {found}")),
        (SandboxRunner::Microvm, Err(why)) => Verdict::Fail(
            format!("microvm runner configured but unavailable: {why}; the shell tool is off"),
            INSTALL.into(),
        ),
        (SandboxRunner::Namespace, microvm) => {
            let microvm = match microvm {
                Ok(found) => format!("microVM runner {found}"),
                Err(why) => format!("microVM runner unavailable: {why}"),
            };
            match opticlaw_sandbox::NamespaceSandbox::new() {
                Ok(_) => Verdict::Ok(format!("namespace runner works; {microvm}")),
                Err(err) => Verdict::Warn(
                    format!(
                        "namespace runner unavailable ({err}): the shell tool is off; {microvm}"
                    ),
                    "enable unprivileged user namespaces, or use [sandbox] runner = \"microvm\""
                        .into(),
                ),
            }
        }
    }
}

fn check_model(config: &Config) -> Verdict {
    match &config.models {
        Some(models) if !models.tiers.is_empty() => Verdict::Ok(format!(
            "{} model tier(s) on {} provider(s); try one with `opticlaw models test`",
            models.tiers.len(),
            models.providers.len()
        )),
        _ => Verdict::Warn(
            "no language model configured: commands, reminders and rules work; other requests get a notice".into(),
            "add [[models.providers]] and [[models.tiers]] to config.toml (see the commented example there)".into(),
        ),
    }
}
