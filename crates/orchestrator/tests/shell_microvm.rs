//! The `shell` tool on the microVM runner: the same tool, another
//! `Sandbox`. Skips (and says so) without `scripts/install-microvm`.

use std::sync::Arc;
use std::time::Duration;

use opticlaw_orchestrator::tools::{GrantedDirs, Shell, Tool, ToolCall, ToolError};
use opticlaw_sandbox::microvm::MicroVmSandbox;
use serde_json::json;

#[test]
fn shell_commands_run_in_a_microvm_with_only_the_grant_writable() {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("microvm-cache");
    let vm = match MicroVmSandbox::new(cache) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!(
                "SKIPPED: the microVM runner is unavailable ({e}); run scripts/install-microvm"
            );
            return;
        }
    };
    let granted = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = vm.identity();
        std::os::unix::fs::chown(granted.path(), Some(uid), Some(gid)).unwrap();
    }
    let grants = GrantedDirs::new(&[granted.path().to_path_buf()]).unwrap();
    let shell = Shell::new(Arc::new(vm), grants, false);
    let call = |args: &serde_json::Value| {
        shell.run(&ToolCall {
            token: "unused-by-the-runner",
            args,
            key: "key-1",
            resumed: false,
            timeout: Duration::from_secs(120),
        })
    };

    let args = json!({"command": "echo $OPTICLAW_IDEMPOTENCY_KEY > note.txt; pwd; cat /etc/hostname 2>&1 | head -1"});
    let result = call(&args).unwrap();
    let stdout = result["stdout"].as_str().unwrap();
    assert!(
        stdout.starts_with(&format!("{}\n", granted.path().display())),
        "{result}"
    );
    assert_eq!(
        std::fs::read_to_string(granted.path().join("note.txt")).unwrap(),
        "key-1\n"
    );

    let failing = call(&json!({"command": "echo no >&2; exit 4"})).unwrap_err();
    assert!(
        matches!(&failing, ToolError::Failed(m) if m.contains("Exited(4)") && m.contains("no")),
        "{failing}"
    );

    let refused = call(&json!({"command": "true", "network": true})).unwrap_err();
    assert!(matches!(refused, ToolError::Refused(_)), "{refused}");
}
