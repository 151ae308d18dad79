//! `config.toml`: parsed with serde, then checked; every error names the
//! file, the line and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use opticlaw_store::Synchronous;
use opticlaw_triage::rules::PatternRuleConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub runtime: RuntimeSection,
    pub local: LocalConfig,
    /// Language models for what no rule answers (`[models]`).
    pub models: Option<opticlaw_models::ModelsConfig>,
    /// Chat platform bridges (`[gateway.slack]`, `[gateway.telegram]`, ...).
    pub gateway: Option<opticlaw_gateway::GatewayConfig>,
    /// What the assistant remembers (`[memory]`).
    pub memory: MemorySection,
    pub rules: Vec<PatternRuleConfig>,
    /// What tools may touch (`[tools]`).
    pub tools: ToolsConfig,
    /// Trust tier per tool and scope (`[[policy]]`); anything unlisted is denied.
    pub policy: Vec<opticlaw_security::tier::PolicyRule>,
    /// How action requests are planned (`[planner]`).
    pub planner: PlannerSection,
    /// Which sandbox runs `shell` commands (`[sandbox]`).
    pub sandbox: SandboxSection,
}

/// `[sandbox]`: the runner behind the `shell` tool.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    /// `namespace` or `microvm`.
    pub runner: SandboxRunner,
    /// The microVM's kernel, modules and busybox (what
    /// `scripts/install-microvm` fills). Empty: `$OPTICLAW_MICROVM_DIR`, or
    /// `.cache/microvm` found from the working directory.
    pub microvm_dir: Option<PathBuf>,
}

/// A sandbox runner (`[sandbox] runner`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxRunner {
    /// Linux namespaces, a read-only host tree, Landlock, seccomp: milliseconds.
    #[default]
    Namespace,
    /// A QEMU microVM per command, nothing of the host visible: seconds.
    Microvm,
}

/// `[planner]`: rule-matched requests are always planned without a model;
/// a model plans other requests only when `model_plans = true` and a
/// `[models]` tier exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerSection {
    /// Let a model plan messages triage's classifier says need a tool
    /// (each such message then costs a planning call before any answer).
    pub model_plans: bool,
    /// The classifier's tool-need probability from which a model plans.
    pub tool_need: f32,
}

impl Default for PlannerSection {
    fn default() -> Self {
        Self {
            model_plans: false,
            tool_need: 0.5,
        }
    }
}

/// `[tools]`: the orchestrator's tool runners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Directories `shell`, `file.read` and `file.write` may use: absolute,
    /// existing and canonical (no symlink). Empty: tools touch no file.
    pub granted_dirs: Vec<PathBuf>,
    /// Whether a shell command that asks for the network may have it.
    pub shell_network: bool,
    /// Attempts per step before its task goes to the dead-letter queue.
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubled for each further attempt.
    pub retry_base_ms: u64,
    /// A file (mode 0600) holding the base32 TOTP seed that tier 3
    /// approvals need; without it, tier 3 actions cannot be approved.
    pub totp_secret_file: Option<PathBuf>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            granted_dirs: Vec::new(),
            shell_network: false,
            max_attempts: 3,
            retry_base_ms: 1000,
            totp_secret_file: None,
        }
    }
}

/// `[memory]`: the memory engine (`crates/memory`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemorySection {
    /// Ingest messages and replies, give the model path context, and
    /// answer `/memory`, `/remember`, `/forget`.
    pub enabled: bool,
    /// A Hugging Face-layout sentence-embedding model (config.json,
    /// tokenizer.json, model.safetensors). Empty: `.cache/models/all-MiniLM-L6-v2`
    /// found from the working directory, or `$OPTICLAW_EMBEDDING_MODEL_DIR`.
    /// Without a model, retrieval is full text + graph.
    pub embedding_model_dir: Option<PathBuf>,
    /// Most tokens of memory put in a model request's context.
    pub context_token_budget: usize,
    /// When a model is configured, session (meso) and whole-thread (macro)
    /// summaries are rewritten by it, through the router's value gate;
    /// refused or failed calls keep the extractive summary. `false`: always
    /// extractive, no model call for memory.
    pub abstractive_summaries: bool,
}

impl Default for MemorySection {
    fn default() -> Self {
        Self {
            enabled: true,
            embedding_model_dir: None,
            context_token_budget: 1_000,
            abstractive_summaries: true,
        }
    }
}

/// The tools the daemon runs, by name (what `[[policy]]` entries may name).
pub const KNOWN_TOOLS: [&str; 3] = ["shell", "file.read", "file.write"];

impl MemorySection {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.context_token_budget > 32_000 {
            return Err((
                "memory.context_token_budget".into(),
                "must be between 0 and 32000 tokens".into(),
            ));
        }
        if let Some(dir) = &self.embedding_model_dir {
            if dir.as_os_str().is_empty() {
                return Err((
                    "memory.embedding_model_dir".into(),
                    "is empty: remove the key to use the default model directory".into(),
                ));
            }
            if !dir.is_dir() {
                return Err((
                    "memory.embedding_model_dir".into(),
                    format!(
                        "{} is not a directory (run scripts/fetch-embedding-model, or remove the key: retrieval then uses full text + graph)",
                        dir.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the daemon listens; loopback unless `allow_remote`.
    pub bind: String,
    pub allow_remote: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:7420".to_owned(),
            allow_remote: false,
            max_body_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `normal` survives a crash of the process; `full` also a power cut.
    pub synchronous: Synchronous,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    pub queue_capacity: usize,
    pub workers: usize,
    pub retry_after_secs: u64,
    /// Seconds SIGTERM waits for in-flight work before exiting.
    pub shutdown_grace_secs: u64,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            workers: 4,
            retry_after_secs: 1,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Who `opticlaw chat` speaks as.
    pub user_id: String,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            user_id: "owner".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source} (run `opticlaw init` to create it)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}, line {line}, key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of_key(text, &key),
                key,
                message,
            })?;
        Ok(config)
    }

    /// The listen address (checked by `validate`).
    pub fn bind_addr(&self) -> SocketAddr {
        self.server.bind.parse().expect("validated")
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_owned(), message));
        let addr: SocketAddr = match self.server.bind.parse() {
            Ok(addr) => addr,
            Err(_) => {
                return fail(
                    "server.bind",
                    format!(
                        "\"{}\" is not an address:port such as \"127.0.0.1:7420\"",
                        self.server.bind
                    ),
                );
            }
        };
        if !addr.ip().is_loopback() && !self.server.allow_remote {
            return fail(
                "server.bind",
                format!(
                    "{} is not a loopback address; the daemon serves this machine only unless server.allow_remote = true",
                    addr.ip()
                ),
            );
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return fail(
                "server.max_body_bytes",
                "must be between 1024 and 16777216".into(),
            );
        }
        if self.runtime.queue_capacity == 0 {
            return fail("runtime.queue_capacity", "must be at least 1".into());
        }
        if !(1..=256).contains(&self.runtime.workers) {
            return fail("runtime.workers", "must be between 1 and 256".into());
        }
        if self.local.user_id.trim().is_empty() {
            return fail("local.user_id", "must not be empty".into());
        }
        if let Some(Err(err)) = self.gateway.as_ref().map(|g| g.validate()) {
            return fail("account", err.to_string());
        }
        if let Some(models) = &self.models
            && let Err(err) = opticlaw_models::ModelRouter::new(models.clone())
        {
            return fail("models", err.to_string());
        }
        if let Err((key, message)) = self.validate_tools() {
            return fail(&key, message);
        }
        if let Err((key, message)) = self.memory.validate() {
            return fail(&key, message);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if let Err(err) = regex_check(&rule.pattern) {
                return fail(&format!("rules[{index}].pattern"), err);
            }
        }
        Ok(())
    }
}

impl Config {
    /// `[tools]` and `[[policy]]`: each error names the entry at fault.
    fn validate_tools(&self) -> Result<(), (String, String)> {
        for (index, dir) in self.tools.granted_dirs.iter().enumerate() {
            if let Err(err) =
                opticlaw_orchestrator::tools::GrantedDirs::new(std::slice::from_ref(dir))
            {
                return Err((format!("tools.granted_dirs[{index}]"), err.to_string()));
            }
        }
        if !(1..=10).contains(&self.tools.max_attempts) {
            return Err((
                "tools.max_attempts".into(),
                "must be between 1 and 10".into(),
            ));
        }
        for (index, rule) in self.policy.iter().enumerate() {
            if !KNOWN_TOOLS.contains(&rule.tool.as_str()) {
                return Err((
                    format!("policy[{index}].tool"),
                    format!(
                        "unknown tool {:?}; the daemon runs {}",
                        rule.tool,
                        KNOWN_TOOLS.join(", ")
                    ),
                ));
            }
            for (h, host) in rule.hosts.iter().enumerate() {
                let key = format!("policy[{index}].hosts[{h}]");
                let parsed: opticlaw_sandbox::egress::HostRule =
                    host.parse().map_err(|err| (key.clone(), err))?;
                // Nodes name hosts in this form; one spelling matches one.
                if parsed.to_string() != *host {
                    return Err((key, format!("write {host:?} as {:?}", parsed.to_string())));
                }
            }
        }
        let policy = opticlaw_security::PolicyConfig {
            policy: self.policy.clone(),
        };
        if let Err(err) = opticlaw_security::Policy::from_config(&policy) {
            return Err(("policy".into(), err.to_string()));
        }
        Ok(())
    }
}

fn regex_check(pattern: &str) -> Result<(), String> {
    opticlaw_triage::rules::RuleEngine::with_patterns(&[PatternRuleConfig {
        name: String::new(),
        pattern: pattern.to_owned(),
        reply: String::new(),
    }])
    .map(|_| ())
    .map_err(|err| format!("invalid regular expression: {}", err.source))
}

/// The 1-based line where a dotted key (`server.bind`, `rules[2].pattern`)
/// is written, or 1 when it is absent (a default value).
fn line_of_key(text: &str, key: &str) -> usize {
    let Ok(document) = toml_edit::Document::parse(text.to_owned()) else {
        return 1;
    };
    let mut item = document.as_item();
    let mut span = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = item.get(name) else { break };
        item = next;
        if let Some(index) = index {
            let Some(element) = item.get(index) else {
                break;
            };
            item = element;
        }
        span = item.span().or(span);
    }
    span.map_or(1, |range| text[..range.start].matches('\n').count() + 1)
}

/// The file `opticlaw init` writes: every setting at its default, explained.
pub const DEFAULT_CONFIG: &str = r#"# OptiClaw configuration. `opticlaw doctor` checks it.

[server]
# Where the daemon listens. Loopback only unless allow_remote = true.
bind = "127.0.0.1:7420"
max_body_bytes = 65536

[store]
# "normal" survives a crash of the process (kill -9); "full" also survives
# a power cut, at the cost of an fsync per group commit.
synchronous = "normal"

[runtime]
queue_capacity = 1024
workers = 4
retry_after_secs = 1
shutdown_grace_secs = 10

[local]
# Who `opticlaw chat` speaks as.
user_id = "owner"

# Language models for requests the rules cannot answer (see `opticlaw models --help`):
# [[models.providers]]
# name = "ollama"
# protocol = "ollama"                 # ollama | openai_compatible | openai | anthropic
# base_url = "http://127.0.0.1:11434"
# (a cloud provider's key: api_key_env = "VAR", api_key_keyring = "NAME" or api_key_file = "PATH")
# [[models.tiers]]
# tier = "local_small"                # local_small | local_medium | cloud_primary | cloud_secondary
# provider = "ollama"
# model = "qwen2.5:1.5b"
# capability = 0.35
# typical_latency_ms = 700
# max_tokens = 512
# native_tools = true
# [models.cache]
# semantic = true                     # reuse replies to requests that mean the same (needs
#                                     # scripts/fetch-embedding-model); semantic_threshold = 0.92

# Chat platforms, one webhook route per account: /hooks/<platform>/<account>
# (`opticlaw channels add --help`). One table is the account "default";
# use [[gateway.telegram]] with `account = "..."` for several bots.
# [gateway.telegram]
# bot_token = "..."                   # see `opticlaw doctor`
# long_poll = true                    # no public URL: getUpdates instead of a webhook
# [gateway]
# upload_dirs = ["/home/me/share"]    # replies may upload local files from here only

[memory]
# Remember messages and replies, give models context, answer /memory.
enabled = true
# A sentence-embedding model directory (Hugging Face layout); without one,
# retrieval uses full text + the entity graph. Default: the directory
# scripts/fetch-embedding-model fills, or $OPTICLAW_EMBEDDING_MODEL_DIR.
# embedding_model_dir = "/path/to/all-MiniLM-L6-v2"
# Most tokens of memory added to a model request.
context_token_budget = 1000
# With a model configured, it rewrites session and thread summaries
# (through the value gate); false keeps them extractive, no model call.
abstractive_summaries = true

# Replies without any model, checked after the built-in commands:
# [[rules]]
# name = "wifi"
# pattern = "(?i)wi-?fi password"
# reply = "It's on the fridge."

# Tools the assistant may use (/run, /read and plans), each call with a
# short-lived capability token, audited (`opticlaw audit verify`):
# [tools]
# granted_dirs = ["/home/me/assistant"]   # absolute, existing, no symlinks
#   (a daemon running as root runs commands as `nobody`: make them writable by it)
# shell_network = false
# max_attempts = 3
# retry_base_ms = 1000
# totp_secret_file = "/home/me/.opticlaw/totp.secret"   # base32, mode 0600; tier 3
#
# Which sandbox runs shell commands: "namespace" (milliseconds) or "microvm"
# (each command boots its own QEMU guest: seconds; needs scripts/install-microvm;
# `opticlaw doctor` says whether it works here):
# [sandbox]
# runner = "namespace"
# microvm_dir = "/path/to/opticlaw/.cache/microvm"
#
# Trust tier per tool and scope; anything not listed is refused.
# 0 read-only, 1 low risk, 2 asks you first, 3 asks plus a TOTP code.
# [[policy]]
# tool = "file.read"
# scope = "read"
# tier = 1
# [[policy]]
# tool = "file.write"
# scope = "write"
# tier = 2
# [[policy]]
# tool = "shell"
# scope = "exec"
# tier = 2
# hosts = ["api.example.com", "127.0.0.1:8080"]   # what a command may be granted
#   (through a proxy, every connection audited; any host makes it tier 2+;
#   a name resolving to a private or loopback address needs the address)
#
# "read FILE", "run X", "save a note ..." are planned by rules, no model.
# Let a model plan other requests that need a tool (one planning call each):
# [planner]
# model_plans = false
# tool_need = 0.5
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/home/u/.opticlaw/config.toml"))
    }

    #[test]
    fn tools_and_policy_errors_name_the_entry() {
        let path = Path::new("config.toml");
        let err = Config::parse("[tools]\ngranted_dirs = [\"/no/such/dir\"]\n", path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tools.granted_dirs[0]") && err.contains("/no/such/dir"),
            "{err}"
        );
        let err = Config::parse(
            "[[policy]]\ntool = \"browser\"\nscope = \"*\"\ntier = 1\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 2, key `policy[0].tool`") && err.contains("browser"),
            "{err}"
        );
        let twice = "[[policy]]\ntool = \"shell\"\nscope = \"exec\"\ntier = 1\n".repeat(2);
        let err = Config::parse(&twice, path).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        let err = Config::parse(
            "[[policy]]\ntool = \"shell\"\nscope = \"exec\"\ntier = 7\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tier 7"), "{err}");
        for (hosts, expected) in [
            ("[\"evil.com/x\"]", "policy[0].hosts[0]"),
            (
                "[\"ok.example.com\", \"Caps.Example.com\"]",
                "caps.example.com",
            ),
        ] {
            let text = format!(
                "[[policy]]\ntool = \"shell\"\nscope = \"exec\"\ntier = 2\nhosts = {hosts}\n"
            );
            let err = Config::parse(&text, path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let ok = format!(
            "[tools]\ngranted_dirs = [{:?}]\n[[policy]]\ntool = \"shell\"\nscope = \"exec\"\ntier = 2\n",
            dir
        );
        assert!(Config::parse(&ok, path).is_ok());
    }

    #[test]
    fn default_config_is_valid() {
        let config = parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(config.bind_addr().port(), 7420);
        assert_eq!(config.store.synchronous, Synchronous::Normal);
    }

    #[test]
    fn memory_section_errors_name_the_key() {
        let err = parse("[memory]\ncontext_token_budget = 99999\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("memory.context_token_budget"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = parse("[memory]\nembedding_model_dir = \"/nonexistent/model\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/model is not a directory"),
            "{err}"
        );
        let config = parse("[memory]\nenabled = false\n").unwrap();
        assert!(!config.memory.enabled);
        assert_eq!(config.memory.context_token_budget, 1000);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[server]\nbind = \"127.0.0.1:1\"\nprot = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = parse("[runtime]\n\nworkers = \"four\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("workers"), "{err}");
    }

    #[test]
    fn invalid_value_names_file_line_and_key() {
        let err = parse("[store]\nsynchronous = \"normal\"\n[server]\nbind = \"0.0.0.0:80\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.toml, line 4, key `server.bind`"),
            "{err}"
        );
        assert!(err.contains("loopback"), "{err}");
        let err = parse("[[rules]]\nname='a'\npattern='x'\nreply='y'\n[[rules]]\nname='b'\npattern='('\nreply='z'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7, key `rules[1].pattern`"), "{err}");
    }

    #[test]
    fn unknown_model_protocol_is_refused_naming_the_line() {
        let text = "[[models.providers]]\nname = \"x\"\nprotocol = \"skynet\"\nbase_url = \"http://127.0.0.1:1\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("skynet"), "{err}");
    }
}
