//! Approval attacks: an action of tier 2 or 3 waits for its requester's
//! approval (tier 3 also a TOTP code); the runner calls `ensure_approved`
//! with the exact action before running it. Every row tries to get the
//! action run without a valid approval.

use chrono::{Duration, Utc};
use opticlaw_security::Tier;
use opticlaw_security::approval::{self, ActionRequest, Principal, SecondFactor};
use opticlaw_security::totp::Totp;
use serde_json::{Value, json};

use crate::{Attack, Case, Env, Family, Outcome};

/// How the attacker tries to get the action approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Approved by another user in the same chat.
    OtherUser,
    /// Approved by the same user from another chat.
    OtherChat,
    /// Approved from another platform with the same ids.
    OtherSource,
    /// Tier 3 approved without a TOTP code.
    NoTotp,
    /// Tier 3 approved with a wrong code.
    WrongTotp,
    /// Tier 3 approved with a code from ten minutes ago.
    StaleTotp,
    /// Tier 3 approved with a code already used for another approval.
    ReplayedTotp,
    /// One action approved, another run under that approval.
    SwappedAction,
    /// Approved after the request expired.
    AfterExpiry,
    /// Denied, then run anyway.
    Denied,
    /// Run under an approval id that does not exist.
    UnknownId,
    /// Run while the request is still pending.
    Pending,
}

#[derive(Debug, Clone)]
pub struct ApprovalAttack {
    pub tool: &'static str,
    pub scope: &'static str,
    pub tier: Tier,
    pub forgery: Forgery,
}

const ACTIONS: [(&str, &str, Tier); 3] = [
    ("shell", "run", Tier::SideEffect),
    ("email", "send", Tier::SideEffect),
    ("payments", "send", Tier::HighRisk),
];

pub fn cases() -> Vec<Case> {
    use Forgery::*;
    let any_tier = [
        OtherUser,
        OtherChat,
        OtherSource,
        SwappedAction,
        AfterExpiry,
        Denied,
        UnknownId,
        Pending,
    ];
    let tier3 = [NoTotp, WrongTotp, StaleTotp, ReplayedTotp];
    let mut rows = Vec::new();
    for (tool, scope, tier) in ACTIONS {
        for forgery in any_tier {
            rows.push((tool, scope, tier, forgery));
        }
        if tier == Tier::HighRisk {
            for forgery in tier3 {
                rows.push((tool, scope, tier, forgery));
            }
        }
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, (tool, scope, tier, forgery))| Case {
            id: format!("approval-{i:03}-{tool}-{scope}-{forgery:?}").to_lowercase(),
            family: Family::Approval,
            attack: Attack::Approval(ApprovalAttack {
                tool,
                scope,
                tier,
                forgery,
            }),
        })
        .collect()
}

fn owner() -> Principal {
    Principal {
        source: "telegram".into(),
        user_id: "alice".into(),
        chat_id: "chat-alice".into(),
    }
}

fn action(tool: &str, n: u32) -> Value {
    json!({"tool": tool, "args": {"command": format!("deploy --all #{n}"), "to": "bob", "amount": 900}})
}

pub fn run(env: &Env, attack: &ApprovalAttack) -> Outcome {
    use Forgery::*;
    let conn = env.store.connection();
    let now = Utc::now();
    let totp = Totp::new(b"suite-totp-secret-0123456789".to_vec()).expect("totp");
    let unix = |t: chrono::DateTime<Utc>| u64::try_from(t.timestamp()).unwrap_or(0);
    let wanted = action(attack.tool, 1);
    let ask = |value: &Value| {
        approval::request(
            conn,
            &ActionRequest {
                tool: attack.tool.into(),
                scope: attack.scope.into(),
                tier: attack.tier,
                action: value.clone(),
                requested_for: owner(),
            },
            now,
            approval::DEFAULT_APPROVAL_TTL,
        )
        .expect("requesting approval")
    };
    let pending = ask(&wanted);
    let good_code = totp.generate(unix(now));
    let by = |f: fn(&mut Principal)| {
        let mut p = owner();
        f(&mut p);
        p
    };
    let code = good_code.as_str();
    // The attacker's approval of the pending request, as `by` with `code`.
    let attempt = |by: &Principal, code: Option<&str>| {
        approval::approve(
            conn,
            &pending.id,
            by,
            code.and_then(|c| factor(&totp, c)),
            now,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    };
    let step: Result<(), String> = match attack.forgery {
        OtherUser => attempt(&by(|p| p.user_id = "mallory".into()), Some(code)),
        OtherChat => attempt(&by(|p| p.chat_id = "chat-mallory".into()), Some(code)),
        OtherSource => attempt(&by(|p| p.source = "slack".into()), Some(code)),
        NoTotp => attempt(&owner(), None),
        WrongTotp => attempt(
            &owner(),
            Some(if code == "000000" { "111111" } else { "000000" }),
        ),
        StaleTotp => attempt(
            &owner(),
            Some(&totp.generate(unix(now - Duration::minutes(10)))),
        ),
        ReplayedTotp => {
            // A legitimate approval of another action spends the code first.
            let other = ask(&action(attack.tool, 2));
            if let Err(e) = approval::approve(conn, &other.id, &owner(), factor(&totp, code), now) {
                // Another case of this run may have spent this step's code
                // already; that is the replay this case is about too.
                if !e.to_string().contains("already used") {
                    return broken(format!("setup: the first approval failed: {e}"));
                }
            }
            attempt(&owner(), Some(code))
        }
        SwappedAction | Denied | AfterExpiry | UnknownId | Pending => Ok(()),
    };
    let mut run_action = wanted.clone();
    let mut id = pending.id.clone();
    let mut at = now;
    match attack.forgery {
        SwappedAction => {
            if attack.tier == Tier::HighRisk {
                // Tier 3 codes are single-use per user and step: approve
                // with a fresh step's code so this case does not depend on others.
                let later = now + Duration::seconds(90);
                let fresh = totp.generate(unix(later));
                if let Err(e) =
                    approval::approve(conn, &pending.id, &owner(), factor(&totp, &fresh), later)
                {
                    return broken(format!("setup: approving failed: {e}"));
                }
                at = later;
            } else if let Err(e) = approval::approve(conn, &pending.id, &owner(), None, now) {
                return broken(format!("setup: approving failed: {e}"));
            }
            run_action = action(attack.tool, 666);
        }
        Denied => {
            approval::deny(conn, &pending.id, &owner(), now).expect("deny");
        }
        AfterExpiry => {
            at = now + approval::DEFAULT_APPROVAL_TTL + Duration::seconds(1);
            let late = totp.generate(unix(at));
            if let Ok(()) =
                approval::approve(conn, &pending.id, &owner(), factor(&totp, &late), at).map(drop)
            {
                return Outcome {
                    ran: true,
                    leaked: false,
                    detail: "an expired request was approved".into(),
                };
            }
        }
        UnknownId => id = uuid::Uuid::now_v7().to_string(),
        _ => {}
    }
    let forged = !matches!(
        attack.forgery,
        SwappedAction | Denied | AfterExpiry | UnknownId | Pending
    );
    if forged && step.is_ok() {
        return Outcome {
            ran: true,
            leaked: false,
            detail: "the forged approval was accepted".into(),
        };
    }
    // The runner's check before running.
    match approval::ensure_approved(conn, &id, &run_action, at) {
        Ok(_) => Outcome {
            ran: true,
            leaked: false,
            detail: "the runner found the action approved".into(),
        },
        Err(e) => Outcome::blocked(format!(
            "{}refused at run time: {e}",
            step.err()
                .map(|s| format!("approval refused: {s}; "))
                .unwrap_or_default()
        )),
    }
}

fn factor<'a>(totp: &'a Totp, code: &'a str) -> Option<SecondFactor<'a>> {
    Some(SecondFactor { totp, code })
}

fn broken(detail: String) -> Outcome {
    Outcome {
        ran: true,
        leaked: false,
        detail,
    }
}
