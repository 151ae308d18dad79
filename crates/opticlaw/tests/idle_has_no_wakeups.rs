//! The no-heartbeat rule as a test: an idle daemon's threads never wake.

mod common;

use std::time::Duration;

#[test]
#[cfg(target_os = "linux")]
fn idle_daemon_makes_no_wakeups() {
    let home = common::Home::init();
    let daemon = home.serve();
    // Exercise it first, so a wake-up left behind by work would show.
    daemon.send("main", "/help");
    daemon.send("main", "remind me tomorrow at 9 to pay rent");
    daemon.wait_for_replies("main", 2, Duration::from_secs(30));
    common::wait_until_quiet(daemon.pid());
    let before = common::context_switches(daemon.pid());
    std::thread::sleep(Duration::from_secs(3));
    let after = common::context_switches(daemon.pid());
    assert_eq!(
        after - before,
        0,
        "the idle daemon woke {} times in 3 s",
        after - before
    );
}
