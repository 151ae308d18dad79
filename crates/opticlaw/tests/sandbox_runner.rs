//! `[sandbox] runner`: the daemon's `shell` tool in a microVM, and
//! `opticlaw doctor` on a machine without the microVM's parts.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Home, configure, granted_dir};
use serde_json::json;

fn use_microvm(home: &Home) {
    let mut text = std::fs::read_to_string(home.config_file()).unwrap();
    text.push_str("\n[sandbox]\nrunner = \"microvm\"\n");
    std::fs::write(home.config_file(), text).unwrap();
}

/// Waits (polling, in the test only) for a reply containing `needle`; a
/// microVM boot under TCG takes seconds, hence the long deadline.
fn reply_containing(daemon: &Daemon, thread: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let replies = daemon.replies(thread);
        let texts: Vec<String> = replies
            .iter()
            .filter_map(|r| r["text"].as_str().map(str::to_owned))
            .collect();
        if let Some(found) = texts.iter().find(|t| t.contains(needle)) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no reply with {needle:?}: {texts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn shell_commands_run_in_a_microvm_when_configured() {
    if let Err(why) = opticlaw_sandbox::microvm::Assets::locate() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let (_keep, grant) = granted_dir();
    let home = Home::init();
    configure(&home, &grant, &[("shell", "exec", 1)]);
    use_microvm(&home);
    let daemon = home.serve();
    let (status, body) = daemon.post(json!({
        "text": "/run uname -r > kernel.txt; cat kernel.txt",
        "thread_id": "vm",
        "user_id": "owner",
    }));
    assert_eq!(status, 202, "{body}");
    let done = reply_containing(&daemon, "vm", "Done:");
    // The guest's Debian kernel answered, not the host's.
    let guest_kernel = std::fs::read_to_string(grant.join("kernel.txt")).unwrap();
    let host_kernel = std::process::Command::new("uname")
        .arg("-r")
        .output()
        .unwrap();
    assert_ne!(
        guest_kernel.trim(),
        String::from_utf8_lossy(&host_kernel.stdout).trim(),
        "{done}"
    );
    assert!(guest_kernel.contains("-amd64"), "{guest_kernel}");
    assert!(done.contains(guest_kernel.trim()), "{done}");
}

#[test]
fn doctor_fails_when_the_microvm_runner_is_configured_but_missing() {
    let home = Home::init();
    use_microvm(&home);
    let empty = tempfile::tempdir().unwrap();
    let out = home
        .command(&["doctor"])
        .env("OPTICLAW_MICROVM_DIR", empty.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("✗ sandbox"), "{report}");
    assert!(report.contains("scripts/install-microvm"), "{report}");
}
