//! `opticlaw security suite` prints one line per case and the tally as its
//! last, machine-readable line (the whole suite runs in
//! `crates/security-suite/tests/suite.rs`; here a slice of it).

mod common;

use common::Home;

/// `opticlaw security suite --filter=FILTER`'s stdout, after it succeeded.
fn suite(filter: &str) -> String {
    let home = Home::init();
    let out = home.run(&["security", "suite", &format!("--filter={filter}")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn security_suite_prints_the_tally_last() {
    let text = suite("-wrongaudience");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "five token grants, then the tally: {text}");
    assert!(
        lines[..5]
            .iter()
            .all(|l| l.starts_with("stopped") && l.contains("is for runner")),
        "{text}"
    );
    assert_eq!(lines[5], "attacks=5 unauthorized=0 leaked=0");
}

#[test]
fn daemon_attacks_through_a_real_daemon_are_all_stopped() {
    let text = suite("daemon-");
    let lines: Vec<&str> = text.lines().collect();
    let cases = opticlaw_security_suite::daemon::cases().len();
    assert!(cases >= 40, "{cases}");
    assert_eq!(lines.len(), cases + 1, "{text}");
    assert!(
        lines[..cases]
            .iter()
            .all(|l| l.starts_with("stopped") && l.contains(" daemon ")),
        "{text}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        format!("attacks={cases} unauthorized=0 leaked=0")
    );
}
