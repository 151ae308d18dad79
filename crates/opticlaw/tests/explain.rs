//! `opticlaw explain REQUEST_ID` prints the planner's stored decisions for
//! one request, and says so when it knows nothing of the id.

mod common;

use common::Home;
use opticlaw_planner::{Goal, Planner, SelfModel};
use opticlaw_store::{Store, Synchronous};

#[test]
fn explain_prints_every_decision_of_a_request_with_its_reason() {
    let home = Home::init();
    let goal = Goal::from_user("evt-explain-1", "alice", "run df -h");
    let planned = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(Planner::with_defaults().plan(&goal, &SelfModel::default(), None));
    {
        let store = Store::open_with(
            &home.path().join("data/opticlaw.db"),
            Synchronous::Normal,
            &[opticlaw_planner::COMPONENT],
        )
        .unwrap();
        planned.persist(store.connection(), 1).unwrap();
    }

    let out = home.run(&["explain", "evt-explain-1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("decompose: plan by rule `run_command`: run -> reply"),
        "{text}"
    );
    assert!(
        text.contains("risk [run]: tier 2, needs the user's approval"),
        "{text}"
    );
    assert!(
        text.contains("why: policy puts shell:run at tier 2"),
        "{text}"
    );

    let out = home.run(&["explain", "no-such-event"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no request \"no-such-event\""));
}
