//! Trust tiers and the per-tool, per-scope policy that assigns them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How much authority an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Tier {
    /// Read-only reasoning.
    ReadOnly = 0,
    /// Low-risk actions: drafts, local reads.
    LowRisk = 1,
    /// Side effects: wait for the user's approval.
    SideEffect = 2,
    /// High-risk, financial or admin actions: approval plus a TOTP code.
    HighRisk = 3,
}

impl Tier {
    /// What must happen before an action of this tier runs.
    pub fn requirement(self) -> Requirement {
        match self {
            Tier::ReadOnly | Tier::LowRisk => Requirement::None,
            Tier::SideEffect => Requirement::Approval,
            Tier::HighRisk => Requirement::ApprovalWithTotp,
        }
    }

    /// The tier's number, 0 to 3.
    pub fn level(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for Tier {
    type Error = String;
    fn try_from(level: u8) -> Result<Self, Self::Error> {
        match level {
            0 => Ok(Tier::ReadOnly),
            1 => Ok(Tier::LowRisk),
            2 => Ok(Tier::SideEffect),
            3 => Ok(Tier::HighRisk),
            other => Err(format!("trust tier {other} does not exist (0 to 3)")),
        }
    }
}

impl From<Tier> for u8 {
    fn from(tier: Tier) -> u8 {
        tier.level()
    }
}

/// What an action needs before it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Runs with a valid capability token alone.
    None,
    /// Needs the user's approval of the exact action.
    Approval,
    /// Needs approval and a valid TOTP code.
    ApprovalWithTotp,
}

/// One `[[policy]]` entry. `scope = "*"` sets the tier for every scope of
/// the tool that has no entry of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub tool: String,
    pub scope: String,
    pub tier: Tier,
    /// Network hosts a node of this tool and scope may be granted
    /// (`api.example.com`, `api.example.com:8443`, `127.0.0.1:8080`);
    /// empty: none. A node granted any runs at tier 2 or above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// The policy as it appears in config: a list of `[[policy]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub policy: Vec<PolicyRule>,
}

/// Why the policy refuses to classify an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no policy for tool {tool:?} scope {scope:?}: denied by default")]
    Unknown { tool: String, scope: String },
    #[error("policy lists tool {tool:?} scope {scope:?} twice")]
    Duplicate { tool: String, scope: String },
    #[error("policy does not let tool {tool:?} scope {scope:?} reach host {host:?}")]
    HostNotAllowed {
        tool: String,
        scope: String,
        host: String,
    },
}

/// The trust-tier policy: deny by default, exact scope before `*`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: HashMap<(String, String), (Tier, Vec<String>)>,
}

impl Policy {
    /// Builds the policy, refusing duplicate entries (which would make the
    /// effective tier depend on their order).
    pub fn from_config(config: &PolicyConfig) -> Result<Self, PolicyError> {
        let mut rules = HashMap::new();
        for rule in &config.policy {
            let key = (rule.tool.clone(), rule.scope.clone());
            if rules.insert(key, (rule.tier, rule.hosts.clone())).is_some() {
                return Err(PolicyError::Duplicate {
                    tool: rule.tool.clone(),
                    scope: rule.scope.clone(),
                });
            }
        }
        Ok(Self { rules })
    }

    /// The tier of `tool` in `scope`; unknown tools and scopes are refused.
    pub fn tier(&self, tool: &str, scope: &str) -> Result<Tier, PolicyError> {
        self.rule(tool, scope).map(|(tier, _)| *tier)
    }

    /// The tier of `tool` in `scope` for a call that reaches `hosts` over
    /// the network: each must be listed in the entry's `hosts` (exactly as
    /// written there), and any host at all makes it tier 2 or above.
    pub fn tier_with_hosts(
        &self,
        tool: &str,
        scope: &str,
        hosts: &[String],
    ) -> Result<Tier, PolicyError> {
        let (tier, allowed) = self.rule(tool, scope)?;
        if let Some(host) = hosts.iter().find(|h| !allowed.contains(h)) {
            return Err(PolicyError::HostNotAllowed {
                tool: tool.to_owned(),
                scope: scope.to_owned(),
                host: host.clone(),
            });
        }
        Ok(if hosts.is_empty() {
            *tier
        } else {
            (*tier).max(Tier::SideEffect)
        })
    }

    fn rule(&self, tool: &str, scope: &str) -> Result<&(Tier, Vec<String>), PolicyError> {
        self.rules
            .get(&(tool.to_owned(), scope.to_owned()))
            .or_else(|| self.rules.get(&(tool.to_owned(), "*".to_owned())))
            .ok_or_else(|| PolicyError::Unknown {
                tool: tool.to_owned(),
                scope: scope.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::from_config(&toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn config_assigns_a_tier_per_tool_and_scope() {
        let policy = policy(
            r#"
            [[policy]]
            tool = "shell"
            scope = "read"
            tier = 1
            [[policy]]
            tool = "shell"
            scope = "write"
            tier = 2
            [[policy]]
            tool = "payments"
            scope = "*"
            tier = 3
            "#,
        );
        assert_eq!(policy.tier("shell", "read"), Ok(Tier::LowRisk));
        assert_eq!(policy.tier("shell", "write"), Ok(Tier::SideEffect));
        assert_eq!(policy.tier("payments", "send"), Ok(Tier::HighRisk));
        assert_eq!(Tier::HighRisk.requirement(), Requirement::ApprovalWithTotp);
    }

    #[test]
    fn unknown_tools_and_scopes_are_denied_by_default() {
        let policy = policy("[[policy]]\ntool = \"shell\"\nscope = \"read\"\ntier = 1\n");
        assert!(matches!(
            policy.tier("shell", "exec"),
            Err(PolicyError::Unknown { .. })
        ));
        assert!(matches!(
            policy.tier("browser", "read"),
            Err(PolicyError::Unknown { .. })
        ));
        assert!(Policy::default().tier("shell", "read").is_err());
    }

    #[test]
    fn network_hosts_come_only_from_the_policy_and_need_tier_two() {
        let policy = policy(
            "[[policy]]\ntool = \"shell\"\nscope = \"exec\"\ntier = 1\nhosts = [\"api.example.com\"]\n",
        );
        let hosts = |list: &[&str]| list.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            policy.tier_with_hosts("shell", "exec", &[]),
            Ok(Tier::LowRisk)
        );
        assert_eq!(
            policy.tier_with_hosts("shell", "exec", &hosts(&["api.example.com"])),
            Ok(Tier::SideEffect)
        );
        assert!(matches!(
            policy.tier_with_hosts("shell", "exec", &hosts(&["api.example.com", "evil.example.com"])),
            Err(PolicyError::HostNotAllowed { host, .. }) if host == "evil.example.com"
        ));
    }

    #[test]
    fn tier_outside_zero_to_three_is_a_config_error() {
        let parsed: Result<PolicyConfig, _> =
            toml::from_str("[[policy]]\ntool = \"x\"\nscope = \"y\"\ntier = 4\n");
        assert!(parsed.is_err());
    }

    #[test]
    fn duplicate_policy_entries_are_refused() {
        let config: PolicyConfig = toml::from_str(
            "[[policy]]\ntool = \"x\"\nscope = \"y\"\ntier = 1\n[[policy]]\ntool = \"x\"\nscope = \"y\"\ntier = 3\n",
        )
        .unwrap();
        assert!(matches!(
            Policy::from_config(&config),
            Err(PolicyError::Duplicate { .. })
        ));
    }
}
