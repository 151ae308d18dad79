//! The state machine of tasks and nodes, and which transitions it allows.

use serde::{Deserialize, Serialize};

/// Where a task or a node stands.
///
/// `planned -> approved -> running -> blocked -> completed | failed |
/// rolled_back`; see [`State::allows`] for the exact edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Recorded, not started.
    Planned,
    /// Cleared to run (its tier needs no approval, or the user approved).
    Approved,
    /// A tool call is in flight.
    Running,
    /// Waiting for something outside: the user's approval (`WAIT_EXTERNAL`)
    /// or a retry timer.
    Blocked,
    /// Done; its result is recorded.
    Completed,
    /// Gave up (refused, denied, or out of retries).
    Failed,
    /// Completed, then undone by its compensating action.
    RolledBack,
}

/// Tasks and nodes follow slightly different edges: a task has no approval
/// of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Task,
    Node,
}

impl State {
    /// The name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::Approved => "approved",
            State::Running => "running",
            State::Blocked => "blocked",
            State::Completed => "completed",
            State::Failed => "failed",
            State::RolledBack => "rolled_back",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "planned" => State::Planned,
            "approved" => State::Approved,
            "running" => State::Running,
            "blocked" => State::Blocked,
            "completed" => State::Completed,
            "failed" => State::Failed,
            "rolled_back" => State::RolledBack,
            _ => return None,
        })
    }

    /// Nothing more happens on its own (a dead letter may still be replayed).
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::Failed | State::RolledBack)
    }

    /// Whether `self -> to` is an edge of the state machine for `subject`.
    pub fn allows(self, to: State, subject: Subject) -> bool {
        use State::*;
        match subject {
            Subject::Node => matches!(
                (self, to),
                // Tier 0/1 clear at once; tier 2/3 wait for the user; a
                // node whose dependency failed never starts.
                (Planned, Approved | Blocked | Failed)
                    | (Approved, Running | Failed)
                    // Blocked after running: waiting for a retry timer.
                    | (Running, Completed | Failed | Blocked)
                    // Approval granted, retry timer fired, or denied.
                    | (Blocked, Approved | Running | Failed)
                    // A later node failed and this one was compensated.
                    | (Completed, RolledBack)
                    // A dead letter replayed.
                    | (Failed | RolledBack, Planned)
            ),
            Subject::Task => matches!(
                (self, to),
                (Planned, Running | Failed)
                    | (Running, Blocked | Completed | Failed | RolledBack)
                    | (Blocked, Running | Failed | RolledBack)
                    | (Failed | RolledBack, Running)
            ),
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [State; 7] = [
        State::Planned,
        State::Approved,
        State::Running,
        State::Blocked,
        State::Completed,
        State::Failed,
        State::RolledBack,
    ];

    #[test]
    fn names_round_trip() {
        for state in ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::parse("done"), None);
    }

    #[test]
    fn a_node_cannot_skip_approval_or_leave_a_final_state_sideways() {
        assert!(!State::Planned.allows(State::Running, Subject::Node));
        assert!(!State::Planned.allows(State::Completed, Subject::Node));
        assert!(!State::Completed.allows(State::Running, Subject::Node));
        assert!(!State::Completed.allows(State::Failed, Subject::Node));
        assert!(!State::Failed.allows(State::Completed, Subject::Node));
        assert!(State::Running.allows(State::Blocked, Subject::Node));
        assert!(State::Blocked.allows(State::Approved, Subject::Node));
        assert!(State::Completed.allows(State::RolledBack, Subject::Node));
    }

    #[test]
    fn no_state_moves_to_itself() {
        for state in ALL {
            for subject in [Subject::Task, Subject::Node] {
                assert!(!state.allows(state, subject), "{state} -> {state}");
            }
        }
    }
}
