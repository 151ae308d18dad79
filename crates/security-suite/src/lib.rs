//! OptiClaw's attack suite: every case is an attack that must not succeed.
//!
//! Cases are data: each family module ([`tokens`], [`approvals`],
//! [`sandbox`], [`injection`]) turns a table of attack descriptions into
//! [`Case`]s, and [`run`] executes them against real parts (capability tokens,
//! the approval tables in a real SQLite file, the namespace sandbox, the
//! planner fed by a model server on loopback). A case reports whether the
//! attacked action *ran* (an unauthorized execution) and whether a canary
//! secret *leaked* into anything the attacker could read. Add a case by
//! adding a row to a family's table; add a family (say, runs through the
//! daemon's orchestrator) by adding a module with a `cases()` function and
//! a variant of [`Attack`].
//!
//! The tally's last line is machine-readable:
//! `attacks=N unauthorized=U leaked=L`.

pub mod approvals;
pub mod daemon;
pub mod egress;
mod env;
pub mod injection;
pub mod sandbox;
pub mod tokens;

pub use env::Env;

/// The family of an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Token,
    Approval,
    Sandbox,
    Injection,
    Daemon,
    Egress,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Token => "token",
            Family::Approval => "approval",
            Family::Sandbox => "sandbox",
            Family::Injection => "injection",
            Family::Daemon => "daemon",
            Family::Egress => "egress",
        }
    }
}

/// One attack: which family runs it, and its row of that family's table.
#[derive(Debug, Clone)]
pub enum Attack {
    Token(tokens::TokenAttack),
    Approval(approvals::ApprovalAttack),
    Sandbox(sandbox::SandboxAttack),
    Injection(injection::InjectionAttack),
    Daemon(daemon::DaemonAttack),
    Egress(egress::EgressAttack),
}

/// A named attack case.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub family: Family,
    pub attack: Attack,
}

/// What happened when a case ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The attacked action ran (or its effect is visible): a failure.
    pub ran: bool,
    /// A canary secret reached the attacker: a failure.
    pub leaked: bool,
    /// What stopped it, or what went wrong, in words.
    pub detail: String,
}

impl Outcome {
    /// Stopped by `by`.
    pub fn blocked(by: impl Into<String>) -> Self {
        Self {
            ran: false,
            leaked: false,
            detail: by.into(),
        }
    }

    /// The case could not be set up: counted as ran, so a broken suite
    /// never reads clean.
    pub fn failed_setup(why: impl Into<String>) -> Self {
        Self {
            ran: true,
            leaked: false,
            detail: format!("setup failed: {}", why.into()),
        }
    }
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub id: String,
    pub family: Family,
    pub outcome: Outcome,
}

/// The totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub attacks: usize,
    pub unauthorized: usize,
    pub leaked: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attacks={} unauthorized={} leaked={}",
            self.attacks, self.unauthorized, self.leaked
        )
    }
}

/// Every case of every family.
pub fn all_cases() -> Vec<Case> {
    let mut cases = tokens::cases();
    cases.extend(approvals::cases());
    cases.extend(sandbox::cases());
    cases.extend(injection::cases());
    cases.extend(daemon::cases());
    cases.extend(egress::cases());
    cases
}

/// Runs `cases` in `env`, calling `report` after each.
pub fn run(
    env: &Env,
    cases: &[Case],
    mut report: impl FnMut(&CaseResult),
) -> (Vec<CaseResult>, Tally) {
    let mut results = Vec::with_capacity(cases.len());
    let mut tally = Tally::default();
    for case in cases {
        let mut outcome = match &case.attack {
            Attack::Token(attack) => tokens::run(env, attack),
            Attack::Approval(attack) => approvals::run(env, attack),
            Attack::Sandbox(attack) => sandbox::run(env, attack),
            Attack::Injection(attack) => injection::run(env, attack),
            Attack::Daemon(attack) => daemon::run(env, &case.id, attack),
            Attack::Egress(attack) => egress::run(env, attack),
        };
        // Whatever a case reports, a canary in its detail is a leak too.
        if env.contains_canary(&outcome.detail) {
            outcome.leaked = true;
        }
        tally.attacks += 1;
        tally.unauthorized += usize::from(outcome.ran);
        tally.leaked += usize::from(outcome.leaked);
        let result = CaseResult {
            id: case.id.clone(),
            family: case.family,
            outcome,
        };
        report(&result);
        results.push(result);
    }
    (results, tally)
}
