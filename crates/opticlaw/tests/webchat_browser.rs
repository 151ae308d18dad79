//! The web chat in a real browser: a real daemon on loopback, the link that
//! `opticlaw serve` prints, and headless Chromium (Debian's `chromium`)
//! driven by `tests/browser/test.mjs` through playwright-core, typing and
//! sending as a person would. Needs Node.js and Chromium: when they are
//! missing, `scripts/install-browser` installs them with apt-get, and when
//! that cannot be done the test fails saying so (it never skips).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Daemon, Home};

const CHROMIUM: &str = "/usr/bin/chromium";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn browser_dir() -> PathBuf {
    crate_dir().join("tests/browser")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Chromium, node and npm, installed by `scripts/install-browser` if missing.
fn ensure_browser_tools() {
    let present = || Path::new(CHROMIUM).exists() && on_path("node") && on_path("npm");
    if present() {
        return;
    }
    let script = crate_dir().join("../../scripts/install-browser");
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        output.status.success() && present(),
        "the web chat browser test needs Debian's `chromium` ({CHROMIUM}) and Node.js \
         (`node`, `npm`), and scripts/install-browser could not install them; run it as \
         root (or `apt-get install -y chromium nodejs npm`) and try again.\n{}",
        describe(&output)
    );
}

/// `npm ci` in tests/browser when playwright-core is not installed there.
fn ensure_node_modules() {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("running npm");
    assert!(
        output.status.success(),
        "`npm ci` in {} failed (it needs the npm registry):\n{}",
        dir.display(),
        describe(&output)
    );
}

/// Starts `opticlaw serve` and returns the daemon and the web chat link it
/// printed on stderr after the ready line on stdout.
fn serve_and_read_link(home: &Home) -> (Daemon, String) {
    let mut child = home
        .command(&["serve"])
        .env("OPTICLAW_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let daemon = Daemon {
        child,
        base: format!("http://127.0.0.1:{}", home.port),
        token: home.token(),
    };
    assert!(
        ready.starts_with("opticlaw ready on"),
        "stdout's first line: {ready:?}"
    );
    // Forward the daemon's stderr to the test's, picking out the link.
    let (found, link) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[daemon] {line}");
            if let Some(at) = line.find("http://")
                && line.contains("/chat#token=")
            {
                let url = line[at..].split_whitespace().next().unwrap_or_default();
                let _ = found.send(url.to_owned());
            }
        }
    });
    let link = link
        .recv_timeout(Duration::from_secs(10))
        .expect("`opticlaw serve` printed no web chat link (…/chat#token=…) on stderr");
    (daemon, link)
}

/// The page and its assets are served with a strict CSP and no token.
fn check_page_headers(base: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (path, kind) in [
            ("/chat", "text/html"),
            ("/chat/chat.js", "text/javascript"),
            ("/chat/chat.css", "text/css"),
        ] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            assert!(header("content-type").starts_with(kind), "{path}");
            assert!(
                header("content-security-policy").contains("script-src 'self'"),
                "{path}"
            );
            assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        }
    });
}

/// Runs `node test.mjs URL PREFIX`, killing it after `limit`.
fn run_browser_script(url: &str, prefix: &Path, limit: Duration) -> (bool, String) {
    let mut child = Command::new("node")
        .arg("test.mjs")
        .arg(url)
        .arg(prefix)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running node");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let transcript = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    match status {
        Some(status) => (
            status.success(),
            format!("node exited with {status}\n{transcript}"),
        ),
        None => (
            false,
            format!("node was killed after {limit:?}\n{transcript}"),
        ),
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|err| panic!("no screenshot at {}: {err}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000,
        "{} is not a real screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[test]
fn web_chat_in_headless_chromium_sends_and_shows_replies_and_reminders() {
    ensure_browser_tools();
    ensure_node_modules();

    let home = Home::init();
    let (daemon, link) = serve_and_read_link(&home);
    assert_eq!(
        link,
        format!("{}/chat#token={}", daemon.base, daemon.token),
        "the printed link"
    );
    check_page_headers(&daemon.base);

    // Screenshots go to OPTICLAW_SCREENSHOT_DIR when set (kept for a look),
    // else to a temporary directory removed after the test.
    let scratch = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("OPTICLAW_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("webchat");

    let (ok, transcript) = run_browser_script(&link, &prefix, Duration::from_secs(180));
    assert!(ok, "the browser test failed:\n{transcript}");
    assert!(
        transcript.contains("webchat browser test: ok"),
        "{transcript}"
    );
    assert_png(&dir.join("webchat-light.png"));
    assert_png(&dir.join("webchat-dark.png"));

    // What the browser showed is what the daemon stored.
    let replies = daemon.replies("main");
    let kinds: Vec<&str> = replies.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["reply", "reply", "reminder"], "{replies:?}");
    assert!(replies[0]["text"].as_str().unwrap().contains("remind me"));
    assert!(replies[2]["text"].as_str().unwrap().contains("stretch"));
    assert!(
        replies[..2]
            .iter()
            .all(|r| r["in_reply_to"].as_str().unwrap().starts_with("web-")),
        "the page sets its own event ids: {replies:?}"
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status}");
}
