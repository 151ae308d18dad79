//! What the cases run against: a real SQLite store with the security and
//! planner tables, a token minter, the namespace sandbox, canary secrets in
//! a daemon-like home, and a model server on loopback for the planner.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use opticlaw_models::replay::{ReplayServer, Trace};
use opticlaw_models::{
    ModelRouter, ModelsConfig, Protocol, ProviderConfig, Providers, Tier, TierConfig,
};
use opticlaw_sandbox::NamespaceSandbox;
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::TokenMinter;
use opticlaw_store::{Store, Synchronous};
use tempfile::TempDir;

/// The files of the daemon-like home that hold canary secrets.
pub const SECRET_FILES: [&str; 3] = ["api_token", "keys/signing.key", "config.toml"];

/// Everything the cases share.
pub struct Env {
    dir: TempDir,
    pub store: Store,
    pub minter: TokenMinter,
    /// `Err` names why the sandbox cannot run here (those cases then fail).
    pub sandbox: Result<NamespaceSandbox, String>,
    canaries: Vec<String>,
    pub runtime: tokio::runtime::Runtime,
    pub model_server: ReplayServer,
    pub router: ModelRouter,
    pub providers: Providers,
    /// The `opticlaw` binary the daemon cases start (`OPTICLAW_BIN`, or
    /// [`Env::with_daemon_binary`]); without one they fail as unset up.
    daemon_binary: Option<PathBuf>,
    daemon: std::sync::OnceLock<Result<crate::daemon::Daemon, String>>,
}

impl Env {
    /// Sets everything up in a fresh directory.
    pub fn new() -> Result<Self, String> {
        // Outside /tmp: the sandbox replaces /tmp with a private tmpfs, and
        // the secrets must be on the tree it can see to prove it cannot read them.
        let dir = tempfile::Builder::new()
            .prefix("opticlaw-attacks-")
            .tempdir_in("/var/tmp")
            .map_err(|e| format!("creating the suite's directory in /var/tmp: {e}"))?;
        let store = Store::open_with(
            &dir.path().join("suite.db"),
            Synchronous::Normal,
            &[opticlaw_security::COMPONENT, opticlaw_planner::COMPONENT],
        )
        .map_err(|e| format!("opening the suite's store: {e}"))?;
        let mut canaries = Vec::new();
        let home = dir.path().join("daemon-home");
        for file in SECRET_FILES {
            let canary = format!("OPTICLAW-CANARY-{}", uuid::Uuid::new_v4().simple());
            let path = home.join(file);
            std::fs::create_dir_all(path.parent().expect("secret files have a parent"))
                .map_err(|e| e.to_string())?;
            std::fs::write(&path, format!("{canary}\n")).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            canaries.push(canary);
        }
        // The daemon cases' canaries: outside the grant, in the daemon home.
        for _ in 0..2 {
            canaries.push(format!("OPTICLAW-CANARY-{}", uuid::Uuid::new_v4().simple()));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let model_server = runtime
            .block_on(ReplayServer::start(Trace {
                name: "attacks".into(),
                description: String::new(),
                repeat: false,
                turns: Vec::new(),
            }))
            .map_err(|e| e.to_string())?;
        let models = models_config(&model_server.base_url());
        let router = ModelRouter::new(models.clone()).map_err(|e| e.to_string())?;
        let providers = Providers::from_config(&models).map_err(|e| e.to_string())?;
        Ok(Self {
            dir,
            store,
            minter: TokenMinter::new(SigningKey::ephemeral()),
            sandbox: NamespaceSandbox::new().map_err(|e| e.to_string()),
            canaries,
            runtime,
            model_server,
            router,
            providers,
            daemon_binary: std::env::var_os("OPTICLAW_BIN").map(PathBuf::from),
            daemon: std::sync::OnceLock::new(),
        })
    }

    /// Runs the daemon cases against `binary serve`.
    pub fn with_daemon_binary(mut self, binary: PathBuf) -> Self {
        self.daemon_binary = Some(binary);
        self
    }

    /// Whether the daemon cases can run (a binary is known).
    pub fn has_daemon(&self) -> bool {
        self.daemon_binary.is_some()
    }

    /// The daemon under attack, started on first use.
    pub fn daemon(&self) -> Result<&crate::daemon::Daemon, String> {
        self.daemon
            .get_or_init(|| match &self.daemon_binary {
                Some(binary) => crate::daemon::Daemon::start(self, binary),
                None => Err(
                    "no opticlaw binary: set OPTICLAW_BIN or run `opticlaw security suite`".into(),
                ),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The canary in a file outside the daemon's granted directory.
    pub fn outside_canary(&self) -> String {
        self.canaries[SECRET_FILES.len()].clone()
    }

    /// The canary in the daemon home of the daemon cases.
    pub fn home_canary(&self) -> String {
        self.canaries[SECRET_FILES.len() + 1].clone()
    }

    /// The daemon-like home holding the canary secrets.
    pub fn daemon_home(&self) -> PathBuf {
        self.dir.path().join("daemon-home")
    }

    /// A fresh directory the sandbox user may write to by permissions, so
    /// only the sandbox's layers can stop writes beside it.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a scratch directory");
        if let Ok(sandbox) = &self.sandbox
            && nix::unistd::geteuid().is_root()
        {
            let (uid, gid) = sandbox.identity();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown scratch dir");
        }
        path
    }

    /// The suite's root directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Whether `text` holds any canary secret.
    pub fn contains_canary(&self, text: &str) -> bool {
        self.canaries.iter().any(|c| text.contains(c.as_str()))
    }
}

fn models_config(base_url: &str) -> ModelsConfig {
    ModelsConfig {
        providers: vec![ProviderConfig {
            name: "local".into(),
            protocol: Protocol::Ollama,
            base_url: base_url.into(),
            api_key_env: None,
            api_key_file: None,
            api_key_keyring: None,
            locality: None,
            timeout_ms: 5_000,
        }],
        tiers: vec![TierConfig {
            tier: Tier::LocalSmall,
            provider: "local".into(),
            model: "compromised-planner".into(),
            capability: 0.9,
            typical_latency_ms: 100,
            max_tokens: 1024,
            native_tools: true,
            temperature: 0.0,
        }],
        ..Default::default()
    }
}
