//! A real orchestrator over a real SQLite file and real granted
//! directories, with a notifier that records what the user was told.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opticlaw_orchestrator::tools::{FileRead, FileWrite, GrantedDirs, Shell, Tool};
use opticlaw_orchestrator::{BoxFuture, Notifier, Orchestrator, OrchestratorConfig, Parts, Timers};
use opticlaw_sandbox::NamespaceSandbox;
use opticlaw_security::approval::Principal;
use opticlaw_security::keys::SigningKey;
use opticlaw_security::token::TokenMinter;
use opticlaw_security::totp::Totp;
use opticlaw_security::{Policy, PolicyConfig};
use opticlaw_store::{StoreHandle, Synchronous};

#[derive(Default)]
pub struct Told(pub Mutex<Vec<(Principal, String)>>);

impl Notifier for Told {
    fn notify<'a>(&'a self, to: &'a Principal, text: String) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push((to.clone(), text));
        Box::pin(async {})
    }
}

impl Told {
    /// The first message containing `needle`. Notices follow the state
    /// change they report by a moment: polled, in tests only.
    pub async fn containing(&self, needle: &str) -> String {
        for _ in 0..500 {
            if let Some(text) = self.texts().into_iter().find(|t| t.contains(needle)) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("nobody was told {needle:?}: {:?}", self.texts());
    }

    pub fn texts(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }
}

/// The id in the approval prompt the user was sent.
pub async fn approval_id(told: &Told) -> String {
    let prompt = told.containing("Approval needed").await;
    let after = prompt.split("/approve ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().to_owned()
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub grant: PathBuf,
    pub db: PathBuf,
    pub orch: Orchestrator,
    pub told: Arc<Told>,
}

pub fn alice() -> Principal {
    Principal {
        source: "telegram".into(),
        user_id: "alice".into(),
        chat_id: "chat-1".into(),
    }
}

pub const TOTP_SEED: &[u8] = b"0123456789abcdef0123";

pub fn totp() -> Totp {
    Totp::new(TOTP_SEED.to_vec()).unwrap()
}

/// The policy used unless a test gives its own: reads tier 1, writes and
/// shell tier 1.
pub const LOW_POLICY: &str = r#"
[[policy]]
tool = "file.read"
scope = "read"
tier = 1
[[policy]]
tool = "file.write"
scope = "write"
tier = 1
[[policy]]
tool = "shell"
scope = "exec"
tier = 1
"#;

/// Test directories live outside /tmp: the sandbox gives commands a
/// private /tmp, so a grant under the host's /tmp would be hidden.
pub fn test_dir() -> tempfile::TempDir {
    start_watchdog();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

pub fn harness(policy: &str, config: OrchestratorConfig) -> Harness {
    let dir = test_dir();
    let grant = dir.path().join("work");
    std::fs::create_dir(&grant).unwrap();
    let grant = grant.canonicalize().unwrap();
    // Commands run as the sandbox's own identity when the tests run as root.
    if let Ok(sandbox) = NamespaceSandbox::new() {
        let (uid, gid) = sandbox.identity();
        std::os::unix::fs::chown(&grant, Some(uid), Some(gid)).unwrap();
    }
    let db = dir.path().join("opticlaw.db");
    let (orch, told) = open(&db, &grant, policy, config);
    Harness {
        dir,
        grant,
        db,
        orch,
        told,
    }
}

pub fn open(
    db: &Path,
    grant: &Path,
    policy: &str,
    config: OrchestratorConfig,
) -> (Orchestrator, Arc<Told>) {
    let store = StoreHandle::open_with(
        db,
        Synchronous::Normal,
        &[
            opticlaw_security::COMPONENT,
            opticlaw_orchestrator::COMPONENT,
        ],
    )
    .unwrap();
    let grants = GrantedDirs::new(&[grant.to_path_buf()]).unwrap();
    let mut tools: Vec<Arc<dyn Tool>> = vec![
        Arc::new(FileRead::new(grants.clone())),
        Arc::new(FileWrite::new(grants.clone())),
    ];
    if let Ok(sandbox) = NamespaceSandbox::new() {
        tools.push(Arc::new(
            Shell::new(Arc::new(sandbox), grants, false).auditing_egress(store.clone()),
        ));
    }
    let policy: PolicyConfig = toml::from_str(policy).unwrap();
    let told = Arc::new(Told::default());
    let orch = Orchestrator::new(Parts {
        store,
        minter: TokenMinter::new(SigningKey::load_or_create(&db.with_extension("key")).unwrap()),
        tools,
        policy: Policy::from_config(&policy).unwrap(),
        totp: Some(totp()),
        notifier: Some(told.clone()),
        timers: Timers::InProcess,
        config,
    });
    (orch, told)
}

pub fn fast_retries(max_attempts: u32) -> OrchestratorConfig {
    OrchestratorConfig {
        max_attempts,
        retry_base: Duration::from_millis(10),
        ..OrchestratorConfig::default()
    }
}

/// Every audit record's kind, in order.
pub fn audit_kinds(db: &Path) -> Vec<String> {
    let conn = opticlaw_store::rusqlite::Connection::open(db).unwrap();
    opticlaw_security::audit::records(&conn, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect()
}

pub fn sandbox_available() -> bool {
    NamespaceSandbox::new().is_ok()
}

/// A whole test binary here runs in seconds; one that passes this limit has
/// a test waiting for a state that never comes. Aborting fails the run with
/// a clear message instead of hanging CI until its own timeout.
const BINARY_TIME_LIMIT: Duration = Duration::from_secs(300);

fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            std::thread::sleep(BINARY_TIME_LIMIT);
            eprintln!(
                "test binary still running after {} s: a test is waiting for something that never happens; aborting",
                BINARY_TIME_LIMIT.as_secs()
            );
            std::process::abort();
        });
    });
}
