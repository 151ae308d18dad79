//! The whole attack table runs against real parts: at least 150 attacks,
//! none ran, no secret leaked.

#[test]
fn every_attack_is_stopped_and_nothing_leaks() {
    let env = opticlaw_security_suite::Env::new().expect("setting up the suite");
    // The daemon family needs the opticlaw binary (OPTICLAW_BIN); without
    // it, `opticlaw security suite` runs it (see the binary's tests).
    let cases: Vec<_> = opticlaw_security_suite::all_cases()
        .into_iter()
        .filter(|c| env.has_daemon() || c.family != opticlaw_security_suite::Family::Daemon)
        .collect();
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cases.len(), "case ids are unique");
    let (results, tally) = opticlaw_security_suite::run(&env, &cases, |_| {});
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r.outcome.ran || r.outcome.leaked)
        .map(|r| format!("{}: {}", r.id, r.outcome.detail))
        .collect();
    assert!(
        failures.is_empty(),
        "attacks that got through:\n{}",
        failures.join("\n")
    );
    assert!(tally.attacks >= 150, "{tally}");
    assert_eq!((tally.unauthorized, tally.leaked), (0, 0), "{tally}");
}

#[test]
fn the_harness_notices_an_attack_that_gets_through() {
    // A control row whose script claims a connection: the harness must
    // count it as ran, or a real escape could go unnoticed too.
    use opticlaw_security_suite::sandbox::{Escape, SandboxAttack};
    use opticlaw_security_suite::{Attack, Case, Family};
    let env = opticlaw_security_suite::Env::new().unwrap();
    let case = Case {
        id: "control-claims-a-connection".into(),
        family: Family::Sandbox,
        attack: Attack::Sandbox(SandboxAttack {
            escape: Escape::Network,
            script: "echo connected",
        }),
    };
    let (_, tally) = opticlaw_security_suite::run(&env, &[case], |_| {});
    assert_eq!(
        tally.unauthorized, 1,
        "a control case that 'connects' must be counted"
    );
}

#[test]
fn the_harness_notices_an_exfiltration_that_gets_through() {
    // A control row whose grant names the attacked listener: the proxy lets
    // it through, and the harness must count it as ran.
    use opticlaw_security_suite::egress::EgressAttack;
    use opticlaw_security_suite::{Attack, Case, Family};
    let env = opticlaw_security_suite::Env::new().unwrap();
    let case = Case {
        id: "control-granted-exfiltration".into(),
        family: Family::Egress,
        attack: Attack::Egress(EgressAttack {
            script: "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:{port}/\", timeout=5)'",
            grant: &["127.0.0.1:{port}"],
        }),
    };
    let (results, tally) = opticlaw_security_suite::run(&env, &[case], |_| {});
    assert_eq!(tally.unauthorized, 1, "{:?}", results[0].outcome);
}
