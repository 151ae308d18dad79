//! Exactly-once side effects across crashes.
//!
//! A "crash" is a panic at a chosen point, caught here, after which the
//! store file is closed and reopened as a restarted daemon would. The
//! remote side honours idempotency keys, as the ledger's contract asks.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{TestStore, at};
use opticlaw_security::idempotency::{self, Call, IdempotencyError, KeyState, run_once};

const NOW: i64 = 1_800_000_000;

/// A remote service that dedupes on the idempotency key and counts every
/// effect it actually performs.
#[derive(Default)]
struct Remote {
    by_key: HashMap<String, u64>,
    performed: Vec<String>,
}

impl Remote {
    fn charge(&mut self, key: &str) -> u64 {
        if let Some(id) = self.by_key.get(key) {
            return *id;
        }
        self.performed.push(key.to_owned());
        let id = self.performed.len() as u64;
        self.by_key.insert(key.to_owned(), id);
        id
    }
}

/// Where a crash is injected in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// The key is stored, the remote call not yet made.
    BeforeEffect,
    /// The remote call happened, its result not yet stored.
    AfterEffect,
    /// The result is stored, the next step not yet begun.
    AfterFinish,
}

/// Runs `steps` steps of a plan, crashing at the `crash_at`-th crash point
/// (counting three per step). Returns whether it crashed.
fn run_plan(
    store: &TestStore,
    remote: &RefCell<Remote>,
    steps: usize,
    crash_at: Option<usize>,
) -> bool {
    let points = RefCell::new(0usize);
    let maybe_crash = |point: Point| {
        let mut seen = points.borrow_mut();
        if Some(*seen) == crash_at {
            panic!("simulated crash at {point:?}");
        }
        *seen += 1;
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        for step in 0..steps {
            let key = format!("plan-1/step-{step}");
            let id: u64 = run_once(store.conn(), &key, at(NOW), |call: Call<'_>| {
                maybe_crash(Point::BeforeEffect);
                let id = remote.borrow_mut().charge(call.key);
                maybe_crash(Point::AfterEffect);
                Ok::<_, std::convert::Infallible>(id)
            })
            .unwrap();
            assert!(id > 0);
            maybe_crash(Point::AfterFinish);
        }
    }));
    result.is_err()
}

#[test]
fn no_step_is_duplicated_or_lost_whatever_the_crash_point() {
    let steps = 4;
    for crash_at in 0..steps * 3 {
        let mut store = TestStore::new();
        let remote = RefCell::new(Remote::default());
        assert!(
            run_plan(&store, &remote, steps, Some(crash_at)),
            "point {crash_at}"
        );
        store.reopen();
        assert!(!run_plan(&store, &remote, steps, None));
        let performed = &remote.borrow().performed;
        assert_eq!(
            performed.len(),
            steps,
            "crash point {crash_at}: {performed:?}"
        );
        for step in 0..steps {
            let key = format!("plan-1/step-{step}");
            assert!(matches!(
                idempotency::state(store.conn(), &key).unwrap(),
                KeyState::Done { .. }
            ));
        }
    }
}

#[test]
fn many_random_crashes_in_a_row_never_duplicate_an_effect() {
    let steps = 6;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _run in 0..50 {
        let mut store = TestStore::new();
        let remote = RefCell::new(Remote::default());
        // Crash repeatedly at random points until a run completes.
        loop {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let crash_at = (seed % (steps as u64 * 3 + 2)) as usize;
            let crashed = run_plan(&store, &remote, steps, Some(crash_at));
            store.reopen();
            if !crashed {
                break;
            }
        }
        assert_eq!(remote.borrow().performed.len(), steps);
    }
}

#[test]
fn done_key_returns_the_stored_result_without_calling_again() {
    let store = TestStore::new();
    let first: String = run_once(store.conn(), "k", at(NOW), |_| {
        Ok::<_, String>("sent #1".to_owned())
    })
    .unwrap();
    let second: String = run_once(store.conn(), "k", at(NOW), |_| -> Result<String, String> {
        panic!("must not be called again")
    })
    .unwrap();
    assert_eq!(first, second);
}

#[test]
fn resumed_call_is_told_it_may_have_run_before() {
    let store = TestStore::new();
    let failed = run_once(store.conn(), "k", at(NOW), |call| {
        assert!(!call.resumed);
        Err::<u32, _>("timeout")
    });
    assert!(matches!(failed, Err(IdempotencyError::Call("timeout"))));
    let value = run_once(store.conn(), "k", at(NOW), |call| {
        assert!(call.resumed);
        assert_eq!(call.attempt, 2);
        Ok::<_, &str>(7u32)
    })
    .unwrap();
    assert_eq!(value, 7);
}

#[test]
fn run_once_refuses_to_run_inside_a_transaction() {
    let store = TestStore::new();
    store.conn().execute_batch("BEGIN").unwrap();
    let result = run_once(store.conn(), "k", at(NOW), |_| Ok::<_, String>(1u8));
    assert!(matches!(result, Err(IdempotencyError::InsideTransaction)));
    store.conn().execute_batch("ROLLBACK").unwrap();
}
