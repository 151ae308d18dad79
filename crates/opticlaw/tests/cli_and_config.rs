mod common;

use common::Home;

#[test]
fn unknown_command_prints_help() {
    let home = Home::init();
    let out = home.run(&["frobnicate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unrecognized subcommand") && err.contains("Usage"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    let home = Home::init();
    for command in [
        "init",
        "serve",
        "chat",
        "status",
        "doctor",
        "memory",
        "bench",
        "explain",
        "security",
        "channels",
        "pairing",
        "models",
        "triage",
        "approvals",
        "audit",
        "dlq",
    ] {
        let out = home.run(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{command}"
        );
    }
}

#[test]
fn broken_config_names_file_line_and_key() {
    let home = Home::init();
    let mut text = std::fs::read_to_string(home.config_file()).unwrap();
    text = text.replace("workers = 4", "workers = 0");
    std::fs::write(home.config_file(), &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("workers")).unwrap() + 1;
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains(&format!("line {line}")), "{err}");
    assert!(err.contains("runtime.workers"), "{err}");

    // doctor reports it too, with a fix, and fails.
    let out = home.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("✗ config") && report.contains("runtime.workers"),
        "{report}"
    );
}

#[test]
fn doctor_passes_on_a_fresh_home_and_finds_a_leaky_token() {
    let home = Home::init();
    let out = home.run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("✓ store"), "{report}");
    use std::os::unix::fs::PermissionsExt;
    let token = home.path().join("api_token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(report.contains("chmod 600"), "{report}");
}

#[test]
fn doctor_names_a_taken_port() {
    let home = Home::init();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", home.port)).unwrap();
    let out = home.run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(report.contains("is taken"), "{report}");
}
