use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the runtime is doing right now (blueprint section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuntimeState {
    /// Nothing in flight: only an external event or the one armed timer wakes it.
    Sleeping,
    /// Handling a cheap rule or template reply.
    ActiveFastpath,
    /// Running a multi-step plan.
    ActivePlanExec,
    /// Blocked on an approval, an OAuth grant or a tool callback.
    WaitExternal,
}

impl RuntimeState {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeState::Sleeping => "SLEEPING",
            RuntimeState::ActiveFastpath => "ACTIVE_FASTPATH",
            RuntimeState::ActivePlanExec => "ACTIVE_PLAN_EXEC",
            RuntimeState::WaitExternal => "WAIT_EXTERNAL",
        }
    }
}
