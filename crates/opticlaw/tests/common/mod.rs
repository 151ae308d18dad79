//! A real daemon on loopback, in a temporary home, driven as a user would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_opticlaw");

pub struct Home {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Home {
    /// `opticlaw init` in a new temporary home, on a free port.
    pub fn init() -> Self {
        Self::init_in(&std::env::temp_dir())
    }

    /// `opticlaw init` in a new home under `base` (e.g. outside /tmp, which
    /// sandboxed commands see as their own private directory).
    #[allow(dead_code)]
    pub fn init_in(base: &Path) -> Self {
        std::fs::create_dir_all(base).unwrap();
        let dir = tempfile::tempdir_in(base).unwrap();
        let port = free_port();
        let home = Self { dir, port };
        let out = home.run(&["init", "--port", &port.to_string()]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_file(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.path().join("api_token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("OPTICLAW_HOME", self.path())
            .env_remove("RUST_LOG");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn serve(&self) -> Daemon {
        self.serve_with(&[])
    }

    /// Starts `opticlaw serve` and waits for its ready line.
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Daemon {
        let mut command = self.command(&["serve"]);
        command
            .env("OPTICLAW_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("ready on"), "no ready line: {line:?}");
        Daemon {
            child,
            base: format!("http://127.0.0.1:{}", self.port),
            token: self.token(),
        }
    }
}

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub token: String,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn post(&self, body: Value) -> (u16, Value) {
        self.post_raw(&body.to_string())
    }

    pub fn post_raw(&self, body: &str) -> (u16, Value) {
        let response = ureq_like::post(
            &format!("{}/v1/local/messages", self.base),
            &self.token,
            body,
        );
        (
            response.0,
            serde_json::from_str(&response.1).unwrap_or(Value::Null),
        )
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = ureq_like::get(&format!("{}{path}", self.base), &self.token);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn replies(&self, thread: &str) -> Vec<Value> {
        self.get(&format!("/v1/local/replies?thread_id={thread}&limit=1000"))["replies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls (in the test only) until `count` replies are in the thread.
    pub fn wait_for_replies(&self, thread: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let replies = self.replies(thread);
            if replies.len() >= count || Instant::now() > deadline {
                return replies;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn send(&self, thread: &str, text: &str) -> Value {
        let (status, body) = self.post(json!({ "text": text, "thread_id": thread }));
        assert_eq!(status, 202, "{body}");
        body
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `app` on a free loopback port from its own thread for up to
/// `secs` seconds (a fake platform API); returns its base URL.
pub fn serve_in_thread(app: axum::Router, secs: u64) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ =
                tokio::time::timeout(Duration::from_secs(secs), axum::serve(listener, app)).await;
        });
    });
    (base, server)
}

/// Context switches of every thread of `pid` so far: how often it woke.
pub fn context_switches(pid: i32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    total
}

/// Waits until the daemon has finished what its last work left behind (the
/// memory thread's catch-up, a lazily loaded model): the first whole second
/// in which none of its threads woke. A daemon that never goes a second
/// without waking has a heartbeat, and this fails saying so.
pub fn wait_until_quiet(pid: i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = context_switches(pid);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = context_switches(pid);
        if now == last {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never went one second without waking in 60 s ({} wake-ups in the last second)",
            now - last
        );
        last = now;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Minimal blocking HTTP for tests, over reqwest's blocking-free API run on
/// a throwaway current-thread runtime.
pub mod ureq_like {
    fn call(request: reqwest::RequestBuilder) -> (u16, String) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    }

    pub fn post(url: &str, token: &str, body: &str) -> (u16, String) {
        let client = reqwest::Client::new();
        call(
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
    }

    pub fn get(url: &str, token: &str) -> (u16, String) {
        call(reqwest::Client::new().get(url).bearer_auth(token))
    }
}

/// A granted directory outside /tmp (the sandbox gives commands a private
/// /tmp), writable by the sandbox's identity.
pub fn granted_dir() -> (tempfile::TempDir, PathBuf) {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    let grant = dir.path().canonicalize().unwrap();
    // The sandbox runs commands as its own identity (nobody when root).
    if let Ok(sandbox) = opticlaw_sandbox::NamespaceSandbox::new() {
        let (uid, gid) = sandbox.identity();
        std::os::unix::fs::chown(&grant, Some(uid), Some(gid)).unwrap();
    }
    (dir, grant)
}

pub fn configure(home: &Home, grant: &Path, policy: &[(&str, &str, u8)]) {
    let mut text = std::fs::read_to_string(home.config_file()).unwrap();
    text.push_str(&format!(
        "\n[tools]\ngranted_dirs = [{:?}]\nretry_base_ms = 20\n",
        grant.display().to_string()
    ));
    for (tool, scope, tier) in policy {
        text.push_str(&format!(
            "\n[[policy]]\ntool = {tool:?}\nscope = {scope:?}\ntier = {tier}\n"
        ));
    }
    std::fs::write(home.config_file(), text).unwrap();
}

/// Waits (polling, in the test only) for a reply in `thread` containing `needle`.
pub fn reply_containing(daemon: &Daemon, thread: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = daemon
            .replies(thread)
            .into_iter()
            .filter_map(|r| r["text"].as_str().map(str::to_owned))
            .find(|t| t.contains(needle));
        if let Some(text) = found {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no reply with {needle:?} in {thread}: {:?}",
            daemon.replies(thread)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
