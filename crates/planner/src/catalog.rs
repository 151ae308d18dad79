//! The tools a plan may use, as the planner describes them to a model, and
//! the default trust-tier policy for them.

use opticlaw_security::PolicyConfig;
use opticlaw_security::Tier;
use opticlaw_security::tier::PolicyRule;
use serde::{Deserialize, Serialize};

/// One tool and scope a plan may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDescription {
    pub tool: String,
    pub scope: String,
    /// Whether it changes anything outside the assistant (writes, sends,
    /// runs commands). Side effects derived from untrusted content always
    /// need the user's approval.
    pub side_effects: bool,
    /// Whether it reaches the network (a secret must never flow there).
    pub network: bool,
    pub description: String,
}

impl ToolDescription {
    fn new(tool: &str, scope: &str, side_effects: bool, network: bool, description: &str) -> Self {
        Self {
            tool: tool.into(),
            scope: scope.into(),
            side_effects,
            network,
            description: description.into(),
        }
    }
}

/// The runners the orchestrator offers (shell, file.read, file.write) and
/// the network tools the policy knows, so a model's plan is checked against
/// a closed list.
pub fn default_tools() -> Vec<ToolDescription> {
    vec![
        ToolDescription::new(
            "file.read",
            "read",
            false,
            false,
            "Read a file in the user's workspace. args: {path}",
        ),
        ToolDescription::new(
            "file.write",
            "write",
            true,
            false,
            "Replace a file in the user's workspace. args: {path, content}",
        ),
        ToolDescription::new(
            "file.write",
            "append",
            true,
            false,
            "Append to a file in the user's workspace. args: {path, content}",
        ),
        ToolDescription::new(
            "shell",
            "run",
            true,
            false,
            "Run a shell command in the sandbox, no network. args: {command}",
        ),
        ToolDescription::new("http", "get", false, true, "Fetch a URL. args: {url}"),
        ToolDescription::new(
            "http",
            "post",
            true,
            true,
            "Send data to a URL. args: {url, body}",
        ),
        ToolDescription::new(
            "email",
            "send",
            true,
            true,
            "Send an email. args: {to, subject, body}",
        ),
        ToolDescription::new(
            "payments",
            "send",
            true,
            true,
            "Send money. args: {to, amount, currency}",
        ),
    ]
}

/// Tiers for [`default_tools`]: reads are low-risk, side effects wait for
/// approval, money needs approval and a second factor. Config replaces it.
pub fn default_policy() -> PolicyConfig {
    let rule = |tool: &str, scope: &str, tier| PolicyRule {
        tool: tool.into(),
        scope: scope.into(),
        tier,
        hosts: Vec::new(),
    };
    PolicyConfig {
        policy: vec![
            rule("file.read", "read", Tier::LowRisk),
            rule("file.write", "append", Tier::LowRisk),
            rule("file.write", "write", Tier::SideEffect),
            rule("shell", "run", Tier::SideEffect),
            rule("http", "get", Tier::LowRisk),
            rule("http", "post", Tier::SideEffect),
            rule("email", "send", Tier::SideEffect),
            rule("payments", "*", Tier::HighRisk),
        ],
    }
}
