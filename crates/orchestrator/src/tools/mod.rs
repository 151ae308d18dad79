//! Tool runners behind one small trait, and the runner that checks a
//! capability token before any of them runs.

mod egress;
mod fs;
mod grants;
mod shell;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use opticlaw_security::token::{Request, RevocationList, TokenError, TokenVerifier};
use serde_json::Value;

pub use fs::{FileRead, FileWrite};
pub use grants::{GrantError, GrantedDirs};
pub use shell::Shell;

/// One tool call as a runner receives it.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    /// The capability token minted for this node (base64).
    pub token: &'a str,
    /// The prepared arguments (see [`Tool::prepare`]).
    pub args: &'a Value,
    /// The idempotency key, stored before this call.
    pub key: &'a str,
    /// An earlier attempt with this key started and never recorded a result.
    pub resumed: bool,
    /// The node's time budget.
    pub timeout: Duration,
}

/// Why a tool did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments for {tool}: {message}")]
    InvalidArgs { tool: &'static str, message: String },
    /// Refused for a security reason; never retried.
    #[error("refused: {0}")]
    Refused(String),
    #[error("capability token refused: {0}")]
    Token(#[from] TokenError),
    /// Failed; worth retrying.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// Whether a later attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ToolError::Failed(_))
    }
}

/// A tool: what it needs authorised, and how it runs.
pub trait Tool: Send + Sync {
    /// The tool's name in plans, policy and tokens (`file.read`).
    fn name(&self) -> &'static str;
    /// The scope its tokens grant and the policy tiers (`read`).
    fn scope(&self) -> &'static str;
    /// The resource the token must cover for these arguments: a path, or
    /// the directory a command runs in.
    fn resource(&self, args: &Value) -> Result<String, ToolError>;
    /// Fixes what the call will do before it is recorded (an append's
    /// offset): the prepared arguments are stored before the call and
    /// reused by every retry and after a crash.
    fn prepare(&self, args: &Value) -> Result<Value, ToolError> {
        Ok(args.clone())
    }
    /// Network hosts the call asks to reach (egress grants such as
    /// `api.example.com:443`): the policy must allow each, the node's token
    /// carries them, and the runner refuses a token that does not.
    fn hosts(&self, _args: &Value) -> Result<Vec<String>, ToolError> {
        Ok(Vec::new())
    }
    /// Whether running a prepared call again after a crash repeats no side
    /// effect (a positioned write does not; a shell command might).
    fn replay_safe(&self) -> bool;
    /// Runs the call. Only [`Runner::execute`] calls this, after the token
    /// has been verified.
    fn run(&self, call: &ToolCall<'_>) -> Result<Value, ToolError>;
}

/// The token audience of a tool's runner.
pub fn runner_name(tool: &str) -> String {
    format!("runner/{tool}")
}

/// A tool together with the verifier its token must pass.
#[derive(Clone)]
pub struct Runner {
    tool: Arc<dyn Tool>,
    verifier: TokenVerifier,
    revoked: RevocationList,
}

impl Runner {
    /// A runner for `tool` that trusts tokens signed by `root` and
    /// addressed to [`runner_name`] of the tool.
    pub fn new(tool: Arc<dyn Tool>, root: opticlaw_security::keys::VerifyingKey) -> Self {
        let verifier = TokenVerifier::new(root, runner_name(tool.name()));
        Self {
            tool,
            verifier,
            revoked: RevocationList::default(),
        }
    }

    /// Refuses tokens in `revoked` (the orchestrator's list, shared).
    pub fn with_revocations(mut self, revoked: RevocationList) -> Self {
        self.revoked = revoked;
        self
    }

    pub fn tool(&self) -> &dyn Tool {
        self.tool.as_ref()
    }

    /// Verifies the token against exactly this call (and that it was not
    /// revoked), then runs it.
    pub fn execute(&self, call: &ToolCall<'_>) -> Result<Value, ToolError> {
        let resource = self.tool.resource(call.args)?;
        let request = Request {
            tool: self.tool.name(),
            scope: self.tool.scope(),
            resource: &resource,
        };
        let hosts = self.tool.hosts(call.args)?;
        self.verifier
            .verify_with_hosts(call.token, &request, &hosts, Utc::now(), &self.revoked)?;
        self.tool.run(call)
    }
}

fn arg<'a>(tool: &'static str, args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args[name].as_str().ok_or_else(|| ToolError::InvalidArgs {
        tool,
        message: format!("`{name}` must be a string"),
    })
}
