//! `shell`: a command run by `sh -c` in a sandbox (the namespace runner, or
//! the microVM runner), with only its granted directory writable and no network unless granted: either
//! named hosts (`"hosts": ["api.example.com:443"]`, through the sandbox's
//! egress proxy, every connection audited) or, where `[tools]
//! shell_network` allows it, the host's whole network (`"network": true`).

use std::path::PathBuf;
use std::sync::Arc;

use opticlaw_sandbox::egress::{Egress, HostRule};
use opticlaw_sandbox::{Limits, Network, RunSpec, Sandbox};
use opticlaw_store::StoreHandle;
use serde_json::{Value, json};

use super::egress::EgressAudit;
use super::{GrantedDirs, Tool, ToolCall, ToolError, arg, runner_name};

/// Bytes of stdout and stderr kept in a node's result.
const OUTPUT_BYTES: usize = 16 << 10;

/// Runs shell commands isolated (see [`opticlaw_sandbox::NamespaceSandbox`]
/// and `opticlaw_sandbox::MicroVmSandbox`).
#[derive(Clone)]
pub struct Shell {
    sandbox: Arc<dyn Sandbox>,
    grants: GrantedDirs,
    allow_network: bool,
    hidden: Vec<PathBuf>,
    audit: Option<StoreHandle>,
}

impl Shell {
    /// `allow_network` is what config grants; a call still has to ask for
    /// the network (`"network": true`) to get it.
    pub fn new(sandbox: Arc<dyn Sandbox>, grants: GrantedDirs, allow_network: bool) -> Self {
        Self {
            sandbox,
            grants,
            allow_network,
            hidden: Vec::new(),
            audit: None,
        }
    }

    /// Audits every connection of granted hosts in `store`'s audit log.
    /// Without it, a call that asks for hosts is refused.
    pub fn auditing_egress(mut self, store: StoreHandle) -> Self {
        self.audit = Some(store);
        self
    }

    /// Directories every command sees as empty: the daemon's home (API
    /// token, signing key, store) and the user's key stores. The daemon may
    /// run as the same uid as the command, so file modes alone do not keep
    /// these secret. A directory that holds a grant cannot be hidden (the
    /// sandbox refuses it), so such entries are dropped here.
    pub fn hiding(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.hidden = dirs
            .into_iter()
            .filter_map(|dir| dir.canonicalize().ok())
            .filter(|dir| dir.is_dir() && !self.grants.any_inside(dir))
            .collect();
        self
    }
}

impl Tool for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn scope(&self) -> &'static str {
        "exec"
    }

    fn resource(&self, args: &Value) -> Result<String, ToolError> {
        Ok(self
            .grants
            .directory(args["dir"].as_str())?
            .display()
            .to_string())
    }

    fn hosts(&self, args: &Value) -> Result<Vec<String>, ToolError> {
        Ok(host_rules(args)?.iter().map(ToString::to_string).collect())
    }

    fn replay_safe(&self) -> bool {
        // A command's effects are unknown: after a crash mid-run it is
        // never started again on its own.
        false
    }

    fn run(&self, call: &ToolCall<'_>) -> Result<Value, ToolError> {
        let command = arg("shell", call.args, "command")?;
        let dir = self.grants.directory(call.args["dir"].as_str())?;
        // The runner verified that the token grants exactly these hosts.
        let hosts = host_rules(call.args)?;
        let network = match call.args["network"].as_bool().unwrap_or(false) {
            false if hosts.is_empty() => Network::None,
            false => {
                let Some(store) = self.audit.clone() else {
                    return Err(ToolError::Refused(
                        "the command asks for network hosts and no audit log is wired".into(),
                    ));
                };
                let audit = EgressAudit::new(store, call.key, runner_name(self.name()));
                Network::Proxied(Egress::new(hosts).observed_by(std::sync::Arc::new(audit)))
            }
            true if self.allow_network => Network::Full,
            true => {
                return Err(ToolError::Refused(
                    "the command asks for the network and [tools] shell_network is off".into(),
                ));
            }
        };
        let mut spec = RunSpec::new(["/bin/sh", "-c", command]);
        for hidden in &self.hidden {
            spec = spec.hidden(hidden.clone());
        }
        let spec = spec
            .writable(dir)
            .workdir(dir)
            .network(network)
            .env("OPTICLAW_IDEMPOTENCY_KEY", call.key)
            .limits(Limits {
                wall_clock: call.timeout,
                output_bytes: OUTPUT_BYTES,
                ..Limits::default()
            });
        let out = self
            .sandbox
            .run(&spec)
            .map_err(|e| ToolError::Refused(format!("the sandbox refused to start: {e}")))?;
        let result = json!({
            "exit_code": out.status.code(),
            "timed_out": out.timed_out,
            "stdout": out.stdout.text(),
            "stderr": out.stderr.text(),
            "truncated": out.stdout.truncated || out.stderr.truncated,
        });
        if out.timed_out {
            return Err(ToolError::Failed(format!(
                "the command ran past its {} ms budget and was killed",
                call.timeout.as_millis()
            )));
        }
        if !out.status.success() {
            return Err(ToolError::Failed(format!(
                "the command failed ({:?}): {}",
                out.status,
                out.stderr.text().trim()
            )));
        }
        Ok(result)
    }
}

/// The `hosts` argument: egress grants, each in its canonical form.
fn host_rules(args: &Value) -> Result<Vec<HostRule>, ToolError> {
    let invalid = |message: String| ToolError::InvalidArgs {
        tool: "shell",
        message,
    };
    match &args["hosts"] {
        Value::Null => Ok(Vec::new()),
        Value::Array(hosts) => hosts
            .iter()
            .map(|h| {
                h.as_str()
                    .ok_or_else(|| invalid("`hosts` must be a list of strings".into()))?
                    .parse::<HostRule>()
                    .map_err(invalid)
            })
            .collect(),
        _ => Err(invalid("`hosts` must be a list of strings".into())),
    }
}
